"""Rendering a designed scene (``scenes.build_scene``) with its exact ground truth.

* :func:`render_window`: the training sample of an exact (looping) scene: frame 0 (the photo), the exact spectral
  volume from ``2 * max_bin + 1`` analytic samples of the displacement per pixel, and a few render pairs (frame t,
  exact flow 0 -> t).
* :func:`render_scene`: every frame of a clip with the per-frame ground truth a flow evaluation needs
  (trajectories, visibility, layer and object ids); works for exact and natural scenes.
* :func:`render_clip`: every frame only, optionally with camera shake and sensor noise (the real-clip rejection
  rules' negatives).

Ground-truth convention (as ``addon/core/spectral.py``): the trajectory of pixel p at frame t is the displacement
(pixels, x right, y down) of the surface point that frame 0 shows at p's centre; pixel centres sit at integer
coordinates; that point belongs to the front-most object whose shape contains the centre in frame 0 (anti-aliased
edges blend colours over one pixel). Background and static objects have zero trajectory.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Optional, Sequence, Union

import cv2
import numpy as np

from addon.core.spectral import mean_square_displacement

from . import scene_plants as P
from .scene_cloth import Cloth, ClothSet
from .scene_motion import exact_coefficients, sample_times
from .scene_objects import Sprite, SpriteSet, Strip, StripSet, Textures, composite
from .scenes import Scene, SceneConfig, build_scene

log = logging.getLogger(__name__)
_THICK_PX = 4.0  # strips wider than this are drawn as their own set (keeps the raster spans short)


@dataclasses.dataclass
class Window:
    photo: np.ndarray        # uint8 (H, W, 3)
    coeffs: np.ndarray       # float32 (K, 4, H, W) exact spectral volume (pixels, y down)
    weight: np.ndarray       # float32 (H, W): mean over the loop of |F_t(p)|^2
    pair_frames: np.ndarray  # int (P,) frame indices t of the render pairs
    frames: np.ndarray       # uint8 (P, H, W, 3) rendered frame t
    flows: np.ndarray        # float32 (P, 2, H, W) exact forward flow 0 -> t (= trajectory at t)
    moving_mask: np.ndarray  # bool (H, W)


@dataclasses.dataclass
class ObjectInfo:
    oid: int
    kind: str         # blade | stem | flame | candle | wick | flower | leaf | cloth
    layer: int        # scene_plants.LAYER_*
    length_px: float  # strip length, sprite size, cloth length
    freq_hz: float    # primary mode frequency (0 for static objects)
    moving: bool


@dataclasses.dataclass
class SceneClip:
    frames: np.ndarray        # uint8 (T, H, W, 3) RGB
    trajectories: np.ndarray  # float32 (T, 2, H, W): displacement of frame-0 pixel p at frame t, [x, y], y down
    moving_mask: np.ndarray   # bool (H, W): frame-0 pixel centre lies on a moving object
    fps: float
    config: "SceneConfig"
    layer_ids: np.ndarray     # uint8 (H, W): LAYER_* of the frame-0 front-most surface (0 = background)
    object_ids: np.ndarray    # int32 (H, W): index into ``objects``, -1 = background
    visibility: np.ndarray    # bool (T, H, W): the point is still front-most at frame t
    objects: list             # list[ObjectInfo], index = oid
    info: dict                # the scene's info (kind, background, photos, ...)


class Drawables:
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

    def draw(self, backdrop: np.ndarray, ti: int, w: int, h: int, textures: Textures, with_material: bool):
        img = backdrop.reshape(-1, 3).astype(np.float32).copy()
        owner = np.full(h * w, -1, np.int16)
        mat = np.zeros((2, h * w), np.float64) if with_material else None
        composite(img, owner, [s for s in self.sets if len(s.oid)], ti, w, h, textures, mat)
        return img.reshape(h, w, 3), owner.astype(np.int64), mat

    def displacement(self, owner: np.ndarray, mat: np.ndarray, n_t: int) -> np.ndarray:
        """(n_t, 2, P) displacement of every frame-0 pixel (zero for background and static objects)."""
        out = np.zeros((n_t, 2, owner.size), np.float32)
        for si, s in enumerate(self.sets):
            pix = np.nonzero((self.set_of[owner] == si) & self.moving[owner])[0]
            if len(pix):
                out[:, :, pix] = s.displacement(self.local[owner[pix]], mat[0, pix], mat[1, pix])
        return out


def render_window(scene: "Scene", pair_frames: Sequence[int] = ()) -> Window:
    """Photo (frame 0), exact spectral volume and render pairs (frame t, exact flow 0 -> t) of an exact scene."""
    cfg = scene.config
    if not cfg.exact:
        raise ValueError("render_window needs an exact (looping) scene: build it with SceneConfig(exact=True); "
                         "render a natural scene with render_scene")
    h, w = cfg.height, cfg.width
    pair_frames = np.asarray(pair_frames, dtype=np.int64).reshape(-1)
    if np.any((pair_frames < 1) | (pair_frames >= cfg.num_frames)):
        raise ValueError(f"pair frames must lie in 1..{cfg.num_frames - 1}, got {pair_frames.tolist()}")
    ts = sample_times(cfg.timing)
    t = np.concatenate([ts, pair_frames / cfg.fps])
    d = Drawables(scene.objects, t)
    img0, owner0, mat0 = d.draw(scene.backdrop.image, 0, w, h, scene.textures, True)
    disp = d.displacement(owner0, mat0, len(t))
    coeffs = exact_coefficients(disp[: len(ts)], cfg.k).reshape(cfg.k, 4, h, w)
    frames = np.stack([scene.lighting.apply(d.draw(scene.backdrop.image, len(ts) + j, w, h, scene.textures, False)[0])
                       for j in range(len(pair_frames))]) if len(pair_frames) else np.zeros((0, h, w, 3), np.uint8)
    flows = disp[len(ts):].reshape(len(pair_frames), 2, h, w)
    moving = d.moving[owner0].reshape(h, w)
    return Window(scene.lighting.apply(img0), coeffs, mean_square_displacement(coeffs), pair_frames, frames,
                  np.ascontiguousarray(flows), moving)


def exact_trajectories(scene: "Scene", frames: Sequence[int]) -> np.ndarray:
    """Ground-truth displacement (N, 2, H, W) of frame 0's pixels at the given frame indices, straight from the
    objects' modes (independent of the spectral volume; used to test it)."""
    cfg = scene.config
    t = np.concatenate([[0.0], np.asarray(frames, float) / cfg.fps])
    d = Drawables(scene.objects, t)
    _, owner0, mat0 = d.draw(scene.backdrop.image, 0, cfg.width, cfg.height, scene.textures, True)
    return d.displacement(owner0, mat0, len(t))[1:].reshape(len(t) - 1, 2, cfg.height, cfg.width)


def render_clip(scene: "Scene", num_frames: Optional[int] = None, shake_px: float = 0.0, noise: float = 0.0,
                seed: int = 0) -> np.ndarray:
    """Every frame (N, H, W, 3) uint8 of a scene; ``shake_px`` moves the whole frame like a hand-held camera
    (smooth random translation of about that many pixels), ``noise`` adds sensor noise (levels of 0..255)."""
    cfg = scene.config
    n = num_frames or cfg.num_frames
    t = np.arange(n) / cfg.fps
    d = Drawables(scene.objects, t)
    rng = np.random.default_rng(seed)
    out = np.empty((n, cfg.height, cfg.width, 3), np.uint8)
    if shake_px > 0:
        f = rng.uniform(0.3, 1.5, (2, 3))
        ph = rng.uniform(0, 2 * np.pi, (2, 3))
        offs = shake_px * (np.sin(2 * np.pi * f[:, None, :] * t[None, :, None] + ph[:, None, :]).sum(-1) / 1.5)
        offs = offs - offs[:, :1]
    for i in range(n):
        frame = scene.lighting.apply(d.draw(scene.backdrop.image, i, cfg.width, cfg.height, scene.textures, False)[0])
        if shake_px > 0:
            m = np.float32([[1, 0, offs[0, i]], [0, 1, offs[1, i]]])
            frame = cv2.warpAffine(frame, m, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT101)
        if noise > 0:
            frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
        out[i] = frame
    return out


def render_scene(scene: Union["Scene", "SceneConfig"],
                 progress: Optional[Callable[[int, int], None]] = None) -> SceneClip:
    """All ``num_frames`` frames of a scene (or of the scene a config builds) with the exact trajectories of frame
    0's pixels, their visibility per frame and the layer and object under each pixel. ``progress(done, total)`` is
    called after each frame."""

    if isinstance(scene, SceneConfig):
        scene = build_scene(scene)
    cfg = scene.config
    h, w, n_t = cfg.height, cfg.width, cfg.num_frames
    d = Drawables(scene.objects, np.arange(n_t, dtype=np.float64) / cfg.fps)
    frames = np.empty((n_t, h, w, 3), np.uint8)
    owners = np.empty((n_t, h * w), np.int32)
    mat0 = None
    for ti in range(n_t):
        img, owners[ti], mat = d.draw(scene.backdrop.image, ti, w, h, scene.textures, ti == 0)
        mat0 = mat if ti == 0 else mat0
        frames[ti] = scene.lighting.apply(img)
        if progress is not None:
            progress(ti + 1, n_t)
    owner0 = owners[0].astype(np.int64)
    traj = d.displacement(owner0, mat0, n_t)
    yy, xx = np.mgrid[0:h, 0:w]
    ix, iy = xx.ravel(), yy.ravel()
    vis = np.empty((n_t, h * w), bool)
    for ti in range(n_t):
        qx, qy = np.rint(ix + traj[ti, 0]).astype(np.int64), np.rint(iy + traj[ti, 1]).astype(np.int64)
        inside = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)
        vis[ti] = inside & (owners[ti][np.clip(qy, 0, h - 1) * w + np.clip(qx, 0, w - 1)] == owner0)
    layers = np.array([o.layer for o in scene.objects] + [P.LAYER_BACKGROUND], np.uint8)
    infos = [ObjectInfo(o.oid, o.kind, int(o.layer), float(o.L), float(o.modes.freq[0]) if P.is_moving(o) else 0.0,
                        P.is_moving(o)) for o in scene.objects]
    log.debug("rendered %s scene: %d objects, %d frames", scene.info["kind"], len(scene.objects), n_t)
    return SceneClip(frames, traj.reshape(n_t, 2, h, w), d.moving[owner0].reshape(h, w), cfg.fps, cfg,
                     layers[owner0].reshape(h, w), owner0.reshape(h, w).astype(np.int32), vis.reshape(n_t, h, w),
                     infos, dict(scene.info))
