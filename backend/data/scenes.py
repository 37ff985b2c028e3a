"""Training scenes: many plant types, candles and cloth on varied backgrounds, with exact spectral volumes.

A scene is designed once (:func:`build_scene`) and then rendered cheaply (:func:`render_window`): frame 0 (the
photo) plus a few frames t for render pairs. Every mode sits on a loop bin (``scene_motion``), so the exact
ground-truth spectral volume comes from ``2 * max_bin + 1`` analytic samples of the displacement per pixel, not from
150 rendered frames. :func:`render_clip` renders every frame, optionally with camera shake, to exercise the
real-clip rejection rules.

Ground-truth convention (as ``backend/data/synthetic.py``): the motion of pixel p is that of the front-most surface
whose shape contains p's centre in frame 0 (pixel centres at integer coordinates); background and static objects
(trunks, candles, rods, rocks) have zero motion.

Kinds: meadow, flowers, bush, tree, candle, cloth, mixed (a mixture) and static (no moving object at all: rooms,
bare trunks, unlit candles, landscapes without plants; valid zero-motion samples).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Optional, Sequence

import cv2
import numpy as np

from . import scene_plants as P
from .scene_backgrounds import Backdrop, Lighting, make_backdrop, make_lighting
from .scene_cloth import Cloth, ClothSet
from .scene_motion import Timing, exact_coefficients, mean_square_displacement, sample_times
from .synthetic_objects import STATIC, Sprite, SpriteSet, Strip, StripSet, composite, noise_tile

log = logging.getLogger(__name__)

KINDS = ("meadow", "flowers", "bush", "tree", "candle", "cloth", "mixed", "static")
KIND_WEIGHTS = (0.2, 0.14, 0.12, 0.15, 0.1, 0.1, 0.14, 0.05)
_THICK_PX = 4.0


@dataclasses.dataclass
class SceneConfig:
    width: int = 256
    height: int = 160
    num_frames: int = 150
    fps: float = 30.0
    k: int = 16
    max_bin: int = 15
    seed: int = 0
    kind: Optional[str] = None   # None: drawn from KIND_WEIGHTS with the seed
    amplitude_px: float = 4.0    # tip sway of a blade half the image tall at zoom 1 (scaled by width / 256)

    def validate(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"unknown scene kind '{self.kind}': choose one of {', '.join(KINDS)}")
        if self.width < 16 or self.height < 16:
            raise ValueError(f"scene size {self.width}x{self.height} is too small: use at least 16x16 pixels")
        if not 1 <= self.max_bin < self.k <= (self.num_frames + 1) // 2:
            raise ValueError(f"need 1 <= max_bin < k <= (num_frames + 1) // 2, got max_bin={self.max_bin}, "
                             f"k={self.k}, num_frames={self.num_frames}")
        if self.fps <= 0 or self.amplitude_px < 0:
            raise ValueError("fps must be > 0 and amplitude_px >= 0")

    @property
    def timing(self) -> Timing:
        return Timing(self.fps, self.num_frames, self.max_bin)


@dataclasses.dataclass
class Scene:
    config: SceneConfig
    objects: list           # drawables in back-to-front order, oid = index
    backdrop: Backdrop
    lighting: Lighting
    tile: np.ndarray
    info: dict              # kind, background, zoom, wind, object counts

    @property
    def static(self) -> bool:
        return not any(P.is_moving(o) for o in self.objects)


@dataclasses.dataclass
class Window:
    photo: np.ndarray        # uint8 (H, W, 3)
    coeffs: np.ndarray       # float32 (K, 4, H, W) exact spectral volume (pixels, y down)
    weight: np.ndarray       # float32 (H, W): mean over the loop of |F_t(p)|^2
    pair_frames: np.ndarray  # int (P,) frame indices t of the render pairs
    frames: np.ndarray       # uint8 (P, H, W, 3) rendered frame t
    flows: np.ndarray        # float32 (P, 2, H, W) exact forward flow 0 -> t (= trajectory at t)
    moving_mask: np.ndarray  # bool (H, W)


# ------------------------------------------------------------------------------------------------ design
def _depth_zoom(zoom, y, horizon_px, h):
    d = np.clip((y - horizon_px) / max(h - horizon_px, 1.0), 0.05, 1.2)
    return zoom * (0.3 + 0.7 * d)


def _field(ctx, bd, zoom, n, y_lo=None):
    """Grass blades planted between the horizon (far, small, hazy) and the bottom (near)."""
    h, w = ctx.height, ctx.width
    hz = bd.horizon * h
    groups = []
    for _ in range(n):
        y = ctx.rng.uniform(y_lo if y_lo is not None else hz, h * 1.05)
        zl = _depth_zoom(zoom, y, hz, h)
        haze = float(np.clip(1 - (y - hz) / max(h - hz, 1), 0, 1)) * 0.5
        base, tip = np.array([0.1, 0.3, 0.07]), np.array([0.45, 0.7, 0.2])
        if ctx.rng.uniform() < 0.25:  # dry grass
            base, tip = np.array([0.45, 0.38, 0.18]), np.array([0.8, 0.72, 0.45])
        fog = np.array([0.55, 0.62, 0.55])
        groups.append((y, P.blade(ctx, ctx.rng.uniform(-0.05, 1.05) * w, y, zl,
                                  colours=(base * (1 - haze) + fog * haze, tip * (1 - haze) + fog * haze))))
    return groups


def _planted(ctx, bd, zoom, n, make, y_range):
    h, w = ctx.height, ctx.width
    out = []
    for _ in range(n):
        y = ctx.rng.uniform(*y_range) * h
        out.append((y, make(ctx, ctx.rng.uniform(0.03, 0.97) * w, y, _depth_zoom(zoom, y, bd.horizon * h, h))))
    return out


def _static_objects(ctx, bd, zoom):
    r, h, w = ctx.rng, ctx.height, ctx.width
    out = []
    for _ in range(int(r.integers(0, 4))):
        y = r.uniform(max(bd.horizon, 0.5), 1.0) * h
        zl = _depth_zoom(zoom, y, bd.horizon * h, h)
        kind = r.integers(3)
        if kind == 0:  # bare trunk or post
            col = np.array([0.3, 0.22, 0.15]) * r.uniform(0.6, 1.4)
            out.append((y, [Strip("stem", P.LAYER_NEAR, r.uniform(0, w), y, r.uniform(0.3, 0.8) * h * zl,
                                  max(r.uniform(0.01, 0.04) * h * zl, 0.8), lean=r.uniform(-0.1, 0.1),
                                  colour=col, tip_colour=col * 0.8, tex=ctx.tex())]))
        elif kind == 1:  # unlit candle
            parts = P.candle(ctx, r.uniform(0.1, 0.9) * w, y, zl)[:2]
            out.append((y, parts))
        else:  # stone pillar / vase
            col = np.full(3, r.uniform(0.3, 0.7))
            out.append((y, [Strip("candle", P.LAYER_NEAR, r.uniform(0, w), y, r.uniform(0.1, 0.3) * h * zl,
                                  r.uniform(0.04, 0.1) * h * zl, colour=col)]))
    return out


def build_scene(config: SceneConfig) -> Scene:
    config.validate()
    rng = np.random.default_rng(config.seed)
    kind = config.kind or str(rng.choice(KINDS, p=np.array(KIND_WEIGHTS) / sum(KIND_WEIGHTS)))
    h, w = config.height, config.width
    scale = w / 256.0
    ctx = P.Ctx(rng, w, h, config.timing, amplitude=config.amplitude_px * scale * rng.uniform(0.6, 1.5),
                wind=rng.uniform(0.5, 1.4), wave_px=rng.uniform(150, 500) * scale)
    zoom = rng.uniform(0.7, 1.4)
    background = {"meadow": ["landscape"], "flowers": ["garden", "landscape"], "bush": ["wall", "garden", "landscape"],
                  "tree": ["landscape", "forest"], "candle": ["dark_room"], "cloth": ["wall", "landscape"],
                  "mixed": ["landscape", "garden", "forest"],
                  "static": ["landscape", "wall", "dark_room", "garden"]}[kind]
    bd = make_backdrop(rng, str(rng.choice(background)), w, h)
    hz = bd.horizon
    groups = []  # (depth y, objects); drawn in increasing y (farther first)
    if kind == "meadow":
        groups += _field(ctx, bd, zoom, int(rng.uniform(40, 140) * scale))
        groups += _planted(ctx, bd, zoom, int(rng.integers(0, 8)), P.flower, (hz + 0.1, 1.05))
    elif kind == "flowers":
        zoom *= 1.3
        groups += _field(ctx, bd, zoom, int(rng.uniform(5, 40) * scale), y_lo=0.9 * h)
        groups += _planted(ctx, bd, zoom, int(rng.integers(4, 14) * scale + 1), P.flower, (0.95, 1.1))
        groups += _planted(ctx, bd, zoom, int(rng.integers(0, 5)), P.stem_with_leaves, (0.95, 1.1))
    elif kind == "bush":
        groups += _planted(ctx, bd, zoom, int(rng.integers(1, 4)), P.bush, (max(hz, 0.7), 1.05))
        groups += _field(ctx, bd, zoom, int(rng.uniform(0, 40) * scale), y_lo=0.85 * h)
    elif kind == "tree":
        groups += _planted(ctx, bd, zoom, int(rng.integers(1, 4)), P.tree, (max(hz + 0.1, 0.6), 1.0))
        groups += _field(ctx, bd, zoom, int(rng.uniform(0, 60) * scale))
    elif kind == "candle":
        draught = 2.5 if rng.uniform() < 0.2 else 1.0
        n = int(rng.integers(1, 5))
        xs = (np.arange(n) + 0.5) / n * w + rng.uniform(-0.1, 0.1, n) * w / n
        cz = zoom * rng.uniform(0.8, 1.3) / max(1.0, 0.6 * n)
        for x in xs:
            y = hz * h + rng.uniform(0.0, 0.06) * h
            groups.append((y, P.candle(ctx, x, y, cz * rng.uniform(0.8, 1.2), draught)))
    elif kind == "cloth":
        for _ in range(int(rng.integers(1, 4))):
            groups.append((rng.uniform(0, 0.1) * h, P.cloth(ctx, rng.uniform(0.1, 0.9) * w,
                                                            rng.uniform(-0.05, 0.3) * h, zoom)))
        if rng.uniform() < 0.5:
            groups += _planted(ctx, bd, zoom, int(rng.integers(1, 4)), P.stem_with_leaves, (0.95, 1.1))
    elif kind == "mixed":
        makers = [P.flower, P.stem_with_leaves, P.bush, P.tree]
        for m in rng.choice(len(makers), size=int(rng.integers(2, 4)), replace=False):
            groups += _planted(ctx, bd, zoom, int(rng.integers(1, 5)), makers[m], (max(hz, 0.5), 1.05))
        groups += _field(ctx, bd, zoom, int(rng.uniform(10, 80) * scale))
    if kind != "candle":
        groups += _static_objects(ctx, bd, zoom) if kind == "static" or rng.uniform() < 0.2 else []
    groups.sort(key=lambda g: g[0])
    objects = [o for _, objs in groups for o in objs]
    if kind == "static":
        for o in objects:
            o.modes, o.moving = STATIC, False
        objects = [o for o in objects if not isinstance(o, Sprite)]
    for i, o in enumerate(objects):
        o.oid = i
    lighting = make_lighting(rng, w, h, dark=kind == "candle")
    tile = noise_tile(rng)
    counts = {}
    for o in objects:
        counts[o.kind] = counts.get(o.kind, 0) + 1
    info = {"kind": kind, "background": bd.kind, "zoom": round(float(zoom), 3), "wind": round(float(ctx.wind), 3),
            "objects": counts, "moving_objects": int(sum(P.is_moving(o) for o in objects))}
    if bd.kind == "dark_room" and kind == "candle":  # warm glow of the flames on the wall (static light)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        for o in objects:
            if o.kind == "flame":
                g = np.exp(-((xx - o.bx) ** 2 + (yy - o.by + 0.4 * o.L) ** 2) / (2 * (0.3 * h) ** 2))
                bd.image += g[..., None] * np.array([0.35, 0.2, 0.06], np.float32)
    return Scene(config, objects, bd, lighting, tile, info)


# ------------------------------------------------------------------------------------------------ rendering
class _Drawables:
    """The scene's objects as drawable sets over a time axis ``t`` (s); oid -> (set, local index)."""

    def __init__(self, objects: Sequence, t: np.ndarray):
        strips = [o for o in objects if isinstance(o, Strip)]
        parents = StripSet(strips, t)
        index = {id(o): k for k, o in enumerate(strips)}
        self.sets = [StripSet([o for o in strips if o.w0 <= _THICK_PX], t),
                     StripSet([o for o in strips if o.w0 > _THICK_PX], t),
                     SpriteSet([o for o in objects if isinstance(o, Sprite)], parents, index, t),
                     ClothSet([o for o in objects if isinstance(o, Cloth)], t)]
        n = len(objects)
        self.set_of = np.full(n + 1, -1, np.int64)
        self.local = np.zeros(n + 1, np.int64)
        self.moving = np.zeros(n + 1, bool)
        for si, s in enumerate(self.sets):
            self.set_of[s.oid] = si
            self.local[s.oid] = np.arange(len(s.oid))
        for o in objects:
            self.moving[o.oid] = P.is_moving(o)

    def draw(self, backdrop: np.ndarray, ti: int, w: int, h: int, tile, with_material: bool):
        img = backdrop.reshape(-1, 3).astype(np.float32).copy()
        owner = np.full(h * w, -1, np.int16)
        mat = np.zeros((2, h * w), np.float64) if with_material else None
        composite(img, owner, [s for s in self.sets if len(s.oid)], ti, w, h, tile, mat)
        return img.reshape(h, w, 3), owner.astype(np.int64), mat

    def displacement(self, owner: np.ndarray, mat: np.ndarray, n_t: int) -> np.ndarray:
        """(n_t, 2, P) displacement of every frame-0 pixel (zero for background and static objects)."""
        out = np.zeros((n_t, 2, owner.size), np.float32)
        for si, s in enumerate(self.sets):
            pix = np.nonzero((self.set_of[owner] == si) & self.moving[owner])[0]
            if len(pix):
                out[:, :, pix] = s.displacement(self.local[owner[pix]], mat[0, pix], mat[1, pix])
        return out


def render_window(scene: Scene, pair_frames: Sequence[int] = ()) -> Window:
    """Photo (frame 0), exact spectral volume and render pairs (frame t, exact flow 0 -> t) of a scene."""
    cfg = scene.config
    h, w = cfg.height, cfg.width
    pair_frames = np.asarray(pair_frames, dtype=np.int64).reshape(-1)
    if np.any((pair_frames < 1) | (pair_frames >= cfg.num_frames)):
        raise ValueError(f"pair frames must lie in 1..{cfg.num_frames - 1}, got {pair_frames.tolist()}")
    ts = sample_times(cfg.timing)
    t = np.concatenate([ts, pair_frames / cfg.fps])
    d = _Drawables(scene.objects, t)
    img0, owner0, mat0 = d.draw(scene.backdrop.image, 0, w, h, scene.tile, True)
    disp = d.displacement(owner0, mat0, len(t))
    coeffs = exact_coefficients(disp[: len(ts)], cfg.k).reshape(cfg.k, 4, h, w)
    frames = np.stack([scene.lighting.apply(d.draw(scene.backdrop.image, len(ts) + j, w, h, scene.tile, False)[0])
                       for j in range(len(pair_frames))]) if len(pair_frames) else np.zeros((0, h, w, 3), np.uint8)
    flows = disp[len(ts):].reshape(len(pair_frames), 2, h, w)
    moving = d.moving[owner0].reshape(h, w)
    return Window(scene.lighting.apply(img0), coeffs, mean_square_displacement(coeffs), pair_frames, frames,
                  np.ascontiguousarray(flows), moving)


def exact_trajectories(scene: Scene, frames: Sequence[int]) -> np.ndarray:
    """Ground-truth displacement (N, 2, H, W) of frame 0's pixels at the given frame indices, straight from the
    objects' modes (independent of the spectral volume; used to test it)."""
    cfg = scene.config
    t = np.concatenate([[0.0], np.asarray(frames, float) / cfg.fps])
    d = _Drawables(scene.objects, t)
    _, owner0, mat0 = d.draw(scene.backdrop.image, 0, cfg.width, cfg.height, scene.tile, True)
    return d.displacement(owner0, mat0, len(t))[1:].reshape(len(t) - 1, 2, cfg.height, cfg.width)


def render_clip(scene: Scene, num_frames: Optional[int] = None, shake_px: float = 0.0, noise: float = 0.0,
                seed: int = 0) -> np.ndarray:
    """Every frame (N, H, W, 3) uint8 of a scene; ``shake_px`` moves the whole frame like a hand-held camera
    (smooth random translation of about that many pixels), ``noise`` adds sensor noise (levels of 0..255)."""
    cfg = scene.config
    n = num_frames or cfg.num_frames
    t = np.arange(n) / cfg.fps
    d = _Drawables(scene.objects, t)
    rng = np.random.default_rng(seed)
    out = np.empty((n, cfg.height, cfg.width, 3), np.uint8)
    if shake_px > 0:
        f = rng.uniform(0.3, 1.5, (2, 3))
        ph = rng.uniform(0, 2 * np.pi, (2, 3))
        offs = shake_px * (np.sin(2 * np.pi * f[:, None, :] * t[None, :, None] + ph[:, None, :]).sum(-1) / 1.5)
        offs = offs - offs[:, :1]
    for i in range(n):
        frame = scene.lighting.apply(d.draw(scene.backdrop.image, i, cfg.width, cfg.height, scene.tile, False)[0])
        if shake_px > 0:
            m = np.float32([[1, 0, offs[0, i]], [0, 1, offs[1, i]]])
            frame = cv2.warpAffine(frame, m, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT101)
        if noise > 0:
            frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
        out[i] = frame
    return out
