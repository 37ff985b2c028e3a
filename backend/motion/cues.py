"""Trivial cues of "what moves", the baselines a motion model must beat (``scripts/eval_motion.py``).

* texture: local image gradient energy (fine texture such as foliage tends to move, flat sky and walls not);
* ImageNet classes: the per-location probability of ImageNet classes of things that sway or flicker (plants,
  flowers, candles, fountains, plant-filled landscapes), from the frozen trunk's dense logits.

A cue is a map; :func:`cue_volume` turns it into a spectral volume with the mean training spectrum, so every metric
(not only the rank correlation) can be computed for it.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.nn import functional as F

# ImageNet-1k indices of classes whose things move in wind or flicker, and landscapes full of plants
MOVING_CLASSES = {
    470: "candle", 862: "torch", 562: "fountain", 738: "pot (flowerpot)", 883: "vase", 580: "greenhouse",
    646: "maze (hedge)", 958: "hay", 970: "alp", 975: "lakeside", 979: "valley", 984: "rapeseed", 985: "daisy",
    986: "yellow lady's slipper", 987: "corn", 989: "hip", 998: "ear (of corn)",
}


def texture_cue(photo: np.ndarray) -> np.ndarray:
    """Photo (3, H, W) float in [0, 1] -> local gradient energy (H, W), Gaussian-smoothed (sigma 4 px)."""
    grey = np.ascontiguousarray(photo.mean(axis=0), dtype=np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.GaussianBlur(np.sqrt(gx * gx + gy * gy), (0, 0), 4.0)


def class_cue(logits: torch.Tensor, size_hw) -> np.ndarray:
    """Dense trunk logits (1000, h, w) -> probability of MOVING_CLASSES per pixel (H, W), bilinear."""
    p = logits.float().softmax(dim=0)[list(MOVING_CLASSES)].sum(0)
    return F.interpolate(p[None, None], size=tuple(size_hw), mode="bilinear", align_corners=False)[0, 0].numpy()


def cue_volume(cue: np.ndarray, mean_power: np.ndarray) -> np.ndarray:
    """A map (H, W) -> coefficients (K, 4, H, W): frequency k >= 1 moves along x with the mean training power
    ``mean_power`` (K,) on average over the map, distributed like the cue."""
    k = len(mean_power)
    rms = float(np.sqrt((cue.astype(np.float64) ** 2).mean()))
    shape = cue / rms if rms > 0 else np.ones_like(cue)
    out = np.zeros((k, 4, *cue.shape), np.float32)
    out[1:, 0] = np.sqrt(np.asarray(mean_power[1:], np.float64))[:, None, None] * shape[None]
    return out
