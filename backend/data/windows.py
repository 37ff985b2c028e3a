"""Training windows from real clips: every ``stride``-th start frame, T frames, DIS trajectories, rejection rules.

The clip is centre-cropped to the map's aspect ratio (no stretching: motion keeps its direction) and resized to the
map (256 x 160 by default) once; each window then runs the extraction of ``backend/extract.py``: flow from the
start frame to each following frame (``backend.flow.compute_trajectories``), the paper's rejection rules
(``backend.extract.motion_stats``: camera motion / no motion), FFT to K bins. Every window's verdict is returned
whether kept or not, so the build can log it.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Iterator, Optional, Sequence

import cv2
import numpy as np

from addon.core.spectral import trajectories_to_spectral
from backend.extract import MotionStats, motion_stats
from backend.flow import FlowConfig, compute_trajectories
from backend.video import VideoError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ClipFrames:
    frames: np.ndarray   # uint8 (N, H, W, 3) RGB at the map size
    fps: float
    source_size: tuple   # (W, H) of the clip


@dataclasses.dataclass
class RealWindow:
    start: int
    stats: MotionStats
    reason: Optional[str]               # None = kept; "camera_motion" | "static"
    message: Optional[str]              # the rule's sentence
    coeffs: Optional[np.ndarray] = None  # float32 (K, 4, H, W) when kept
    weight: Optional[np.ndarray] = None  # float32 (H, W) mean_t |F_t|^2
    pairs: list = dataclasses.field(default_factory=list)  # [(t, frame_t uint8 (H, W, 3), flow (2, H, W))]


def crop_to_aspect(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre crop (H, W, 3) to the aspect ratio width:height, then resize (area filter when shrinking)."""
    h, w = frame.shape[:2]
    target = width / height
    if w / h > target:
        cw = int(round(h * target))
        x0 = (w - cw) // 2
        frame = frame[:, x0:x0 + cw]
    else:
        ch = int(round(w / target))
        y0 = (h - ch) // 2
        frame = frame[y0:y0 + ch]
    interp = cv2.INTER_AREA if frame.shape[1] > width else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(frame), (width, height), interpolation=interp)


def read_frames(path, width: int, height: int, first: int = 0, last: Optional[int] = None,
                fps: Optional[float] = None) -> ClipFrames:
    """Frames [first, last) of a clip, cropped and resized to (width, height)."""
    path = os.fspath(path)
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise VideoError(f"cannot read '{path}' as a video")
        clip_fps = fps or float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        frames, index = [], 0
        while last is None or index < last:
            ok, bgr = cap.read()
            if not ok:
                break
            if index >= first:
                frames.append(crop_to_aspect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), width, height))
            index += 1
    finally:
        cap.release()
    if not (np.isfinite(clip_fps) and clip_fps > 0):
        raise VideoError(f"'{path}' reports no frame rate")
    arr = np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8)
    return ClipFrames(arr, clip_fps, size)


def count_frames(path) -> tuple:
    """(frames, fps) of a clip, counting decoded frames (container counts can be wrong)."""
    cap = cv2.VideoCapture(os.fspath(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"cannot read '{path}' as a video")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        n = 0
        while cap.grab():
            n += 1
    finally:
        cap.release()
    return n, fps


def window_starts(num_frames_clip: int, num_frames: int = 150, stride: int = 10) -> list:
    """Every ``stride``-th start frame whose window fits in the clip (empty when the clip is too short)."""
    return list(range(0, num_frames_clip - num_frames + 1, stride))


def classify(stats: MotionStats):
    """(reason code, sentence) of the rejection rules, (None, None) for a usable window."""
    message = stats.verdict()
    if message is None:
        return None, None
    return ("camera_motion" if message.startswith("camera") else "static"), message


def extract_window(frames: np.ndarray, k: int = 16, pair_frames: Sequence[int] = (),
                   flow: FlowConfig = FlowConfig(), start: int = 0) -> RealWindow:
    """One window (T, H, W, 3) -> verdict, and for a kept window its volume, W(p) and render pairs."""
    traj = compute_trajectories(frames, flow)  # (T, 2, H, W)
    stats = motion_stats(traj)
    reason, message = classify(stats)
    win = RealWindow(start, stats, reason, message)
    if reason is None:
        win.coeffs = trajectories_to_spectral(traj, k)
        win.weight = (traj.astype(np.float64) ** 2).sum(axis=1).mean(axis=0).astype(np.float32)
        win.pairs = [(int(t), frames[t], traj[t].copy()) for t in pair_frames]
    return win


def clip_windows(clip: ClipFrames, starts: Sequence[int], num_frames: int = 150, k: int = 16, pairs: int = 3,
                 seed: int = 0, offset: int = 0, flow: FlowConfig = FlowConfig()) -> Iterator[RealWindow]:
    """Windows at ``starts`` (clip frame numbers; ``clip.frames[0]`` is clip frame ``offset``)."""
    for s in starts:
        rng = np.random.default_rng([seed, s])
        t = np.sort(rng.choice(np.arange(1, num_frames), size=min(pairs, num_frames - 1), replace=False))
        yield extract_window(clip.frames[s - offset:s - offset + num_frames], k, t, flow, start=s)
