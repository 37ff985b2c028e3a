"""Procedural oscillation scenes (grass, flowers, candle flames) with exact per-pixel ground-truth motion.

Every moving object is a strip (blade, stem, flame, candle) or a sprite (flower head, leaf) whose deformation is
known in closed form (``backend/data/synthetic_objects.py`` draws them); this module designs the scenes: the
backgrounds, which objects stand where and how they sway, and renders the clips with their ground truth.

A strip's bend ``Dx, Dy``, stretch ``S`` and a sprite's turn ``theta`` are sums of oscillation modes (sustained or
decaying gusts) whose frequency falls with the object's size (long blades sway slowly). With ``exact_bins=True``
every mode is sustained, sits on a bin f_k = k * fps / period_frames (1 <= k <= max_bin) and the non-linear drop
is off, so trajectories are exactly a K-bin Fourier series and repeat every ``period_frames`` frames.

Ground truth convention (same as ``addon/core/spectral.py``): ``trajectories[t, :, y, x]`` = displacement in
pixels (x right, y down) at frame t of the surface point that frame 0 shows at pixel centre (x, y); pixel centres
sit at integer coordinates. The point is the front-most surface whose shape contains the pixel centre in frame 0
(anti-aliased edges blend colours over one pixel). Background pixels have zero trajectory.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Callable, Optional

import cv2
import numpy as np

from .synthetic_objects import Modes, Sprite, SpriteSet, Strip, StripSet, composite, concat_modes, noise_tile

log = logging.getLogger(__name__)

KINDS = ("meadow", "flowers", "candle")
LAYER_BACKGROUND, LAYER_FAR, LAYER_NEAR, LAYER_TOP = 0, 1, 2, 3


@dataclasses.dataclass
class SceneConfig:
    """What to render. Sizes in pixels; geometry scales with ``height``; counts of None use the kind's default."""
    width: int = 256
    height: int = 160
    num_frames: int = 150
    fps: float = 30.0
    kind: str = "meadow"          # "meadow" | "flowers" | "candle"
    seed: int = 0
    num_blades: Optional[int] = None
    num_flowers: Optional[int] = None
    num_candles: Optional[int] = None
    amplitude_px: float = 4.0     # typical tip sway (pixels of this render) of a blade half the image tall
    frequency_scale: float = 1.0  # multiplies every mode frequency
    gust_fraction: float = 0.35   # share of objects that also get a decaying gust (not with exact_bins)
    exact_bins: bool = False      # sustained linear modes on bins k*fps/period_frames: exactly periodic
    period_frames: Optional[int] = None  # loop length for exact_bins (default num_frames)
    max_bin: int = 15

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown scene kind '{self.kind}': choose one of {', '.join(KINDS)}")
        if self.width < 16 or self.height < 16:
            raise ValueError(f"scene size {self.width}x{self.height} is too small: use at least 16x16 pixels")
        if self.num_frames < 1 or self.fps <= 0:
            raise ValueError("num_frames must be >= 1 and fps > 0")
        if self.amplitude_px < 0 or self.frequency_scale <= 0:
            raise ValueError("amplitude_px must be >= 0 and frequency_scale > 0")
        if self.max_bin < 1 or (self.period_frames is not None and self.period_frames < 2):
            raise ValueError("max_bin must be >= 1 and period_frames >= 2")
        for name in ("num_blades", "num_flowers", "num_candles"):
            n = getattr(self, name)
            if n is not None and not 0 <= n <= 5000:
                raise ValueError(f"{name}={n} is out of range: use 0..5000 (or None for the scene's default)")


@dataclasses.dataclass
class ObjectInfo:
    oid: int
    kind: str        # blade | stem | flame | candle | wick | flower | leaf
    layer: int
    length_px: float  # blade/stem/flame length, sprite size
    freq_hz: float    # primary mode frequency (0 for static objects)
    moving: bool


@dataclasses.dataclass
class SyntheticClip:
    frames: np.ndarray        # uint8 (T, H, W, 3) RGB
    trajectories: np.ndarray  # float32 (T, 2, H, W): displacement of frame-0 pixel p at frame t, [x, y], y down
    moving_mask: np.ndarray   # bool (H, W): frame-0 pixel centre lies on a moving object
    fps: float
    config: SceneConfig
    layer_ids: Optional[np.ndarray] = None   # uint8 (H, W): LAYER_* of the frame-0 front-most surface
    object_ids: Optional[np.ndarray] = None  # int32 (H, W): index into ``objects``, -1 = background
    visibility: Optional[np.ndarray] = None  # bool (T, H, W): the point is still front-most at frame t
    objects: list = dataclasses.field(default_factory=list)  # list[ObjectInfo]


# ------------------------------------------------------------------------------------------------ modes
def _modes(rng, cfg: SceneConfig, f0: float, amp, phase: float, second=0.18, second_ratio=(2.3, 2.9)) -> Modes:
    """Primary mode at f0, a weaker higher mode, and sometimes a decaying gust (a released push)."""
    amp, f0 = np.asarray(amp, float), f0 * cfg.frequency_scale
    fr = np.array([f0, f0 * rng.uniform(*second_ratio)])
    am = np.stack([amp, amp * second * rng.uniform(0.6, 1.4)])
    ph = np.array([phase, rng.uniform(0, 2 * np.pi)])
    gust = rng.uniform() < cfg.gust_fraction
    if cfg.exact_bins:  # snap to loop bins; a second mode landing on the first bin is dropped
        period = cfg.period_frames or cfg.num_frames
        k = np.clip(np.round(fr * period / cfg.fps), 1, cfg.max_bin)
        keep, fr = np.array([True, k[1] != k[0]]), k * cfg.fps / period
    else:
        keep = np.array([True, fr[1] <= 3.0 * cfg.frequency_scale])
    zero = np.zeros(int(keep.sum()))
    modes = Modes(fr[keep], am[keep], ph[keep], zero, zero)
    if gust and not cfg.exact_bins:  # starts at rest at the onset, then rings down
        onset = rng.uniform(0.1, 0.6) * cfg.num_frames / cfg.fps
        modes = concat_modes(modes, Modes(np.array([f0]), amp[None] * rng.uniform(0.5, 0.9), np.array([-np.pi / 2]),
                                      np.array([2 * np.pi * f0 * rng.uniform(0.05, 0.12)]), np.array([onset])))
    return modes


# ------------------------------------------------------------------------------------------------ backgrounds
def _fbm(rng, h, w, scales=(40.0, 12.0, 4.0, 1.2), weights=(1.0, 0.6, 0.35, 0.2)) -> np.ndarray:
    out = np.zeros((h, w), np.float32)
    for s, wt in zip(scales, weights):
        n = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), s, borderType=cv2.BORDER_REFLECT)
        out += wt * n / max(float(n.std()), 1e-6)
    return out / float(out.std())


def _blobs(rng, img, n, radius, colours, blur, strength=0.6):
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


def _background(rng, cfg: SceneConfig) -> np.ndarray:
    h, w = cfg.height, cfg.width
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    n1, n2, n3 = (_fbm(rng, h, w)[..., None] for _ in range(3))
    if cfg.kind == "candle":
        img = np.array([0.16, 0.10, 0.07]) * (1 + 0.25 * n1) + np.array([0.05, 0.03, 0.02]) * (1 - yy)
        table = np.broadcast_to(yy[..., 0] > 0.86, (h, w))
        wood = 0.5 + 0.5 * np.sin(np.linspace(0, 40, w)[None] + 6 * n2[..., 0])
        img[table] = (np.array([0.32, 0.18, 0.09]) * (0.8 + 0.3 * wood[..., None] + 0.1 * n3))[table]
        img = _blobs(rng, img, 10, (0.02 * h, 0.08 * h), [(0.9, 0.6, 0.3), (0.7, 0.4, 0.2)], 0.02 * h, 0.35)
        return img.astype(np.float32)
    if cfg.kind == "flowers":  # garden out of focus: bokeh greens and lights
        img = np.array([0.30, 0.45, 0.22]) * (1 + 0.3 * n1) + np.array([0.1, 0.1, 0.05]) * (1 - yy)
        greens = [(0.2, 0.4, 0.15), (0.45, 0.6, 0.25), (0.15, 0.3, 0.12), (0.7, 0.75, 0.5)]
        img = _blobs(rng, img, 60, (0.03 * h, 0.12 * h), greens, 0.02 * h, 0.7)
        img = _blobs(rng, img, 25, (0.01 * h, 0.04 * h), [(0.9, 0.9, 0.7), (0.8, 0.5, 0.6)], 0.004 * h, 0.5)
        return np.clip(img * (1 + 0.08 * n2), 0, 1).astype(np.float32)
    horizon = 0.36 + 0.03 * np.sin(np.linspace(0, 7, w) + rng.uniform(0, 6))[None] + 0.025 * n2[0, :, 0][None]
    sky = np.array([0.45, 0.65, 0.92]) * (1 - 0.4 * yy) + np.array([0.35, 0.3, 0.05]) * yy
    sky = sky + 0.18 * np.clip(n1 + 0.3, 0, None) * np.array([1, 1, 1]) * (1 - yy)  # clouds
    trees = np.array([0.16, 0.28, 0.14]) * (1 + 0.35 * n3)
    field = (np.array([0.42, 0.58, 0.22]) * (1 + 0.3 * n2) * (1.1 - 0.5 * yy)
             + 0.05 * np.sin(yy * 160 + 3 * n1))
    tree_top = horizon - 0.08 - 0.04 * np.abs(np.sin(np.linspace(0, 23, w) + n3[0, :, 0]))[None]
    y2 = yy[..., 0]
    img = np.where((y2 < tree_top)[..., None], sky, np.where((y2 < horizon)[..., None], trees, field))
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.6)
    dots = [(0.95, 0.95, 0.9), (0.95, 0.85, 0.2), (0.85, 0.3, 0.3), (0.6, 0.5, 0.9)]
    return np.clip(_blobs(rng, img, int(0.12 * w), (0.6, 1.8), dots, 0.3, 0.7), 0, 1).astype(np.float32)


# ------------------------------------------------------------------------------------------------ scenes
_PETALS = [((0.96, 0.95, 0.9), (0.95, 0.75, 0.1)), ((0.98, 0.8, 0.15), (0.45, 0.25, 0.05)),
           ((0.9, 0.15, 0.1), (0.08, 0.06, 0.05)), ((0.62, 0.38, 0.88), (0.95, 0.85, 0.3)),
           ((0.96, 0.55, 0.72), (0.98, 0.9, 0.4)), ((0.35, 0.5, 0.95), (0.2, 0.15, 0.4))]


def _jitter(rng, c, s=0.06):
    return np.clip(np.asarray(c) + rng.uniform(-s, s, 3), 0, 1)


def _strip_motion(rng, cfg, bx, length, far=False, slow=1.0):
    """Sway modes of a blade or stem: long ones are slow and sway more; ``slow`` < 1 for stems with heads."""
    h = cfg.height
    f0 = slow * np.clip(0.95 * (0.5 * h / length) ** 0.9 * rng.uniform(0.9, 1.1), 0.3, 2.6)
    a = cfg.amplitude_px * np.clip(length / (0.5 * h) * rng.uniform(0.8, 1.2), 0.4, 1.7) * (0.7 if far else slow)
    phase = rng.uniform(0, 0.8 * np.pi) - 2 * np.pi * bx / (0.9 * cfg.width)  # a wind wave crossing the field
    return _modes(rng, cfg, f0, (a, a * rng.uniform(-0.2, 0.2), 0.0), phase)


def _blade(rng, cfg, far):
    h, w = cfg.height, cfg.width
    length = rng.uniform(0.28, 0.6) * h if far else rng.uniform(0.5, 0.95) * h
    half = rng.uniform(0.007, 0.012) * h if far else rng.uniform(0.014, 0.024) * h
    base, tip = ((0.36, 0.5, 0.32), (0.62, 0.72, 0.42)) if far else ((0.1, 0.3, 0.07), (0.45, 0.7, 0.2))
    bx = rng.uniform(-0.05, 1.05) * w
    return Strip("blade", LAYER_FAR if far else LAYER_NEAR, bx, h + rng.uniform(0, 0.04) * h, length, half,
                  lean=rng.uniform(-0.25, 0.25), curve=rng.uniform(-0.12, 0.12) * length, drop=not cfg.exact_bins,
                  modes=_strip_motion(rng, cfg, bx, length, far), colour=_jitter(rng, base),
                  tip_colour=_jitter(rng, tip),
                  tex=tuple(rng.uniform(0, 128, 2)))


def _flower(rng, cfg, num_leaves):
    h, w = cfg.height, cfg.width
    length, bx = rng.uniform(0.45, 0.85) * h, rng.uniform(0.03, 0.97) * w
    stem = Strip("stem", LAYER_NEAR, bx, h + 2, length, max(0.6, 0.006 * h), lean=rng.uniform(-0.15, 0.15),
                  curve=rng.uniform(-0.08, 0.08) * length, drop=not cfg.exact_bins,
                  modes=_strip_motion(rng, cfg, bx, length, slow=0.8), colour=(0.22, 0.45, 0.15),
                  tip_colour=(0.3, 0.55, 0.2), tex=tuple(rng.uniform(0, 128, 2)))
    parts = [stem]
    for _ in range(num_leaves):
        side = rng.choice([-1.0, 1.0])
        size = rng.uniform(0.09, 0.14) * h
        parts.append(Sprite("leaf", LAYER_NEAR, stem, rng.uniform(0.25, 0.6) * length,
                             -np.pi / 2 + side * rng.uniform(0.5, 1.1), size, size,
                             _modes(rng, cfg, rng.uniform(1.5, 2.8), (0, 0, rng.uniform(0.04, 0.08)),
                                    rng.uniform(0, 6)),
                             1.0, _jitter(rng, (0.2, 0.45, 0.12)), (0, 0, 0), tex=tuple(rng.uniform(0, 128, 2))))
    petal, centre = _PETALS[rng.integers(len(_PETALS))]
    r = rng.uniform(0.05, 0.075) * h
    head = Sprite("flower", LAYER_TOP, stem, length, rng.uniform(-0.3, 0.3), r, r * rng.uniform(0.55, 0.95),
                   _modes(rng, cfg, rng.uniform(1.0, 2.2), (0, 0, rng.uniform(0.04, 0.08)), rng.uniform(0, 6)),
                   0.8, _jitter(rng, petal, 0.04), centre, petals=int(rng.choice([5, 6, 8, 10, 12])),
                   tex=tuple(rng.uniform(0, 128, 2)))
    return parts, head


def _candles(rng, cfg, n):
    h, w = cfg.height, cfg.width
    xs = (np.arange(n) + 0.5) / n * w + rng.uniform(-0.1, 0.1, n) * w / n
    statics, flames = [], []
    for x in xs:
        cw, ch = rng.uniform(0.12, 0.2) * h, rng.uniform(0.25, 0.55) * h
        top = 0.9 * h - ch
        statics.append(Strip("candle", LAYER_NEAR, x, 0.9 * h, ch, cw / 2,
                              colour=_jitter(rng, (0.92, 0.86, 0.72), 0.04)))
        statics.append(Strip("wick", LAYER_NEAR, x, top + 1, 0.05 * h, 0.5, lean=rng.uniform(-0.2, 0.2),
                              colour=(0.08, 0.06, 0.05)))
        lf = np.clip(cw * rng.uniform(1.3, 1.7), 0.12 * h, 0.3 * h)
        f0 = np.clip(2.0 * (0.22 * h / lf) ** 0.6, 0.8, 2.8)
        a = cfg.amplitude_px * 0.7 * lf / (0.22 * h)
        sway = _modes(rng, cfg, f0, (a, 0.0, 0.0), rng.uniform(0, 6))
        flicker = _modes(rng, cfg, rng.uniform(1.6, 2.8), (0.0, 0.0, rng.uniform(0.06, 0.1)), rng.uniform(0, 6),
                         second=0.5, second_ratio=(1.05, 1.3))
        flames.append(Strip("flame", LAYER_TOP, x, top - 0.01 * h, lf, 0.2 * lf, power=1.5,
                             modes=concat_modes(sway, flicker),
                             colour=(1.0, 0.5, 0.12), tip_colour=(1.0, 0.96, 0.8), tex=tuple(rng.uniform(0, 128, 2))))
    return statics + flames


def _build(rng, cfg: SceneConfig) -> list:
    scale = cfg.width / 256.0
    if cfg.kind == "candle":
        return _candles(rng, cfg, cfg.num_candles if cfg.num_candles is not None else 2)
    blades = cfg.num_blades if cfg.num_blades is not None else int(round((70 if cfg.kind == "meadow" else 30) * scale))
    flowers = cfg.num_flowers
    if flowers is None:
        flowers = int(round((6 if cfg.kind == "meadow" else 12) * scale))
    far = [_blade(rng, cfg, True) for _ in range(blades // 2)]
    near = [[_blade(rng, cfg, False)] for _ in range(blades - blades // 2)]
    heads = []
    for _ in range(flowers):
        parts, head = _flower(rng, cfg, 1 if cfg.kind == "meadow" else 2)
        near.append(parts)
        heads.append(head)
    near = [near[i] for i in rng.permutation(len(near))]
    return far + [o for group in near for o in group] + heads


def render_scene(config: SceneConfig, progress: Optional[Callable[[int, int], None]] = None) -> SyntheticClip:
    """Render ``config.num_frames`` frames and the exact trajectories of frame 0's pixels.

    ``progress(done, total)`` is called after each frame.
    """
    config.validate()
    rng = np.random.default_rng(config.seed)
    h, w, n_t = config.height, config.width, config.num_frames
    tile = noise_tile(rng)
    bg = _background(rng, config)
    objs = _build(rng, config)  # draw order: back to front
    for k, o in enumerate(objs):
        o.oid = k
    t = np.arange(n_t, dtype=np.float64) / config.fps
    strips = [o for o in objs if isinstance(o, Strip)]
    strip_set = StripSet(strips, t)
    sprite_set = SpriteSet([o for o in objs if isinstance(o, Sprite)], strip_set,
                            {id(o): k for k, o in enumerate(strips)}, t)
    static = StripSet([o for o in strips if not o.moving], t)
    moving = [StripSet([o for o in strips if o.moving], t), sprite_set]
    if len(static.oid) and any(len(s.oid) and s.oid.min() < static.oid.max() for s in moving):
        raise AssertionError("static objects must be drawn behind moving ones")
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for k in np.nonzero(strip_set.code == StripSet.CODES["flame"])[0]:  # warm light on the wall (static)
        gx, gy = strip_set.point(k, 0.4 * strip_set.L[k], 0)
        glow = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * (0.3 * h) ** 2))
        bg += glow[..., None] * np.array([0.35, 0.2, 0.06], np.float32)
    bg = bg.reshape(-1, 3)
    static_owner = np.full(h * w, -1, np.int16)
    composite(bg, static_owner, [static], 0, w, h, tile)
    bg = np.clip(bg, 0, 1)
    frames = np.empty((n_t, h * w, 3), np.uint8)
    owners = np.empty((n_t, h * w), np.int16)
    mat = np.zeros((2, h * w), np.float64)
    for ti in range(n_t):
        img, owner = bg.copy(), static_owner.copy()
        composite(img, owner, moving, ti, w, h, tile, mat if ti == 0 else None)
        frames[ti] = np.rint(np.clip(img, 0, 1) * 255)
        owners[ti] = owner
        if progress is not None:
            progress(ti + 1, n_t)
    owner0 = owners[0].astype(np.int64)
    traj = np.zeros((n_t, 2, h * w), np.float32)
    moving_ids = np.concatenate([s.oid for s in moving])
    for s in moving:
        for k in range(len(s.oid)):  # one object at a time keeps memory small
            pix = np.nonzero(owner0 == s.oid[k])[0]
            if len(pix):
                traj[:, :, pix] = s.displacement(np.full(len(pix), k), mat[0, pix], mat[1, pix])
    vis = np.empty((n_t, h * w), bool)
    ix, iy = xx.ravel(), yy.ravel()
    for ti in range(n_t):
        qx, qy = np.rint(ix + traj[ti, 0]).astype(np.int64), np.rint(iy + traj[ti, 1]).astype(np.int64)
        inb = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)
        vis[ti] = inb & (owners[ti][np.clip(qy, 0, h - 1) * w + np.clip(qx, 0, w - 1)] == owner0)
    layers = np.array([o.layer for o in objs] + [LAYER_BACKGROUND], np.uint8)
    movers = np.isin(np.arange(len(objs) + 1), moving_ids)
    infos = [ObjectInfo(o.oid, o.kind, o.layer, float(o.L), float(o.modes.freq[0]) if o.moving else 0.0, o.moving)
             for o in objs]
    log.debug("rendered %s scene: %d objects, %d frames", config.kind, len(objs), n_t)
    return SyntheticClip(frames.reshape(n_t, h, w, 3), traj.reshape(n_t, 2, h, w), movers[owner0].reshape(h, w),
                         config.fps, config, layers[owner0].reshape(h, w), owner0.reshape(h, w).astype(np.int32),
                         vis.reshape(n_t, h, w), infos)


def write_video(clip: SyntheticClip, path, crf: int = 16, preset: str = "slow") -> None:
    """Write ``clip.frames`` as H.264 yuv420p mp4. Odd sizes are padded by repeating the last row/column
    (ground truth stays valid for the original pixels)."""
    import imageio.v2 as imageio

    frames = clip.frames
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        writer = imageio.get_writer(path, format="FFMPEG", mode="I", fps=clip.fps, codec="libx264",
                                    pixelformat="yuv420p", quality=None, macro_block_size=1, ffmpeg_log_level="error",
                                    ffmpeg_params=["-crf", str(int(crf)), "-preset", preset, "-movflags", "+faststart"])
    except (OSError, RuntimeError, ValueError) as e:
        raise RuntimeError(f"could not open '{path}' for H.264 writing ({e}); "
                           "install the 'imageio-ffmpeg' package and check the folder is writable") from e
    try:
        for f in frames:
            writer.append_data(f)
    finally:
        writer.close()
