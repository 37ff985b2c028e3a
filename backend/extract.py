"""Motion from video: a window of T frames -> trajectories -> spectral volume (DESIGN.md "Motion from video").

A window is analysed in three steps (:func:`analyze_window`): dense flow from the start frame to every later frame
(trajectories), a per-pixel trust map (``backend.flow.flow_trust``: contrast, brightness, forward-backward
consistency), and the camera's own motion, fitted robustly per frame and removed (``backend/camera.py``; off with
``remove_camera=False``). Rejection rules, on the per-pixel time-averaged displacement m(p) of the trusted pixels
(all pixels when fewer than 2% are trusted), after the camera's motion is removed:

* *camera motion* when at least 95% of pixels have m(p) > 1 px and their mean is over ``MAX_FULL_FRAME`` of the
  map's width (the paper's rule, relaxed: full-frame foliage, water or shadows swaying a few pixels around the
  camera's removed motion are kept), or when the camera moved and nothing is left moving once its motion is
  removed;
* *no motion* when fewer than 1% of pixels have m(p) > 1 px.

The paper's static rule is "mean motion below 1 px" over the whole frame; that rejects every scene whose moving
object is small (a candle flame covers 2-6% of the frame and averages 0.06 px over the frame while its tip sways
5 px). Counting the pixels that move at least 1 px keeps such scenes and still rejects still or noise-only clips,
whose flow noise stays far below 1 px.
"""
from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from addon.core.spectral import SpectralVolume, max_bins
from backend.camera import CameraMotion, fit_camera_motion, remove_camera_motion
from backend.flow import FlowConfig, TrustConfig, compute_trajectories, flow_trust
from backend.video import Clip, VideoError, read_clip

log = logging.getLogger(__name__)

CAMERA_FRACTION = 0.95
STATIC_FRACTION = 0.01
MOVE_PX = 1.0
MIN_TRUSTED = 0.02  # below this share of trusted pixels the rules count every pixel
MAX_FULL_FRAME = 0.05  # a whole frame moving more than this share of the width on average is camera motion


class RejectedWindow(ValueError):
    """The window fails a rejection rule; ``--force`` extracts it anyway."""


@dataclasses.dataclass
class MotionStats:
    fraction_moving: float  # fraction of (trusted) pixels whose time-averaged displacement exceeds MOVE_PX
    mean_motion_px: float  # time-averaged displacement, averaged over those moving pixels
    max_motion_px: float  # largest time-averaged displacement of any (trusted) pixel
    trusted_fraction: float = 1.0  # share of pixels the rules counted
    camera_px: float = 0.0  # largest displacement of the camera's motion that was removed (0 = none)
    width: int = 0  # of the map (0 = unknown: the full-frame allowance is off)

    def verdict(self):
        """None when the window is usable, else a sentence saying why not."""
        limit = MAX_FULL_FRAME * self.width
        if self.fraction_moving >= CAMERA_FRACTION and self.mean_motion_px > limit:
            return (f"camera motion: {100 * self.fraction_moving:.0f}% of pixels move more than {MOVE_PX:g} px on "
                    f"average (limit {100 * CAMERA_FRACTION:.0f}%), {self.mean_motion_px:.1f} px on average "
                    f"(more than {limit:.1f} px), and no global motion explains it; use a tripod clip or another "
                    f"--start")
        if self.fraction_moving < STATIC_FRACTION:
            if self.camera_px > MOVE_PX:
                return (f"camera motion only: once the camera's motion (up to {self.camera_px:.1f} px) is removed, "
                        f"{100 * self.fraction_moving:.2f}% of pixels move more than {MOVE_PX:g} px; use a clip "
                        f"where something in the scene moves")
            return (f"no motion: only {100 * self.fraction_moving:.2f}% of pixels move more than {MOVE_PX:g} px on "
                    f"average (needs {100 * STATIC_FRACTION:g}%; the strongest moves {self.max_motion_px:.2f} px); "
                    f"try a larger --size or a livelier part of the clip")
        return None

    @property
    def reason(self):
        """The verdict's code: None, "camera_motion" or "static"."""
        message = self.verdict()
        if message is None:
            return None
        return "camera_motion" if message.startswith("camera") else "static"


def motion_stats(traj: np.ndarray, trust: np.ndarray | None = None, camera_px: float = 0.0) -> MotionStats:
    """traj (T, 2, H, W) -> statistics for the rejection rules, over the pixels with ``trust`` > 0.5."""
    mag = np.sqrt((traj.astype(np.float64) ** 2).sum(axis=1))  # (T, H, W)
    per_pixel = mag.mean(axis=0)
    counted = np.ones(per_pixel.shape, bool) if trust is None else trust > 0.5
    if counted.mean() < MIN_TRUSTED:
        counted = np.ones(per_pixel.shape, bool)
    values = per_pixel[counted]
    moving = values > MOVE_PX
    mean_moving = float(values[moving].mean()) if moving.any() else 0.0
    return MotionStats(float(moving.mean()), mean_moving, float(values.max()), float(counted.mean()),
                       float(camera_px), int(traj.shape[-1]))


@dataclasses.dataclass
class WindowAnalysis:
    trajectories: np.ndarray  # (T, 2, H, W) float32 relative to the camera (as flowed when it was not removed)
    raw: np.ndarray  # (T, 2, H, W) float32 as flowed (what explains the frames: render pairs)
    trust: np.ndarray  # (H, W) float32 in [0, 1]
    camera: CameraMotion | None
    stats: MotionStats

    @property
    def reason(self):
        return self.stats.reason


def analyze_window(frames: np.ndarray, flow: FlowConfig = FlowConfig(), remove_camera: bool = True,
                   trust: TrustConfig = TrustConfig(), progress: bool = False) -> WindowAnalysis:
    """frames (T, H, W, 3) uint8 -> trajectories, trust, the camera's motion (removed) and the rule statistics."""
    raw = compute_trajectories(frames, flow, progress=progress)
    conf = flow_trust(frames, raw, flow, trust)
    camera, traj = None, raw
    if remove_camera:
        camera = fit_camera_motion(raw, conf)
        if camera.removed:
            traj = remove_camera_motion(raw, camera)
    stats = motion_stats(traj, conf, camera.max_px if camera is not None else 0.0)
    return WindowAnalysis(traj, raw, conf, camera, stats)


@dataclasses.dataclass
class Extraction:
    volume: SpectralVolume
    clip: Clip
    stats: MotionStats
    rejected: str | None  # the rejection reason when --force overrode it


def volume_from_frames(frames: np.ndarray, fps: float, k: int = 16, flow: FlowConfig = FlowConfig(),
                       progress: bool = False, source_size=(0, 0), **provenance):
    """frames (T, H, W, 3) uint8 -> (SpectralVolume, trajectories (T, 2, H, W)) as flowed (no camera removal)."""
    traj = compute_trajectories(frames, flow, progress=progress)
    volume = SpectralVolume.from_trajectories(traj, k=k, fps=fps, source_size=source_size, provenance=provenance)
    return volume, traj


def extract(video, *, start: int = 0, num_frames: int = 150, k: int = 16, size=(256, 160), fps=None,
            method: str = "dis", force: bool = False, progress: bool = False,
            remove_camera: bool = True) -> Extraction:
    """Extract the spectral volume of a clip window; raises VideoError / RejectedWindow with what to do."""
    if num_frames < 2 * k - 1:
        raise VideoError(f"--frames {num_frames} is too short for --k {k}: needs at least {2 * k - 1} frames "
                         f"(or lower --k to {max_bins(num_frames)})")
    clip = read_clip(video, start=start, num_frames=num_frames, size=size, fps=fps)
    have = clip.frames.shape[0]
    if have < num_frames:
        hint = f"--frames {have}" if have >= 2 * k - 1 else f"--k {max_bins(have)} --frames {have}"
        raise VideoError(f"'{os.path.basename(os.fspath(video))}' has only {have} frames from --start {start}, "
                         f"fewer than --frames {num_frames}; use {hint} or an earlier --start")
    window = analyze_window(clip.frames, FlowConfig(method=method), remove_camera=remove_camera, progress=progress)
    volume = SpectralVolume.from_trajectories(window.trajectories, k=k, fps=clip.fps, source_size=clip.source_size,
                                              provenance={"extracted_from": os.path.basename(os.fspath(video)),
                                                          "start_frame": start})
    stats = window.stats
    reason = stats.verdict()
    if reason and not force:
        raise RejectedWindow(f"window rejected, {reason}. Pass --force to extract it anyway.")
    return Extraction(volume, clip, stats, reason)
