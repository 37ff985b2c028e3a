"""From a spectral volume and per-frame modal coordinates to the flows F_t the renderer warps by.

Modal coordinates (the add-on's convention, see docs/renderer.md): for output frame n, K complex numbers q_k(n)
give the displacement of every pixel

    F_n(p) = Re( sum_k A_k(p) q_k(n) )      (pixels of the map, x right, y down)

* Loop (what the add-on bakes): ``q_k = amplitude * exp(2 pi i k (frame - phase_frame) / L)`` with the loop
  length L in scene frames; with L = T / volume_fps * scene_fps this is exp(2 pi i f_k t), t = seconds since
  ``phase_frame``, i.e. the spectral-volume formula.
* Pokes: q_k(n) simulated by ``addon.core.modal`` (any complex values; q_0 is the loop's constant term).

Who is in front does not depend on q: W(p) = mean over the loop of ||F_t(p)||^2 from the volume itself
(Parseval: ``Re(A_0)^2 + sum_{k>=1} |A_k|^2 / 2`` per axis), as in the preview.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

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


def loop_coordinates(k: int, frames, loop: LoopSettings) -> np.ndarray:
    """q (N, K) complex128 of a loop at scene ``frames`` (N,)."""
    frames = np.asarray(frames, dtype=np.float64).reshape(-1)
    omega = 2.0 * math.pi * np.arange(k, dtype=np.float64) / float(loop.loop_frames)
    return loop.amplitude * np.exp(1j * np.multiply.outer(frames - loop.phase_frame, omega))


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


def modal_flows(coeffs: torch.Tensor, q: np.ndarray) -> torch.Tensor:
    """coeffs (K, 4, H, W) and q (N, K) complex -> flows (N, 2, H, W), F = Re sum_k A_k q_k.

    One matrix product: [Re q, -Im q] (N, 2K) @ [Re A; Im A] (2K, 2HW). Coordinates are rounded to the coeffs'
    dtype only at the end, so long loops stay exact."""
    k, _, h, w = coeffs.shape
    q = np.asarray(q, dtype=np.complex128)
    if q.ndim != 2 or q.shape[1] != k:
        raise ValueError(f"q must have shape (N, {k}), got {q.shape}")
    basis = torch.from_numpy(np.stack([q.real, -q.imag], axis=2).reshape(-1, 2 * k))  # (N, 2K) [k][re, im]
    basis = basis.to(device=coeffs.device, dtype=coeffs.dtype)
    mat = coeffs.reshape(k, 2, 2, h * w).permute(0, 2, 1, 3).reshape(2 * k, 2 * h * w)  # rows k*2 + {re, im}
    return (basis @ mat).view(-1, 2, h, w)


def motion_weight(coeffs: torch.Tensor) -> torch.Tensor:
    """W(p) = mean_t ||F_t(p)||^2 over the loop (px²), (1, 1, H, W), exact by Parseval."""
    c = coeffs.double()
    power = c[0, 0] ** 2 + c[0, 2] ** 2 + 0.5 * (c[1:] ** 2).sum(dim=(0, 1))
    return power.to(coeffs.dtype)[None, None]


def fit_volume(volume: SpectralVolume, width: int, height: int) -> SpectralVolume:
    """The volume resampled to the render size (amplitudes scale with the map: x with W, y with H)."""
    if (volume.width, volume.height) == (width, height):
        return volume
    return volume.resampled(width, height)
