"""Static backgrounds and lighting for the training scenes (nothing here moves).

A background is a float32 (H, W, 3) image in [0, 1] plus where its ground starts (``horizon``, a fraction of the
height) so plants can be planted on it. Lighting is a per-scene screen-space field (exposure, white balance, a
directional gradient, vignette, gamma) applied identically to every rendered frame of the scene.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

BACKGROUNDS = ("landscape", "garden", "wall", "dark_room", "forest")


def _fbm(rng, h, w, scales=(40.0, 12.0, 4.0, 1.2), weights=(1.0, 0.6, 0.35, 0.2)) -> np.ndarray:
    """Fractal noise (H, W), unit std: blurred white noise summed over a few scales."""
    out = np.zeros((h, w), np.float32)
    for s, wt in zip(scales, weights):
        n = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), s, borderType=cv2.BORDER_REFLECT)
        out += wt * n / max(float(n.std()), 1e-6)
    return out / float(out.std())


def _blobs(rng, img, n, radius, colours, blur, strength=0.6):
    """``n`` soft discs of random colours from ``colours`` over img (bokeh, flowers far away, light spots)."""
    h, w = img.shape[:2]
    layer = np.zeros_like(img)
    cover = np.zeros((h, w), np.float32)
    for _ in range(n):
        c = colours[rng.integers(len(colours))]
        centre = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        r = max(1, int(rng.uniform(*radius)))
        cv2.circle(layer, centre, r, tuple(float(v) for v in c), -1, cv2.LINE_AA)
        cv2.circle(cover, centre, r, 1.0, -1, cv2.LINE_AA)
    if blur > 0:
        layer, cover = cv2.GaussianBlur(layer, (0, 0), blur), cv2.GaussianBlur(cover, (0, 0), blur)
    a = np.clip(cover, 0, 1)[..., None] * strength
    return img * (1 - a) + np.where(cover[..., None] > 1e-4, layer / np.maximum(cover[..., None], 1e-4), 0) * a


@dataclasses.dataclass
class Backdrop:
    image: np.ndarray  # float32 (H, W, 3)
    horizon: float     # fraction of the height where the ground begins (plants stand below it)
    kind: str


def _sky(rng, h, w):
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    top = np.array(rng.choice([(0.35, 0.55, 0.9), (0.55, 0.7, 0.95), (0.75, 0.75, 0.8), (0.95, 0.7, 0.5)]))
    low = np.clip(top + rng.uniform(0.1, 0.3), 0, 1)
    sky = top * (1 - yy) + low * yy
    clouds = np.clip(_fbm(rng, h, w, scales=(30.0 * h / 160, 8.0 * h / 160, 2.5)) + rng.uniform(-0.5, 0.8), 0, None)
    return (sky + rng.uniform(0.08, 0.25) * clouds[..., None] * (1 - 0.6 * yy)).astype(np.float32)


def _ridge(rng, w, base, amp, roughness):
    x = np.linspace(0, 1, w)
    y = np.full(w, base)
    for octave in range(4):
        f = 1.5 * 2.3 ** octave
        y += amp * roughness ** octave * np.sin(2 * np.pi * f * x + rng.uniform(0, 2 * np.pi))
    return y


def _landscape(rng, h, w):
    img = _sky(rng, h, w)
    yy = np.arange(h)[:, None]
    horizon = rng.uniform(0.3, 0.6)
    haze = img[int(horizon * h * 0.8)].mean(axis=0)
    for depth, (base, amp) in enumerate([(horizon - 0.12, 0.06), (horizon - 0.05, 0.04)]):
        if rng.uniform() < 0.7:
            ridge = _ridge(rng, w, base, amp, 0.5) * h
            col = np.array(rng.choice([(0.35, 0.4, 0.5), (0.3, 0.42, 0.3), (0.45, 0.42, 0.38)]))
            col = col * (0.6 + 0.2 * depth) + haze * (0.4 - 0.2 * depth)
            tex = 1 + 0.12 * _fbm(rng, h, w)[..., None]
            img = np.where((yy > ridge[None])[..., None], col * tex, img)
    field_col = np.array(rng.choice([(0.42, 0.58, 0.22), (0.55, 0.55, 0.25), (0.3, 0.45, 0.2), (0.6, 0.5, 0.3)]))
    shade = np.linspace(1.0, 0.7, h, dtype=np.float32)[:, None, None]
    field = field_col * (1 + 0.25 * _fbm(rng, h, w)[..., None]) * shade
    line = (horizon + 0.015 * np.sin(np.linspace(0, 9, w) + rng.uniform(0, 6))) * h
    img = np.where((yy > line[None])[..., None], field, img)
    img = _rocks(rng, img, horizon, int(rng.integers(0, 4)))
    return np.clip(img, 0, 1).astype(np.float32), horizon


def _rocks(rng, img, horizon, n):
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(n):
        cy = rng.uniform(horizon + 0.1, 0.98) * h
        size = (0.04 + 0.12 * (cy / h - horizon)) * h * rng.uniform(0.6, 1.4)
        cx = rng.uniform(0, w)
        d = ((xx - cx) / (1.4 * size)) ** 2 + ((yy - cy) / size) ** 2
        inside = np.clip((1 - d) * size, 0, 1)[..., None]
        grey = rng.uniform(0.35, 0.6) * np.array([1.0, rng.uniform(0.95, 1.02), rng.uniform(0.9, 1.0)])
        lit = 0.75 + 0.35 * np.clip(-(yy - cy) / size, -1, 1)[..., None] + 0.08 * _fbm(rng, h, w)[..., None]
        img = img * (1 - inside) + grey * lit * inside
    return img


def _garden(rng, h, w):
    n1, n2 = _fbm(rng, h, w)[..., None], _fbm(rng, h, w)[..., None]
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    base = np.array(rng.choice([(0.3, 0.45, 0.22), (0.2, 0.35, 0.18), (0.4, 0.5, 0.3)]))
    img = base * (1 + 0.3 * n1) + 0.08 * (1 - yy)
    greens = [(0.2, 0.4, 0.15), (0.45, 0.6, 0.25), (0.15, 0.3, 0.12), (0.7, 0.75, 0.5)]
    img = _blobs(rng, img, int(40 + 40 * rng.uniform()), (0.03 * h, 0.12 * h), greens, 0.02 * h, 0.7)
    lights = [(0.9, 0.9, 0.7), (0.8, 0.5, 0.6), (0.9, 0.8, 0.3), (0.6, 0.6, 0.95)]
    img = _blobs(rng, img, int(rng.integers(5, 30)), (0.01 * h, 0.04 * h), lights, 0.004 * h, 0.5)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), rng.uniform(0.5, 2.5) * h / 160)
    return np.clip(img * (1 + 0.06 * n2), 0, 1).astype(np.float32), rng.uniform(0.0, 0.3)


def _wall(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    n = _fbm(rng, h, w)[..., None]
    col = np.array(rng.choice([(0.85, 0.82, 0.75), (0.7, 0.6, 0.5), (0.6, 0.65, 0.7), (0.75, 0.5, 0.4),
                               (0.5, 0.5, 0.45)]))
    style = rng.integers(3)
    img = col * (1 + 0.06 * n)
    if style == 1:  # bricks
        bh, bw = rng.uniform(0.05, 0.09) * h, rng.uniform(0.12, 0.2) * h
        row = np.floor(yy / bh)
        off = (row % 2) * bw / 2
        mortar = (np.mod(yy, bh) < 1.2) | (np.mod(xx + off, bw) < 1.2)
        brick = col * (0.85 + 0.3 * np.mod(np.sin(row * 12.9 + np.floor((xx + off) / bw) * 78.2) * 437.6, 1))[..., None]
        img = np.where(mortar[..., None], 0.85 * np.array([0.8, 0.78, 0.72]), brick * (1 + 0.08 * n))
    elif style == 2:  # wooden planks
        pw = rng.uniform(0.08, 0.15) * w
        grain = np.sin(xx * 0.9 + 4 * _fbm(rng, h, w, scales=(20.0, 3.0)))[..., None]
        gap = (np.mod(xx, pw) < 1.0)[..., None]
        img = np.where(gap, col * 0.4, col * (0.85 + 0.08 * grain + 0.05 * n))
    floor = rng.uniform(0.75, 0.95)
    img = np.where((yy > floor * h)[..., None], col[::-1] * 0.55 * (1 + 0.1 * n), img)
    return np.clip(img, 0, 1).astype(np.float32), floor


def _dark_room(rng, h, w):
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    n1, n2, n3 = (_fbm(rng, h, w)[..., None] for _ in range(3))
    wall = np.array(rng.choice([(0.16, 0.10, 0.07), (0.08, 0.08, 0.1), (0.12, 0.12, 0.1), (0.03, 0.03, 0.03)]))
    img = wall * (1 + 0.25 * n1) + np.array([0.05, 0.03, 0.02]) * (1 - yy)
    table_y = rng.uniform(0.8, 0.92)
    wood = 0.5 + 0.5 * np.sin(np.linspace(0, 40, w)[None] + 6 * n2[..., 0])
    table = np.array(rng.choice([(0.32, 0.18, 0.09), (0.25, 0.22, 0.2), (0.4, 0.3, 0.2)]))
    img = np.where((yy > table_y), table * (0.8 + 0.3 * wood[..., None] + 0.1 * n3), img)
    img = _blobs(rng, img, int(rng.integers(0, 12)), (0.02 * h, 0.08 * h), [(0.9, 0.6, 0.3), (0.7, 0.4, 0.2)],
                 0.02 * h, 0.3)
    return np.clip(img, 0, 1).astype(np.float32), table_y


def _forest(rng, h, w):
    img, horizon = _garden(rng, h, w)
    xx = np.arange(w)[None, :]
    for _ in range(int(rng.integers(2, 7))):  # blurred far trunks
        cx, tw = rng.uniform(0, w), rng.uniform(0.02, 0.07) * w
        col = np.array([0.25, 0.2, 0.15]) * rng.uniform(0.6, 1.3)
        a = np.clip(1 - np.abs(xx - cx) / tw, 0, 1) ** 0.3
        img = img * (1 - 0.8 * a[..., None]) + col * 0.8 * a[..., None]
    return cv2.GaussianBlur(img, (0, 0), 1.0 * h / 160).astype(np.float32), horizon


def make_backdrop(rng, kind: str, width: int, height: int) -> Backdrop:
    if kind not in BACKGROUNDS:
        raise ValueError(f"unknown background '{kind}': choose one of {', '.join(BACKGROUNDS)}")
    img, horizon = {"landscape": _landscape, "garden": _garden, "wall": _wall, "dark_room": _dark_room,
                    "forest": _forest}[kind](rng, height, width)
    return Backdrop(img, float(horizon), kind)


@dataclasses.dataclass
class Lighting:
    gain: np.ndarray   # float32 (H, W, 3) multiplicative field
    gamma: float

    def apply(self, img: np.ndarray) -> np.ndarray:
        """float (H, W, 3) linear-ish [0, 1] -> uint8 RGB."""
        out = np.clip(img * self.gain, 0, 1) ** self.gamma
        return np.rint(out * 255).astype(np.uint8)


def make_lighting(rng, width: int, height: int, dark: bool = False) -> Lighting:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    exposure = rng.uniform(0.75, 1.25) if not dark else rng.uniform(0.9, 1.3)
    temp = rng.uniform(-1, 1)  # warm (+) / cool (-) white balance
    tint = np.array([1 + 0.12 * temp, 1.0, 1 - 0.12 * temp], np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = ((xx / width - 0.5) * np.cos(ang) + (yy / height - 0.5) * np.sin(ang))
    direct = 1 + rng.uniform(0, 0.35) * ramp
    r2 = ((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2) / 0.5
    vignette = 1 - rng.uniform(0, 0.35) * r2
    gain = (exposure * direct * vignette)[..., None] * tint
    return Lighting(gain.astype(np.float32), float(rng.uniform(0.85, 1.15)))
