"""The spectral-volume contract, torch side: the twin of ``addon/core/spectral.py`` (same names, same math).

Layouts (see addon/core/spectral.py): coeffs (..., K, 4, H, W) = [Re x, Im x, Re y, Im y]; trajectories
(..., T, 2, H, W); displacement (..., 2, H, W); modal coordinates (N, K) complex. Leading batch axes are allowed
everywhere. File I/O and validation stay in the numpy module (one owner of the schema), and so do a loop's modal
coordinates (``addon.core.spectral.loop_coordinates``, plain numpy); :func:`to_volume` makes a volume of a tensor,
``torch.from_numpy(volume.coeffs)`` a tensor of a volume.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from addon.core import spectral as np_spectral
from addon.core.spectral import NORMALIZATION_PERCENTILE, SpectralVolume, max_bins


def frequencies(k: int, fps: float, num_frames: int, device=None) -> torch.Tensor:
    return torch.arange(k, dtype=torch.float64, device=device) * (float(fps) / float(num_frames))


def to_complex(coeffs: torch.Tensor) -> torch.Tensor:
    """(..., K, 4, H, W) real -> (..., K, 2, H, W) complex."""
    return torch.complex(coeffs[..., 0::2, :, :], coeffs[..., 1::2, :, :])


def from_complex(a: torch.Tensor) -> torch.Tensor:
    """(..., K, 2, H, W) complex -> (..., K, 4, H, W) real, channels interleaved [Re x, Im x, Re y, Im y]."""
    stacked = torch.stack([a.real, a.imag], dim=-3)  # (..., K, 2, 2, H, W): [xy][re im]
    return stacked.flatten(-4, -3)


def trajectories_to_spectral(traj: torch.Tensor, k: int = np_spectral.DEFAULT_K) -> torch.Tensor:
    """(..., T, 2, H, W) displacements in pixels -> (..., K, 4, H, W) one-sided amplitudes."""
    if traj.ndim < 4 or traj.shape[-3] != 2:
        raise ValueError(f"trajectories must have shape (..., T, 2, H, W), got {tuple(traj.shape)}")
    t = traj.shape[-4]
    if not 1 <= k <= max_bins(t):
        raise ValueError(f"K={k} needs at least {2 * k - 1} frames below Nyquist; the clip has {t} frames")
    s = torch.fft.rfft(traj, dim=-4).narrow(-4, 0, k)
    scale = torch.full((k, 1, 1, 1), 2.0 / t, dtype=traj.dtype, device=traj.device)
    scale[0] = 1.0 / t
    return from_complex(s * scale)


def _basis_displacement(coeffs: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``Re(sum_k A_k q_k)`` as one matrix product: basis = [Re q, -Im q] (N, 2K), rows of the coefficients
    [Re A_k; Im A_k] (2K, 2HW). The basis is rounded to the coefficients' dtype only here, so long times stay exact."""
    *lead, k, _, h, w = coeffs.shape
    basis = basis.to(device=coeffs.device, dtype=coeffs.dtype)
    # channels [Re x, Im x, Re y, Im y] -> (..., K, xy, re/im, HW) -> (..., K * re/im, xy * HW)
    mat = coeffs.reshape(*lead, k, 2, 2, h * w).transpose(-3, -2).reshape(*lead, 2 * k, 2 * h * w)
    return (basis @ mat).view(*lead, -1, 2, h, w)


def modal_displacement(coeffs: torch.Tensor, q) -> torch.Tensor:
    """``F = Re(sum_k A_k q_k)``: coeffs (..., K, 4, H, W) and modal coordinates q (N, K) complex (tensor or
    array) -> (..., N, 2, H, W)."""
    k = coeffs.shape[-4]
    q = torch.as_tensor(q).to("cpu", torch.complex128)
    if q.ndim != 2 or q.shape[1] != k:
        raise ValueError(f"modal coordinates must have shape (N, K={k}), got {tuple(q.shape)}")
    return _basis_displacement(coeffs, torch.stack([q.real, -q.imag], dim=2).reshape(-1, 2 * k))


def displacement_at(coeffs: torch.Tensor, freqs_hz, t_seconds) -> torch.Tensor:
    """Displacement (..., 2, H, W) at a scalar time in seconds, or (..., N, 2, H, W) for N times (1-D tensor,
    array or list). Phases are formed in float64, so long times stay exact."""
    k = coeffs.shape[-4]
    t = torch.as_tensor(t_seconds, dtype=torch.float64).cpu()
    freqs = torch.as_tensor(freqs_hz, dtype=torch.float64).cpu()
    phase = 2.0 * math.pi * t.reshape(-1, 1) * freqs.reshape(1, -1)  # (N, K)
    # Re(A e^{i phi}) = Re A cos phi - Im A sin phi
    out = _basis_displacement(coeffs, torch.stack([torch.cos(phase), -torch.sin(phase)], dim=2).reshape(-1, 2 * k))
    return out.squeeze(-4) if t.ndim == 0 else out


def spectral_to_trajectories(coeffs: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(..., K, 4, H, W) -> (..., T, 2, H, W) at frames 0..T-1."""
    freqs = torch.arange(coeffs.shape[-4], dtype=torch.float64) / float(num_frames)
    return displacement_at(coeffs, freqs, torch.arange(num_frames, dtype=torch.float64))


def mean_square_displacement(coeffs: torch.Tensor) -> torch.Tensor:
    """``W(p) = mean over the loop of ||F_t(p)||^2`` in px^2: coeffs (..., K, C, H, W) -> (..., H, W).

    ``||Re A_0||^2 + sum_{k>=1} ||A_k||^2 / 2`` (Parseval); Im A_0 moves nothing and does not count (see the numpy
    twin). Channels interleave [Re, Im] per component (C = 4 for a volume). Computed in float64, returned in the
    coefficients' dtype."""
    c = coeffs.double()
    power = (c[..., 0, 0::2, :, :] ** 2).sum(dim=-3) + 0.5 * (c[..., 1:, :, :, :] ** 2).sum(dim=(-4, -3))
    return power.to(coeffs.dtype)


def resample(coeffs: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of (..., K, 4, H, W); x amplitudes scale with W, y with H."""
    lead = coeffs.shape[:-2]
    h, w = coeffs.shape[-2:]
    flat = coeffs.reshape(-1, 1, h, w)
    out = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False).reshape(
        *lead, height, width)
    scale = torch.tensor([width / w, width / w, height / h, height / h], dtype=coeffs.dtype, device=coeffs.device)
    return out * scale.reshape(4, 1, 1)


def normalization_scales(coeffs: torch.Tensor, percentile: float = NORMALIZATION_PERCENTILE,
                         eps: float = 1e-6) -> torch.Tensor:
    """s_k = percentile of |c| per frequency over (..., K, 4, H, W) -> (K,). Linear interpolation like numpy."""
    k = coeffs.shape[-4]
    per_k = coeffs.abs().movedim(-4, 0).reshape(k, -1).to(torch.float64)
    values, _ = torch.sort(per_k, dim=1)
    n = values.shape[1]
    pos = (n - 1) * percentile / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    s = values[:, lo] * (1.0 - frac) + values[:, hi] * frac
    return s.clamp_min(eps).to(coeffs.dtype)


def normalize(coeffs: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """sign(c) * sqrt(|c| / s_k)."""
    s = scales.to(coeffs).reshape(-1, 1, 1, 1)
    return torch.sign(coeffs) * torch.sqrt(coeffs.abs() / s)


def denormalize(z: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`: sign(z) * z^2 * s_k."""
    s = scales.to(z).reshape(-1, 1, 1, 1)
    return torch.sign(z) * z * z * s


def to_volume(coeffs: torch.Tensor, fps: float, num_frames: int, source_size=(0, 0), **provenance) -> SpectralVolume:
    """coeffs tensor (K, 4, H, W) -> validated SpectralVolume (on the CPU, float32)."""
    return SpectralVolume(coeffs.detach().to("cpu", torch.float32).numpy(), fps=fps, num_frames=num_frames,
                          source_size=source_size, provenance=dict(provenance))
