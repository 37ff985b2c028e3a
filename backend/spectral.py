"""The spectral-volume contract, torch side: the twin of ``addon/core/spectral.py`` (same names, same math).

Layouts (see addon/core/spectral.py): coeffs (..., K, 4, H, W) = [Re x, Im x, Re y, Im y]; trajectories
(..., T, 2, H, W); displacement (..., 2, H, W). Leading batch axes are allowed everywhere. File I/O and
validation stay in the numpy module (one owner of the schema); use :func:`to_volume` / :func:`from_volume`.
"""
from __future__ import annotations

import math

import numpy as np
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


def displacement_at(coeffs: torch.Tensor, freqs_hz, t_seconds) -> torch.Tensor:
    """Displacement (..., 2, H, W) at a scalar time, or (..., N, 2, H, W) for a 1-D tensor of N times."""
    a = to_complex(coeffs)  # (..., K, 2, H, W)
    freqs = torch.as_tensor(freqs_hz, dtype=torch.float64, device=coeffs.device)
    t = torch.as_tensor(t_seconds, dtype=torch.float64, device=coeffs.device)
    scalar = t.ndim == 0
    phase = 2.0 * math.pi * t.reshape(-1, 1) * freqs.reshape(1, -1)  # (N, K)
    cos = torch.cos(phase).to(coeffs.dtype)
    sin = torch.sin(phase).to(coeffs.dtype)
    # Re(A e^{i phi}) = Re A cos phi - Im A sin phi
    out = torch.einsum("nk,...kchw->...nchw", cos, a.real) - torch.einsum("nk,...kchw->...nchw", sin, a.imag)
    return out.squeeze(-4) if scalar else out


def spectral_to_trajectories(coeffs: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(..., K, 4, H, W) -> (..., T, 2, H, W) at frames 0..T-1."""
    freqs = torch.arange(coeffs.shape[-4], dtype=torch.float64) / float(num_frames)
    return displacement_at(coeffs, freqs, torch.arange(num_frames, dtype=torch.float64))


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


def from_volume(volume: SpectralVolume, device=None) -> torch.Tensor:
    """SpectralVolume -> coeffs tensor (K, 4, H, W) float32."""
    return torch.from_numpy(np.ascontiguousarray(volume.coeffs)).to(device=device)


def to_volume(coeffs: torch.Tensor, fps: float, num_frames: int, source_size=(0, 0), **provenance) -> SpectralVolume:
    """coeffs tensor (K, 4, H, W) -> validated SpectralVolume (on the CPU, float32)."""
    return SpectralVolume(coeffs.detach().to("cpu", torch.float32).numpy(), fps=fps, num_frames=num_frames,
                          source_size=source_size, provenance=dict(provenance))
