"""Training augmentations that keep photo and motion consistent.

Geometric: one affine map of the image plane q = L (p - c - d) + c with L = s R(theta) F (F = horizontal flip or
identity, R a small rotation, s >= 1 a zoom, d the crop offset, c the image centre; pixel centres at integer
coordinates). A surface point p moving by F(p) maps to q moving by L F(p), so every motion field (flow, and the
real and imaginary parts of every spectral coefficient, each a 2-vector [x, y]) is resampled at p = A^-1(q) and
multiplied by L: a flip negates x motion, a zoom scales motion by s, a rotation rotates the vectors. The zoom is
at least what keeps the rotated crop inside the photo, so no border is invented. W(p) = mean |F|^2 scales by s^2.

Colour: brightness, contrast, saturation and white-balance jitter on the images only (the same for I_0 and I_t).

Samples are the numpy dicts of ``backend/data/dataset.py`` (channels first): images ``photo``/``i0``/``it``
(3, H, W) in [0, 1], ``coeffs`` (K, 4, H, W), ``flow`` (2, H, W), ``weight`` (H, W), ``trust`` (H, W). Use as
``MotionDataset(root, augment=Augment())``; ``Augment()(sample, rng)`` returns a new dict.
"""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

IMAGE_KEYS = ("photo", "i0", "it")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    flip_prob: float = 0.5
    max_rotate_deg: float = 5.0
    zoom: tuple = (1.0, 1.25)        # extra zoom on top of what the rotation needs
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.2
    white_balance: float = 0.05

    def validate(self) -> None:
        if not 0 <= self.flip_prob <= 1:
            raise ValueError(f"flip_prob must be in [0, 1], got {self.flip_prob}")
        if not 0 <= self.max_rotate_deg <= 30:
            raise ValueError(f"max_rotate_deg must be in [0, 30], got {self.max_rotate_deg}")
        if not 1.0 <= self.zoom[0] <= self.zoom[1]:
            raise ValueError(f"zoom must be (lo, hi) with 1 <= lo <= hi, got {self.zoom}")


@dataclasses.dataclass(frozen=True)
class Geometry:
    """q = L (p - c - d) + c; ``L`` (2, 2), ``d`` (2,) input-pixel offset of the crop centre."""
    L: np.ndarray
    d: np.ndarray

    @staticmethod
    def make(width, height, flip=False, angle_deg=0.0, scale=1.0, offset=(0.0, 0.0)) -> "Geometry":
        a = math.radians(angle_deg)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        f = np.diag([-1.0 if flip else 1.0, 1.0])
        return Geometry(scale * rot @ f, np.asarray(offset, float))

    def inverse_matrix(self, width, height) -> np.ndarray:
        """2x3 matrix p = M [q, 1] (output pixel -> input pixel)."""
        c = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
        li = np.linalg.inv(self.L)
        return np.hstack([li, (c + self.d - li @ c)[:, None]]).astype(np.float64)


def min_zoom(width, height, angle_deg) -> float:
    """Smallest zoom that keeps a crop rotated by the angle inside the photo."""
    a = abs(math.radians(angle_deg))
    return max(math.cos(a) + height / width * math.sin(a), width / height * math.sin(a) + math.cos(a))


def random_geometry(rng, width, height, cfg: AugmentConfig) -> Geometry:
    flip = bool(rng.uniform() < cfg.flip_prob)
    angle = float(rng.uniform(-cfg.max_rotate_deg, cfg.max_rotate_deg))
    s = min_zoom(width, height, angle) * float(rng.uniform(*cfg.zoom))
    a = abs(math.radians(angle))
    ex = (width * math.cos(a) + height * math.sin(a)) / (2 * s)  # half extent of the crop in input pixels
    ey = (width * math.sin(a) + height * math.cos(a)) / (2 * s)
    mx, my = max(width / 2 - ex, 0.0), max(height / 2 - ey, 0.0)
    return Geometry.make(width, height, flip, angle, s, (rng.uniform(-mx, mx), rng.uniform(-my, my)))


def _warp(a: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Resample a channels-first array (C, H, W) or (H, W) at p = m [q, 1] (bilinear)."""
    h, w = a.shape[-2:]
    hwc = np.moveaxis(a.reshape(-1, h, w), 0, -1).astype(np.float32)
    out = np.empty_like(hwc)
    for c0 in range(0, hwc.shape[-1], 256):  # OpenCV handles at most 512 channels
        out[..., c0:c0 + 256] = cv2.warpAffine(np.ascontiguousarray(hwc[..., c0:c0 + 256]), m, (w, h),
                                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                               borderMode=cv2.BORDER_REPLICATE).reshape(h, w, -1)
    return np.moveaxis(out, -1, 0).reshape(a.shape)


def transform_vectors(v: np.ndarray, lin: np.ndarray) -> np.ndarray:
    """Apply the 2x2 map to vectors stored as (..., 2, H, W) = [x, y]."""
    x, y = v[..., 0, :, :], v[..., 1, :, :]
    return np.stack([lin[0, 0] * x + lin[0, 1] * y, lin[1, 0] * x + lin[1, 1] * y], axis=-3)


def transform_coeffs(c: np.ndarray, lin: np.ndarray) -> np.ndarray:
    """(K, 4, H, W) [Re x, Im x, Re y, Im y]: the real and the imaginary parts are each a motion vector."""
    out = np.empty_like(c)
    for part in (0, 1):  # 0 = real, 1 = imaginary
        v = transform_vectors(c[:, part::2], lin)
        out[:, part::2] = v
    return out


def apply_geometry(sample: dict, g: Geometry) -> dict:
    out = dict(sample)
    ref = next(sample[k] for k in ("photo", "i0", "coeffs", "flow") if k in sample)
    h, w = ref.shape[-2:]
    m = g.inverse_matrix(w, h)
    for key in IMAGE_KEYS:
        if key in sample:
            out[key] = np.clip(_warp(sample[key], m), 0.0, 1.0)
    if "coeffs" in sample:
        out["coeffs"] = transform_coeffs(_warp(sample["coeffs"], m), g.L)
    if "flow" in sample:
        out["flow"] = transform_vectors(_warp(sample["flow"], m), g.L)
    if "weight" in sample:
        out["weight"] = _warp(sample["weight"], m) * float(abs(np.linalg.det(g.L)))  # s^2
    if "trust" in sample:
        out["trust"] = np.clip(_warp(sample["trust"], m), 0.0, 1.0)  # a scalar field: resampled, not scaled
    return out


def colour_jitter(sample: dict, rng, cfg: AugmentConfig) -> dict:
    """The same random brightness/contrast/saturation/white balance on every image of the sample."""
    b = 1 + rng.uniform(-cfg.brightness, cfg.brightness)
    c = 1 + rng.uniform(-cfg.contrast, cfg.contrast)
    s = 1 + rng.uniform(-cfg.saturation, cfg.saturation)
    wb = 1 + rng.uniform(-cfg.white_balance, cfg.white_balance, 3)
    out = dict(sample)
    for key in IMAGE_KEYS:
        if key in sample:
            img = sample[key] * b
            mean = img.mean()
            img = (img - mean) * c + mean
            grey = img.mean(axis=0, keepdims=True)
            img = (grey + (img - grey) * s) * wb.reshape(3, 1, 1)
            out[key] = np.clip(img, 0, 1).astype(np.float32)
    return out


class Augment:
    """Random geometry then colour jitter; ``Augment(config)(sample, rng) -> sample``."""

    def __init__(self, config: AugmentConfig = AugmentConfig(), geometric: bool = True, colour: bool = True):
        config.validate()
        self.config, self.geometric, self.colour = config, geometric, colour

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        if self.geometric:
            ref = next(sample[k] for k in ("photo", "i0", "coeffs", "flow") if k in sample)
            sample = apply_geometry(sample, random_geometry(rng, ref.shape[-1], ref.shape[-2], self.config))
        if self.colour:
            sample = colour_jitter(sample, rng, self.config)
        return sample
