"""Reading clips: a window of frames, resized to the working map, with the clip's frame rate."""
from __future__ import annotations

import dataclasses
import logging
import math
import os

import cv2
import numpy as np

log = logging.getLogger(__name__)


class VideoError(ValueError):
    """A clip cannot be used; the message says why and what to do."""


@dataclasses.dataclass
class Clip:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB at the working size
    fps: float
    source_size: tuple  # (W, H) of the clip
    total_frames: int  # frames in the whole clip (as counted while reading)
    start: int


def parse_size(text: str) -> tuple:
    """'256x160' -> (256, 160)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise VideoError(f"size '{text}' is not WIDTHxHEIGHT, e.g. 256x160") from None
    if not (8 <= w <= 4096 and 8 <= h <= 4096):
        raise VideoError(f"size {w}x{h} is out of range (8..4096 per side)")
    return w, h


def read_clip(path, start: int = 0, num_frames: int | None = None, size: tuple | None = None,
              fps: float | None = None) -> Clip:
    """Read ``num_frames`` frames from ``start`` (all remaining frames if None), resized to ``size`` (W, H)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"video '{path}' does not exist")
    if start < 0:
        raise VideoError(f"--start must be >= 0, got {start}")
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise VideoError(f"cannot read '{path}' as a video (is it an mp4/mov/avi/webm clip?)")
        clip_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        src_w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        src_h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        frames = []
        index = 0
        while num_frames is None or len(frames) < num_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            if index >= start:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                if size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(size):
                    interp = cv2.INTER_AREA if size[0] < rgb.shape[1] else cv2.INTER_LINEAR
                    rgb = cv2.resize(rgb, tuple(size), interpolation=interp)
                frames.append(rgb)
            index += 1
        total = index if num_frames is None else max(index, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        cap.release()
    if not frames:
        if index == 0:
            raise VideoError(f"'{path}' has no readable frames (corrupt or not a video)")
        raise VideoError(f"--start {start} is past the end of '{path}' ({index} frames)")
    if fps is None:
        fps = clip_fps
    if not (math.isfinite(fps) and 0.5 <= fps <= 1000):
        raise VideoError(f"'{path}' reports frame rate {fps}; pass the real one with --fps")
    return Clip(np.stack(frames), float(fps), (src_w, src_h), total, start)
