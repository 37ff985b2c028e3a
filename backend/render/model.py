"""The paper's renderer: encoder -> softmax splatting of every pyramid level by F_t -> synthesis decoder.

The decoder predicts a correction added to the base frame: the photo forward-warped by softmax splatting with
its holes filled by push-pull (``backend.splat.fill_holes``, as in the preview). Its last layer starts at zero, so
an untrained renderer reproduces that base frame exactly, and zero motion gives back the photo.

The photo's features are computed once (:meth:`encode`) and reused for every frame (:meth:`synthesize`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from backend.splat import fill_holes, motion_metric

from .blocks import FeatureEncoder, SynthesisDecoder
from .config import RendererConfig
from .splatting import pyramid_splat


SIDE_FLOW_SCALE = 16.0  # px: flows enter the decoder's side input in units of this


def backward_sample(image: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``image`` (N, C, H, W) sampled at p + offset(p) (offset (N, 2, H, W) px; bilinear, border replicated)."""
    n, _, h, w = offset.shape
    ys = torch.arange(h, dtype=offset.dtype, device=offset.device).view(1, h, 1)
    xs = torch.arange(w, dtype=offset.dtype, device=offset.device).view(1, 1, w)
    gx = (xs + offset[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + offset[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return F.grid_sample(image, torch.stack([gx, gy], dim=-1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "replicate") -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom and right so H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    if mode == "constant":
        return F.pad(x, (0, pw, 0, ph))
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def check_inputs(image: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor) -> None:
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must have shape (B, 3, H, W) in [0, 1], got {tuple(image.shape)}")
    n, _, h, w = flow.shape if flow.ndim == 4 else (0, 0, 0, 0)
    if flow.ndim != 4 or flow.shape[1] != 2 or (h, w) != tuple(image.shape[-2:]):
        raise ValueError(f"flow must have shape (N, 2, {image.shape[-2]}, {image.shape[-1]}) in pixels, "
                         f"got {tuple(flow.shape)}")
    if image.shape[0] not in (1, n):
        raise ValueError(f"{image.shape[0]} images for {n} flows: give one image per flow or a single image")
    if weight.ndim != 4 or weight.shape[1] != 1 or weight.shape[0] not in (1, n) or weight.shape[-2:] != (h, w):
        raise ValueError(f"weight must have shape (N or 1, 1, {h}, {w}) (px²), got {tuple(weight.shape)}")


class RendererBase(nn.Module):
    """Shared padding and call conventions: ``forward(image, flow, weight)`` -> (N, 3, H, W)."""

    config: RendererConfig

    def encode(self, image: torch.Tensor):  # pragma: no cover - abstract
        raise NotImplementedError

    def synthesize(self, image, feats, flow, weight):  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(self, image: torch.Tensor):
        """Pad the photo (B, 3, H, W) and encode it once; returns a state for :meth:`frames`."""
        m = self.config.multiple
        padded = pad_to_multiple(image, m)
        return {"image": padded, "feats": self.encode(padded), "size": tuple(image.shape[-2:])}

    def frames(self, state, flow: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Frames (N, 3, H, W) for flows (N, 2, H, W) and motion magnitude weight (N or 1, 1, H, W)."""
        h, w = state["size"]
        check_inputs(state["image"][..., :h, :w], flow, weight)
        m = self.config.multiple
        flow = pad_to_multiple(flow, m, "constant")
        weight = pad_to_multiple(weight, m, "constant")
        weight = weight.expand(flow.shape[0], -1, -1, -1) if weight.shape[0] != flow.shape[0] else weight
        return self.synthesize(state["image"], state["feats"], flow, weight)[..., :h, :w]

    def forward(self, image: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        check_inputs(image, flow, weight)
        return self.frames(self.prepare(image), flow, weight)


class PyramidRenderer(RendererBase):
    def __init__(self, config: RendererConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.encoder = FeatureEncoder(c)
        # Level 0 carries the photo and the metric along with the features; every level adds its coverage.
        in_channels = [c[0] + 3 + 1 + 1] + [cs + 1 for cs in c[1:]]
        # The optional side input: the photo, the photo at p - F(p), the flow / SIDE_FLOW_SCALE.
        self.decoder = SynthesisDecoder(in_channels, c, side_channels=8 if config.source_inputs else 0,
                                        blocks=config.decoder_blocks)
        self.metric_gain = nn.Parameter(torch.zeros(()))  # log gain of the metric, learned

    def gain(self) -> torch.Tensor:
        return torch.exp(self.metric_gain.clamp(-3.0, 1.0))

    def encode(self, image: torch.Tensor) -> list:
        return self.encoder(image)

    def synthesize(self, image, feats, flow, weight) -> torch.Tensor:
        metric = motion_metric(weight, self.config.metric_range, self.config.min_motion_px, self.gain())
        n = flow.shape[0]
        rgb = image.expand(n, -1, -1, -1) if image.shape[0] != n else image
        f0 = feats[0].expand(n, -1, -1, -1) if feats[0].shape[0] != n else feats[0]
        levels = [torch.cat([rgb, metric, f0], dim=1)] + list(feats[1:])
        warped = pyramid_splat(levels, flow, metric)
        w0, cov0 = warped[0]
        base = fill_holes(w0[:, :3], cov0, w0[:, 3:4])
        inputs = [torch.cat([w0, cov0], dim=1)] + [torch.cat(pair, dim=1) for pair in warped[1:]]
        side = None
        if self.config.source_inputs:
            side = torch.cat([rgb, backward_sample(rgb, -flow), flow / SIDE_FLOW_SCALE], dim=1)
        return base + self.decoder(inputs, side)
