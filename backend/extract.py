"""Motion from video: a window of T frames -> trajectories -> spectral volume (DESIGN.md "Motion from video").

Rejection rules (paper, supplement), on the per-pixel time-averaged displacement m(p) at the working size:

* *camera motion* when at least 95% of pixels have m(p) > 1 px;
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
from backend.flow import FlowConfig, compute_trajectories
from backend.video import Clip, VideoError, read_clip

log = logging.getLogger(__name__)

CAMERA_FRACTION = 0.95
STATIC_FRACTION = 0.01
MOVE_PX = 1.0


class RejectedWindow(ValueError):
    """The window fails a rejection rule; ``--force`` extracts it anyway."""


@dataclasses.dataclass
class MotionStats:
    fraction_moving: float  # fraction of pixels whose time-averaged displacement exceeds MOVE_PX
    mean_motion_px: float  # time-averaged displacement, averaged over those moving pixels
    max_motion_px: float  # largest time-averaged displacement of any pixel

    def verdict(self):
        """None when the window is usable, else a sentence saying why not."""
        if self.fraction_moving >= CAMERA_FRACTION:
            return (f"camera motion: {100 * self.fraction_moving:.0f}% of pixels move more than {MOVE_PX:g} px on "
                    f"average (limit {100 * CAMERA_FRACTION:.0f}%); use a tripod clip or another --start")
        if self.fraction_moving < STATIC_FRACTION:
            return (f"no motion: only {100 * self.fraction_moving:.2f}% of pixels move more than {MOVE_PX:g} px on "
                    f"average (needs {100 * STATIC_FRACTION:g}%; the strongest moves {self.max_motion_px:.2f} px); "
                    f"try a larger --size or a livelier part of the clip")
        return None


def motion_stats(traj: np.ndarray) -> MotionStats:
    """traj (T, 2, H, W) -> statistics for the rejection rules."""
    mag = np.sqrt((traj.astype(np.float64) ** 2).sum(axis=1))  # (T, H, W)
    per_pixel = mag.mean(axis=0)
    moving = per_pixel > MOVE_PX
    mean_moving = float(per_pixel[moving].mean()) if moving.any() else 0.0
    return MotionStats(float(moving.mean()), mean_moving, float(per_pixel.max()))


@dataclasses.dataclass
class Extraction:
    volume: SpectralVolume
    clip: Clip
    stats: MotionStats
    rejected: str | None  # the rejection reason when --force overrode it


def volume_from_frames(frames: np.ndarray, fps: float, k: int = 16, flow: FlowConfig = FlowConfig(),
                       progress: bool = False, source_size=(0, 0), **provenance):
    """frames (T, H, W, 3) uint8 -> (SpectralVolume, trajectories (T, 2, H, W))."""
    traj = compute_trajectories(frames, flow, progress=progress)
    volume = SpectralVolume.from_trajectories(traj, k=k, fps=fps, source_size=source_size, provenance=provenance)
    return volume, traj


def extract(video, *, start: int = 0, num_frames: int = 150, k: int = 16, size=(256, 160), fps=None,
            method: str = "dis", force: bool = False, progress: bool = False) -> Extraction:
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
    flow = FlowConfig(method=method)
    volume, traj = volume_from_frames(clip.frames, clip.fps, k=k, flow=flow, progress=progress,
                                      source_size=clip.source_size,
                                      extracted_from=os.path.basename(os.fspath(video)), start_frame=start)
    stats = motion_stats(traj)
    reason = stats.verdict()
    if reason and not force:
        raise RejectedWindow(f"window rejected, {reason}. Pass --force to extract it anyway.")
    return Extraction(volume, clip, stats, reason)
