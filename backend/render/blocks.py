"""Building blocks of the renderer: residual blocks, the ResNet-style feature encoder, the synthesis decoder.

Plain convolutions and ReLUs without normalisation layers (batches are small, and the same weights must work on
one photo and on a batch of frames). Shapes: images (B, 3, H, W) in [0, 1]; H and W are multiples of
``2 ** (levels - 1)`` (callers pad, see :func:`backend.render.model.pad_to_multiple`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """x + conv(relu(conv(x))), then ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv3(channels, channels)
        self.conv2 = conv3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class FeatureEncoder(nn.Module):
    """ResNet-style encoder: one feature map per level, level s at 1 / 2**s resolution with ``channels[s]``
    channels. (B, 3, H, W) -> [(B, c0, H, W), (B, c1, H/2, W/2), ...]."""

    def __init__(self, channels):
        super().__init__()
        stages = []
        cin = 3
        for s, c in enumerate(channels):
            stages.append(nn.Sequential(conv3(cin, c, stride=1 if s == 0 else 2), nn.ReLU(), ResBlock(c)))
            cin = c
        self.stages = nn.ModuleList(stages)

    def forward(self, image: torch.Tensor) -> list:
        feats = []
        x = image
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class SynthesisDecoder(nn.Module):
    """Coarse-to-fine decoder over warped features.

    ``inputs[s]`` (B, in_channels[s], H / 2**s, W / 2**s) are the splatted features of level s (with their
    coverage). Level by level from the coarsest: fuse, upsample, concatenate the next finer level, fuse. Returns
    a (B, 3, H, W) correction whose last layer starts at zero, so an untrained renderer outputs its base image.

    ``side_channels`` > 0: the finest level also takes ``side`` (B, side_channels, H, W), through its own
    convolution added to the finest fusion's first one (the same as concatenating it); that convolution starts at
    zero, so weights trained without the side input give the same output with it. ``blocks``: residual blocks
    per level; the ones after the first start as the identity, so weights trained with fewer give the same output.
    """

    def __init__(self, in_channels, channels, side_channels: int = 0, blocks: int = 1):
        super().__init__()
        n = len(channels)
        self.fuse = nn.ModuleList()
        self.up = nn.ModuleList()
        for s in reversed(range(n)):
            extra = channels[s] if s < n - 1 else 0  # upsampled coarser decoder state
            extra_blocks = [ResBlock(channels[s]) for _ in range(blocks - 1)]
            for block in extra_blocks:  # identity at the start (its input is already >= 0)
                nn.init.zeros_(block.conv2.weight)
                nn.init.zeros_(block.conv2.bias)
            self.fuse.append(nn.Sequential(conv3(in_channels[s] + extra, channels[s]), nn.ReLU(),
                                           ResBlock(channels[s]), *extra_blocks))
            if s > 0:
                self.up.append(conv3(channels[s], channels[s - 1]))
        self.head = conv3(channels[0], 3)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.side = None
        if side_channels:
            self.side = conv3(side_channels, channels[0])
            nn.init.zeros_(self.side.weight)
            nn.init.zeros_(self.side.bias)

    def forward(self, inputs: list, side: torch.Tensor | None = None) -> torch.Tensor:
        if (side is None) != (self.side is None):
            raise ValueError("give the side input exactly when the decoder was built with side_channels")
        n = len(inputs)
        x = None
        for i, s in enumerate(reversed(range(n))):
            feats = inputs[s] if x is None else torch.cat([inputs[s], x], dim=1)
            conv, relu, *blocks = self.fuse[i]
            x = conv(feats)
            if s == 0 and side is not None:
                x = x + self.side(side)
            x = relu(x)
            for block in blocks:
                x = block(x)
            if s > 0:
                x = F.interpolate(x, size=inputs[s - 1].shape[-2:], mode="bilinear", align_corners=False)
                x = F.relu(self.up[i](x))
        return self.head(x)
