"""The ablation's "baseline splat": single-scale features, softmax splatting with a *learned* metric.

Features of the photo at full resolution only; a small head predicts the splat metric from them (as in Niklaus &
Liu's learned importance metric) instead of taking it from the motion magnitude. After the splat, strided
convolutions build the coarser levels from the warped features, and the same synthesis decoder as the pyramid
renderer makes the frame (so the two differ only in *where* multi-scale context comes from and *who* is in
front). The motion magnitude ``weight`` is accepted and ignored.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from backend.splat import fill_holes, softmax_splat

from .blocks import ResBlock, SynthesisDecoder, conv3
from .model import RendererBase


class BaselineSplatRenderer(RendererBase):
    def __init__(self, config):
        super().__init__()
        self.config = config
        c = config.channels
        self.encoder = nn.Sequential(conv3(3, c[0]), nn.ReLU(), ResBlock(c[0]))
        self.metric_head = conv3(c[0], 1)
        nn.init.zeros_(self.metric_head.weight)
        nn.init.zeros_(self.metric_head.bias)
        in0 = c[0] + 3 + 1
        downs = []
        cin = in0
        for cs in c[1:]:
            downs.append(nn.Sequential(conv3(cin, cs, stride=2), nn.ReLU(), ResBlock(cs)))
            cin = cs
        self.downs = nn.ModuleList(downs)
        self.decoder = SynthesisDecoder([in0] + list(c[1:]), c)

    def encode(self, image: torch.Tensor) -> list:
        feats = self.encoder(image)
        metric = self.config.metric_range * torch.tanh(self.metric_head(feats))  # (B, 1, H, W), learned
        return [feats, metric]

    def synthesize(self, image, feats, flow, weight) -> torch.Tensor:
        f0, metric = feats
        n = flow.shape[0]
        if image.shape[0] != n:
            image, f0, metric = (x.expand(n, -1, -1, -1) for x in (image, f0, metric))
        warped, coverage = softmax_splat(torch.cat([image, f0], dim=1), flow, metric, return_coverage=True)
        base = fill_holes(warped[:, :3], coverage)
        x = torch.cat([warped, coverage], dim=1)
        inputs = [x]
        for down in self.downs:
            x = down(x)
            inputs.append(x)
        return base + self.decoder(inputs)
