"""Training losses and image metrics without any downloaded network: L1, SSIM, image-gradient L1, MSE, PSNR.

Images are (B, 3, H, W) in [0, 1]. SSIM uses the standard 11x11 Gaussian window (sigma 1.5) with C1 = 0.01²,
C2 = 0.03², computed per channel on the valid region (no padding), averaged.
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
C1 = 0.01 ** 2
C2 = 0.03 ** 2


def _gaussian_window(channels: int, size: int, sigma: float, dtype, device) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return g.to(dtype=dtype, device=device).view(1, 1, 1, size).expand(channels, 1, 1, size).contiguous()


def ssim_map(a: torch.Tensor, b: torch.Tensor, size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Per-pixel SSIM (B, C, H - size + 1, W - size + 1) of two image batches in [0, 1]."""
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"SSIM needs two (B, C, H, W) batches of the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if min(a.shape[-2:]) < size:
        raise ValueError(f"images of {tuple(a.shape[-2:])} are smaller than the {size}x{size} SSIM window")
    c = a.shape[1]
    g = _gaussian_window(c, size, sigma, a.dtype, a.device)

    def blur(x):
        return F.conv2d(F.conv2d(x, g, groups=c), g.transpose(2, 3), groups=c)

    mu_a, mu_b = blur(a), blur(b)
    aa, bb, ab = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + C1) * (2 * ab + C2)) / ((mu_a ** 2 + mu_b ** 2 + C1) * (aa + bb + C2))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per image (B,)."""
    return ssim_map(a, b).mean(dim=(1, 2, 3))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image (B,) for images in [0, 1] (inf for identical images)."""
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).double()
    return (10.0 * torch.log10(1.0 / mse)).to(a.dtype)


def gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean |∇a - ∇b| over forward differences in x and y (scalar)."""
    dx = (a[..., :, 1:] - a[..., :, :-1]) - (b[..., :, 1:] - b[..., :, :-1])
    dy = (a[..., 1:, :] - a[..., :-1, :]) - (b[..., 1:, :] - b[..., :-1, :])
    return 0.5 * (dx.abs().mean() + dy.abs().mean())


@dataclasses.dataclass(frozen=True)
class LossWeights:
    l1: float = 1.0
    ssim: float = 0.5
    gradient: float = 0.5
    mse: float = 0.0  # x 100: squared error in the units of the others (fine-tuning for PSNR, the evaluation's metric)

    @classmethod
    def parse(cls, text: str) -> "LossWeights":
        """"l1=1,ssim=0.5,gradient=0.5,mse=0" (any subset; the rest keep their defaults) -> LossWeights."""
        names = [f.name for f in dataclasses.fields(cls)]
        values = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, value = item.partition("=")
            if not sep or name.strip() not in names:
                raise ValueError(f"loss weight '{item}': write name=value with a name from {', '.join(names)}")
            try:
                values[name.strip()] = float(value)
            except ValueError:
                raise ValueError(f"loss weight '{item}': {value!r} is not a number") from None
            if not math.isfinite(values[name.strip()]) or values[name.strip()] < 0:
                raise ValueError(f"loss weight '{item}' must be a finite number >= 0")
        weights = cls(**values)
        if not any(getattr(weights, n) > 0 for n in names):
            raise ValueError("at least one loss weight must be positive")
        return weights


def render_loss(pred: torch.Tensor, target: torch.Tensor, weights: LossWeights = LossWeights()):
    """Total loss (scalar) and its parts {"l1", "ssim", "gradient", "mse"} as floats."""
    diff = pred - target
    l1 = diff.abs().mean()
    s = 1.0 - ssim(pred, target).mean()
    g = gradient_l1(pred, target)
    mse = (diff ** 2).mean()
    total = weights.l1 * l1 + weights.ssim * s + weights.gradient * g + weights.mse * 100.0 * mse
    parts = {"l1": float(l1.detach()), "ssim": float(s.detach()), "gradient": float(g.detach()),
             "mse": float(mse.detach())}
    if not math.isfinite(float(total.detach())):
        raise FloatingPointError(f"the render loss is not finite ({parts}): lower the learning rate")
    return total, parts
