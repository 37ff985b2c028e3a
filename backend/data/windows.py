"""Training windows from real clips: every ``stride``-th start frame, T frames, DIS trajectories, rejection rules.

The clip is centre-cropped to the map's aspect ratio (no stretching: motion keeps its direction) and resized to the
map (256 x 160 by default) once; clips at 45 fps or more are read at every second frame (their windows then span
the same seconds as a 25-30 fps clip's) when that leaves at least one window. Each window then runs the analysis of ``backend/extract.py``
(``analyze_window``): flow from the start frame to each following frame, the per-pixel trust map, the camera's own
motion removed, the rejection rules on the trusted pixels, FFT to K bins. Every window's verdict is returned
whether kept or not, so the build can log it. Data building uses a faster flow setting (``DATASET_FLOW``: 12
gradient-descent iterations, patch stride 3; about twice as fast, end-point error +2-4% on the procedural scenes
of ``scripts/eval_extract.py``).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Iterator, Optional, Sequence

import cv2
import numpy as np

from addon.core.spectral import trajectories_to_spectral
from backend.extract import MotionStats, analyze_window
from backend.flow import FlowConfig
from backend.video import VideoError

log = logging.getLogger(__name__)

DATASET_FLOW = FlowConfig(dis_gd_iterations=12, dis_patch_stride=3)
HIGH_FPS = 45.0  # clips at this rate or above are read at every second frame


@dataclasses.dataclass
class ClipFrames:
    frames: np.ndarray   # uint8 (N, H, W, 3) RGB at the map size
    fps: float           # of ``frames`` (half the clip's when it was read at every second frame)
    source_size: tuple   # (W, H) of the clip
    step: int = 1        # clip frames per entry of ``frames``


@dataclasses.dataclass
class RealWindow:
    start: int
    stats: MotionStats
    reason: Optional[str]               # None = kept; "camera_motion" | "static"
    message: Optional[str]              # the rule's sentence
    coeffs: Optional[np.ndarray] = None  # float32 (K, 4, H, W) when kept (relative to the camera)
    weight: Optional[np.ndarray] = None  # float32 (H, W) mean_t |F_t|^2 of the flow as it is (render pairs)
    trust: Optional[np.ndarray] = None   # float32 (H, W) in [0, 1] when kept
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


def frame_step(fps: float, clip_frames: int, num_frames: int) -> int:
    """Clip frames per window frame: 2 for clips at HIGH_FPS or more that are long enough, else 1."""
    return 2 if fps >= HIGH_FPS and clip_frames // 2 >= num_frames else 1


def read_frames(path, width: int, height: int, first: int = 0, last: Optional[int] = None,
                fps: Optional[float] = None, step: int = 1) -> ClipFrames:
    """Window frames [first, last) of a clip (indices in window frames: every ``step``-th clip frame, see
    :func:`frame_step`), cropped and resized to (width, height)."""
    path = os.fspath(path)
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise VideoError(f"cannot read '{path}' as a video")
        clip_fps = fps or float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        frames, index = [], 0
        while last is None or index < last * step:
            ok, bgr = cap.read()
            if not ok:
                break
            if index >= first * step and index % step == 0:
                frames.append(crop_to_aspect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), width, height))
            index += 1
    finally:
        cap.release()
    if not (np.isfinite(clip_fps) and clip_fps > 0):
        raise VideoError(f"'{path}' reports no frame rate")
    arr = np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8)
    return ClipFrames(arr, clip_fps / step, size, step)


def count_frames(path, num_frames: int = 150) -> tuple:
    """(window frames, their fps, step) of a clip for windows of ``num_frames``, counting decoded frames (container
    counts can be wrong); ``step`` from :func:`frame_step`."""
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
    step = frame_step(fps, n, num_frames)
    return (n + step - 1) // step, fps / step, step


def window_starts(num_frames_clip: int, num_frames: int = 150, stride: int = 10) -> list:
    """Every ``stride``-th start frame whose window fits in the clip (empty when the clip is too short)."""
    return list(range(0, num_frames_clip - num_frames + 1, stride))


def classify(stats: MotionStats):
    """(reason code, sentence) of the rejection rules, (None, None) for a usable window."""
    return stats.reason, stats.verdict()


def extract_window(frames: np.ndarray, k: int = 16, pair_frames: Sequence[int] = (),
                   flow: FlowConfig = DATASET_FLOW, start: int = 0) -> RealWindow:
    """One window (T, H, W, 3) -> verdict, and for a kept window its volume (relative to the camera), trust map,
    W(p) and render pairs (the flow as it is, which is what explains frame t)."""
    a = analyze_window(frames, flow)
    reason, message = classify(a.stats)
    win = RealWindow(start, a.stats, reason, message)
    if reason is None:
        win.coeffs = trajectories_to_spectral(a.trajectories, k)
        win.trust = a.trust
        win.weight = (a.raw.astype(np.float64) ** 2).sum(axis=1).mean(axis=0).astype(np.float32)
        win.pairs = [(int(t), frames[t], a.raw[t].copy()) for t in pair_frames]
    return win


def clip_windows(clip: ClipFrames, starts: Sequence[int], num_frames: int = 150, k: int = 16, pairs: int = 3,
                 seed: int = 0, offset: int = 0, flow: FlowConfig = DATASET_FLOW) -> Iterator[RealWindow]:
    """Windows at ``starts`` (window frame numbers; ``clip.frames[0]`` is window frame ``offset``)."""
    for s in starts:
        rng = np.random.default_rng([seed, s])
        t = np.sort(rng.choice(np.arange(1, num_frames), size=min(pairs, num_frames - 1), replace=False))
        yield extract_window(clip.frames[s - offset:s - offset + num_frames], k, t, flow, start=s)
