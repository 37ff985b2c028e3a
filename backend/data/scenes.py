"""The procedural scene generator: plants, candles and cloth on varied backgrounds, with exact per-pixel motion.

A scene is designed here once (:func:`build_scene`) from a :class:`SceneConfig` and then rendered by
``scene_render``: :func:`render_window` gives a training sample (photo, exact spectral volume,
render pairs), :func:`render_scene` a whole clip with per-frame ground truth (trajectories, visibility, layer and
object ids) for judging motion extraction, :func:`render_clip` frames only (with camera shake for the rejection
rules). The modules: ``scene_objects`` (strips, sprites: closed-form deformation, raster, shading), ``scene_cloth``,
``scene_plants`` (object builders whose look predicts their motion), ``scene_motion`` (oscillation modes, exact
coefficients), ``scene_backgrounds`` (static backdrops and lighting).

Two kinds of motion: *exact* scenes (the default, training data) put every mode on a loop bin and keep the motion
linear, so the exact ground-truth volume comes from ``2 * max_bin + 1`` analytic samples per pixel; *natural*
scenes (``exact=False``: frequencies off the bins, decaying gusts, the cantilever drop of bending strips) are not a
loop and are only rendered as clips.

Ground-truth convention: the motion of pixel p is that of the front-most surface whose shape contains p's centre
in frame 0 (pixel centres at integer coordinates); background and static objects (trunks, candles, rods, rocks)
have zero motion.

Kinds: meadow, flowers, bush, tree, candle, cloth, mixed (a mixture) and static (no moving object at all: rooms,
bare trunks, unlit candles, landscapes without plants; valid zero-motion samples).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Optional

import numpy as np

from . import scene_plants as P
from .scene_backgrounds import Backdrop, Lighting, make_backdrop, make_lighting
from .scene_motion import Timing
from .photo_library import open_library
from .scene_objects import STATIC, Sprite, Strip, Textures, noise_tile
from .scene_photos import dress

log = logging.getLogger(__name__)

KINDS = ("meadow", "flowers", "bush", "tree", "candle", "cloth", "mixed", "static")
KIND_WEIGHTS = (0.2, 0.14, 0.12, 0.15, 0.1, 0.1, 0.14, 0.05)
KIND_WEIGHTS_PHOTOS = (0.18, 0.13, 0.11, 0.14, 0.1, 0.1, 0.14, 0.1)  # with a photo library: more still photos
_PHOTO_STREAM = 0x70686F746F  # second seed word of the photo choices' random stream


@dataclasses.dataclass
class SceneConfig:
    """What to build. Sizes in pixels; geometry scales with the size; ``kind`` None draws one from KIND_WEIGHTS."""
    width: int = 256
    height: int = 160
    num_frames: int = 150
    fps: float = 30.0
    k: int = 16                  # bins of the spectral volume (render_window)
    max_bin: int = 15            # highest bin a mode may use
    seed: int = 0
    kind: Optional[str] = None   # one of KINDS; None: drawn from KIND_WEIGHTS with the seed
    amplitude_px: float = 4.0    # tip sway of a blade half the image tall at zoom 1 (scaled by width / 256)
    exact: bool = True           # every mode on a loop bin, linear motion; False: a natural clip (render_scene only)
    gust_fraction: float = 0.35  # natural clips: share of the objects that also get a decaying gust
    photo_library: Optional[str] = None  # folder built by scripts/build_photo_library.py; None: procedural only
    photo_fraction: float = 0.8  # with a library: share of the scenes whose backdrop is a photo (static: all)
    plain_photo_fraction: float = 0.0  # with a library: share of the static scenes that are a plain photo (see below)

    def validate(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"unknown scene kind '{self.kind}': choose one of {', '.join(KINDS)}")
        if self.width < 16 or self.height < 16:
            raise ValueError(f"scene size {self.width}x{self.height} is too small: use at least 16x16 pixels")
        if self.num_frames < 1 or self.fps <= 0 or self.amplitude_px < 0:
            raise ValueError("num_frames must be >= 1, fps > 0 and amplitude_px >= 0")
        if self.exact and not 1 <= self.max_bin < self.k <= (self.num_frames + 1) // 2:
            raise ValueError(f"need 1 <= max_bin < k <= (num_frames + 1) // 2, got max_bin={self.max_bin}, "
                             f"k={self.k}, num_frames={self.num_frames}")
        if not self.exact and self.max_bin < 1:
            raise ValueError(f"max_bin must be >= 1, got {self.max_bin}")
        if not 0 <= self.plain_photo_fraction <= 1:
            raise ValueError(f"plain_photo_fraction must lie in 0..1, got {self.plain_photo_fraction}")
        if not 0 <= self.gust_fraction <= 1 or not 0 <= self.photo_fraction <= 1:
            raise ValueError(f"gust_fraction and photo_fraction must lie in 0..1, got {self.gust_fraction} and "
                             f"{self.photo_fraction}")

    @property
    def timing(self) -> Timing:
        return Timing(self.fps, self.num_frames, self.max_bin, self.exact, 0.0 if self.exact else self.gust_fraction)


@dataclasses.dataclass
class Scene:
    config: SceneConfig
    objects: list           # drawables in back-to-front order, oid = index
    backdrop: Backdrop
    lighting: Lighting
    textures: Textures      # noise tile and photo patches of the objects
    info: dict              # kind, background, zoom, wind, objects (counts), moving_objects, photos

    @property
    def static(self) -> bool:
        return not any(P.is_moving(o) for o in self.objects)


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
                                  layer=P.LAYER_FAR if haze > 0.25 else P.LAYER_NEAR,
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
    """Design the scene of ``config`` (deterministic for the config and, with photos, the library's contents)."""
    config.validate()
    library = open_library(config.photo_library) if config.photo_library else None
    rng = np.random.default_rng(config.seed)
    weights = np.array(KIND_WEIGHTS_PHOTOS if library else KIND_WEIGHTS)
    kind = config.kind or str(rng.choice(KINDS, p=weights / weights.sum()))
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
    patches, photos = None, []
    if library is not None:  # photos from their own stream: the layout is the scene's without photos
        prng = np.random.default_rng([config.seed, _PHOTO_STREAM])
        # A plain photo as a whole still scene: off by default. Measured: with 70% of the static scenes plain photos,
        # a model learned "a landscape photograph is still" and predicted 0.01-0.06x the true motion of held-out
        # clips of palms and tall grass under a grey sky (docs/motion_card.md).
        if kind == "static" and prng.uniform() < config.plain_photo_fraction:
            objects = []  # a plain photo: nothing procedural in front
        patches, photos = dress(prng, library, kind, bd, objects, w, h, config.photo_fraction)
    for i, o in enumerate(objects):
        o.oid = i
    lighting = make_lighting(rng, w, h, dark=kind == "candle")
    textures = Textures(noise_tile(rng), patches)
    counts = {}
    for o in objects:
        counts[o.kind] = counts.get(o.kind, 0) + 1
    info = {"kind": kind, "background": bd.kind, "zoom": round(float(zoom), 3), "wind": round(float(ctx.wind), 3),
            "objects": counts, "moving_objects": int(sum(P.is_moving(o) for o in objects)), "photos": photos}
    if bd.kind in ("dark_room", "photo") and kind == "candle":  # warm glow of the flames on the wall (static)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        for o in objects:
            if o.kind == "flame":
                g = np.exp(-((xx - o.bx) ** 2 + (yy - o.by + 0.4 * o.L) ** 2) / (2 * (0.3 * h) ** 2))
                bd.image += g[..., None] * np.array([0.35, 0.2, 0.06], np.float32)
    return Scene(config, objects, bd, lighting, textures, info)
