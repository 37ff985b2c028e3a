"""From a spectral volume and per-frame modal coordinates to the flows F_t the renderer warps by.

Modal coordinates (the add-on's convention, see docs/renderer.md): for output frame n, K complex numbers q_k(n)
give the displacement of every pixel

    F_n(p) = Re( sum_k A_k(p) q_k(n) )      (pixels of the map, x right, y down)

* Loop (what the add-on bakes): ``q_k = amplitude * exp(2 pi i k (frame - phase_frame) / L)`` with the loop
  length L in scene frames (:meth:`LoopSettings.coordinates`, i.e. ``addon.core.spectral.loop_coordinates``).
* Pokes: q_k(n) simulated by ``addon.core.modal`` (any complex values; q_0 is the loop's constant term).

The flows themselves are ``backend.spectral.modal_displacement``; who is in front does not depend on q: the
mean-square displacement over the volume's own loop (``backend.spectral.mean_square_displacement``).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from addon.core import spectral
from addon.core.spectral import SpectralVolume


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    """A seamless loop: ``loop_frames`` (L, scene frames per loop), ``phase_frame`` (scene frame where the loop's
    phase is 0), ``amplitude`` (motion scale)."""

    loop_frames: float
    phase_frame: float = 0.0
    amplitude: float = 1.0

    def __post_init__(self):
        for name in ("loop_frames", "phase_frame", "amplitude"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"loop {name} must be a finite number, got {v!r}")
        if self.loop_frames < 2:
            raise ValueError(f"loop loop_frames must be at least 2, got {self.loop_frames}")

    @classmethod
    def for_volume(cls, volume: SpectralVolume, fps: float, amplitude: float = 1.0, phase_frame: float = 0.0):
        """The volume's own loop at ``fps`` output frames per second (L = T / volume.fps * fps)."""
        return cls(loop_frames=volume.num_frames / volume.fps * float(fps), phase_frame=phase_frame,
                   amplitude=amplitude)

    def coordinates(self, k: int, frames) -> np.ndarray:
        """q (N, K) complex128 of this loop at scene ``frames`` (N,)."""
        return spectral.loop_coordinates(k, frames, self.loop_frames, self.amplitude, self.phase_frame)[0]


def check_coordinates(q, k: int, num_frames: int | None = None) -> np.ndarray:
    """Modal coordinates as (N, K) complex128 from complex (N, K) or real (N, K, 2) [re, im] arrays / lists.

    ValueError naming what is wrong (shape, K mismatch with the volume, non-finite values)."""
    try:
        arr = np.asarray(q)
    except (TypeError, ValueError):
        raise ValueError("modal coordinates must be an array (N, K, 2) of [re, im] pairs") from None
    if arr.dtype == object:
        raise ValueError("modal coordinates must be an array (N, K, 2) of [re, im] pairs; rows have different "
                         "lengths")
    if np.iscomplexobj(arr):
        out = arr.astype(np.complex128)
        if out.ndim != 2:
            raise ValueError(f"complex modal coordinates must have shape (N, K), got {out.shape}")
    else:
        if arr.ndim != 3 or arr.shape[2] != 2:
            raise ValueError(f"modal coordinates must have shape (N frames, K bands, 2) = [re, im], got {arr.shape}")
        if arr.dtype.kind not in "fiu":
            raise ValueError(f"modal coordinates must be numbers, got dtype {arr.dtype}")
        out = arr[..., 0].astype(np.float64) + 1j * arr[..., 1].astype(np.float64)
    if out.shape[1] != k:
        raise ValueError(f"modal coordinates have {out.shape[1]} bands per frame but the volume has K={k}: send one "
                         "[re, im] pair per band of the volume")
    if num_frames is not None and out.shape[0] != num_frames:
        raise ValueError(f"modal coordinates cover {out.shape[0]} frames but {num_frames} frames were asked for: "
                         "send one row per requested frame")
    if not np.all(np.isfinite(out)):
        raise ValueError("modal coordinates contain NaN or infinity")
    return out
