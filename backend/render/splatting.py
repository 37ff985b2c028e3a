"""Softmax splatting of a feature pyramid (paper §5), pure torch on CPU or CUDA, bit-stable on CPU.

Who is in front where sources collide: ``backend.splat.motion_metric`` of the motion magnitude W(p) = mean_t
||F_t(p)||^2 over the loop (pixels², as in ``RenderPairs.weight``). Level s of the pyramid is warped by the flow
averaged over 2**s x 2**s blocks and divided by 2**s (pixels of that level), with the metric averaged the same
way.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from backend.splat import softmax_splat


def downsample_flow(flow: torch.Tensor, level: int) -> torch.Tensor:
    """(B, 2, H, W) flow in pixels -> (B, 2, H / 2**level, W / 2**level) in pixels of that level."""
    if level == 0:
        return flow
    f = 2 ** level
    return F.avg_pool2d(flow, f) / f


def downsample(x: torch.Tensor, level: int) -> torch.Tensor:
    return x if level == 0 else F.avg_pool2d(x, 2 ** level)


def pyramid_splat(levels: list, flow: torch.Tensor, metric: torch.Tensor) -> list:
    """Forward-warp every level of a feature pyramid.

    ``levels[s]`` (B, C_s, H / 2**s, W / 2**s) (B may be 1 and is then shared by all frames); ``flow`` (N, 2, H, W);
    ``metric`` (N, 1, H, W). Returns a list of (warped (N, C_s, ...), coverage (N, 1, ...)) per level; holes are
    0 with coverage 0.
    """
    n = flow.shape[0]
    out = []
    for s, feats in enumerate(levels):
        if feats.shape[0] not in (1, n):
            raise ValueError(f"level {s} has batch {feats.shape[0]}, flows have {n}")
        fl = downsample_flow(flow, s)
        if fl.shape[-2:] != feats.shape[-2:]:
            raise ValueError(f"level {s} is {tuple(feats.shape[-2:])} but the flow pools to {tuple(fl.shape[-2:])}: "
                             "pad frames to a multiple of 2**(levels-1)")
        src = feats.expand(n, -1, -1, -1) if feats.shape[0] != n else feats
        out.append(softmax_splat(src, fl, downsample(metric, s), return_coverage=True))
    return out
