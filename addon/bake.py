"""Load a spectral volume for a plane and bake it (the steps behind the Load Volume and Bake operators), and re-bake
its keys in place when its wind arrows or Pin Edges change."""
from __future__ import annotations

import dataclasses
import hashlib
import logging

import numpy as np

from . import animation, overlay, plane, pokes, shapekeys, volumes, wind
from .core import edges
from .core import mesh as core_mesh
from .core import spectral
from .core import wind as core_wind

log = logging.getLogger(__name__)

ASPECT_TOLERANCE = 0.02  # relative aspect difference above which the user is warned


@dataclasses.dataclass(frozen=True)
class BakeRequest:
    """Everything a bake needs, read from the operator and the object's settings."""

    volume_path: str
    anchor_group: str = ""
    set_frame_range: bool = True
    include_closing_frame: bool = False


@dataclasses.dataclass
class BakeResult:
    bands: int = 0
    loop_frames: int = 0
    vertices: int = 0
    warnings: list = dataclasses.field(default_factory=list)


def photo_size(obj):
    """(W, H) of the plane's photo, or of the plane itself (object units) when it has no image texture."""
    image = plane.find_image(obj)
    if image is not None and image.size[0] > 0 and image.size[1] > 0:
        return tuple(image.size)
    try:
        uv, _rest, _origin, eu, ev, _flat = shapekeys.plane_frame(obj)
    except shapekeys.BakeError:
        return None
    span = uv.max(axis=0) - uv.min(axis=0)
    return float(np.linalg.norm(eu) * span[0]), float(np.linalg.norm(ev) * span[1])


def aspect_warning(volume: spectral.SpectralVolume, obj) -> str | None:
    size = photo_size(obj)
    if size is None or min(size) <= 0:
        return None
    if core_mesh.aspect_mismatch(volume.source_size, size) <= ASPECT_TOLERANCE:
        return None
    vw, vh = volume.source_size
    return (f"The volume was made for a {vw}x{vh} image (aspect {vw / vh:.2f}) but '{obj.name}' has aspect "
            f"{size[0] / size[1]:.2f}: the motion is resampled (stretched) to fit the plane. For exact motion use "
            "a volume made from this photo")


def apply_volume_settings(obj, scene, volume: spectral.SpectralVolume, filepath: str) -> None:
    """Remember the volume on the object; the loop starts at the scene's first frame and lasts the volume's
    duration at the scene's frame rate."""
    props = obj.imagedyn
    props.loop_start = scene.frame_start
    props.volume_path = filepath
    props.volume_summary = volumes.summary(volume)
    props.volume_num_frames = volume.num_frames
    props.volume_fps = volume.fps
    scene_fps = scene.render.fps / scene.render.fps_base
    # Assigning loop_frames rewrites the loop only when keys exist; bake() writes it again anyway.
    props.loop_frames = core_mesh.loop_length(volume.num_frames, volume.fps, scene_fps)


def bake(context, obj, request: BakeRequest, volume: spectral.SpectralVolume | None = None) -> BakeResult:
    """Bake ``request.volume_path`` (or an already loaded ``volume``) onto ``obj`` as modal keys + loop keyframes.

    Raises SpectralVolumeError for a bad file and shapekeys.BakeError for a plane that cannot take the motion.
    """
    if volume is None:
        volume = volumes.read_volume(request.volume_path)
    result = BakeResult()
    warning = aspect_warning(volume, obj)
    if warning:
        result.warnings.append(warning)
    wm = context.window_manager
    total = 2 * volume.k
    wm.progress_begin(0, total)
    try:
        animation.clear_modal_animation(obj)
        source = volumes.version(request.volume_path)
        frame = shapekeys.plane_frame(obj)
        coeffs = wind.effective_coeffs(obj, volume, source, frame)
        offsets = shapekeys.key_offsets(obj, coeffs, pin_rows(obj), frame)
        result.bands = shapekeys.write_modal_keys(obj, offsets, frame, request.anchor_group,
                                                  progress=lambda done, _total: wm.progress_update(done),
                                                  depth=obj.imagedyn.depth_from_motion)
        _remember(obj, volume, source, frame, coeffs, frame[1] + offsets)
        result.loop_frames = pokes.write_motion(obj)
    finally:
        wm.progress_end()
    result.vertices = len(obj.data.vertices)
    if request.set_frame_range:
        animation.set_scene_range(context.scene, obj.imagedyn.loop_start, result.loop_frames,
                                  request.include_closing_frame)
    if result.loop_frames < 2 * result.bands:
        result.warnings.append(f"The loop ({result.loop_frames} frames) is shorter than twice the number of bands "
                               f"({result.bands}): raise Loop Length or lower Speed to avoid flicker")
    overlay.refresh(obj)
    log.info("baked %d bands onto '%s' (%d vertices), loop %d frames", result.bands, obj.name, result.vertices,
             result.loop_frames)
    return result


def clear(obj) -> int:
    """Remove the add-on's keys and their animation from ``obj``. Returns the number of keys removed."""
    animation.clear_modal_animation(obj)
    if shapekeys.BAKED_SIGNATURE in obj:
        del obj[shapekeys.BAKED_SIGNATURE]
    removed = shapekeys.remove_modal_keys(obj)
    overlay.refresh(obj)
    return removed


# ----------------------------------------------------------------------------------------------------------------
# What the keys hold, and re-baking them live (wind arrows, Pin Edges)
# ----------------------------------------------------------------------------------------------------------------

def pin_rows(obj) -> int:
    """Rows over which the border is pinned (Pin Edges), 0 when it is off."""
    return edges.PIN_ROWS if obj.imagedyn.pin_edges else 0


def keys_signature(obj, volume: spectral.SpectralVolume, source: str, frame=None) -> str:
    """Identifies what a plane's keys hold: the volume's version, its wind arrows and Pin Edges."""
    return f"{source}|wind:{wind.signature(obj, volume.width, volume.height, frame)}|pin:{pin_rows(obj)}"


def keys_stale(obj, frame=None) -> bool:
    """True when a baked plane's wind arrows or Pin Edges changed since its keys were written (the volume file is
    read only when arrows are involved: a plane without arrows whose file went missing keeps its keys quietly).
    Keys written before the signature existed are kept until the plane gets a wind arrow (or Bake / Pin Edges is
    pressed)."""
    if not shapekeys.has_modal_keys(obj) or not obj.imagedyn.volume_path:
        return False
    stored = obj.get(shapekeys.BAKED_SIGNATURE)
    winds = wind.has_winds(obj)
    if stored is None:
        return winds
    if not winds and stored.endswith(f"|wind:|pin:{pin_rows(obj)}"):
        return False
    volume, source = volumes.plane_volume(obj)
    return stored != keys_signature(obj, volume, source, frame)


@dataclasses.dataclass
class _Baked:
    """What the last bake of a plane wrote, kept in memory so that moving an arrow re-samples only the vertices
    whose part of the volume changed."""

    signature: str
    geometry: str
    coeffs: np.ndarray  # (K, 4, H, W) the effective volume the keys hold
    co: np.ndarray  # (K, 2, N, 3) float32 key positions


_BAKED: dict = {}  # plane name -> _Baked


def _geometry(frame, rows: int) -> str:
    uv, rest = frame[0], frame[1]
    return hashlib.sha1(np.ascontiguousarray(uv).tobytes() + np.ascontiguousarray(rest).tobytes()
                        + str(rows).encode()).hexdigest()


def _remember(obj, volume, source: str, frame, coeffs: np.ndarray, co: np.ndarray) -> None:
    signature = keys_signature(obj, volume, source, frame)
    obj[shapekeys.BAKED_SIGNATURE] = signature
    if len(_BAKED) >= 4 and obj.name not in _BAKED:
        _BAKED.clear()
    _BAKED[obj.name] = _Baked(signature, _geometry(frame, pin_rows(obj)), coeffs, co)


def rebake_keys(obj, frame=None) -> int:
    """Re-bake a plane's keys from its volume, wind arrows and Pin Edges, in place (names, values, anchor and
    animation kept: ``shapekeys.rewrite_modal_keys``), falling back to a full bake of the key set when the band
    count changed. When the keys still hold the last bake made in this session, only the vertices whose part of
    the volume changed are re-sampled (moving one arrow). Returns K. VolumeUnavailable / BakeError say what to do."""
    frame = frame or shapekeys.plane_frame(obj)
    volume, source = volumes.plane_volume(obj)
    coeffs = wind.effective_coeffs(obj, volume, source, frame)
    rows = pin_rows(obj)
    last = _BAKED.get(obj.name)
    if (last is not None and last.signature == obj.get(shapekeys.BAKED_SIGNATURE)
            and last.geometry == _geometry(frame, rows) and last.coeffs.shape == coeffs.shape):
        co = last.co.copy()  # the cache stays valid if writing fails
        changed = np.any(coeffs != last.coeffs, axis=(0, 1))  # (H, W)
        x, y = core_mesh.uv_to_pixels(frame[0], volume.width, volume.height)
        moved = core_wind.touched_vertices(changed, x, y)
        if moved.size:
            co[:, :, moved] = frame[1][moved] + shapekeys.key_offsets(obj, coeffs, rows, frame, moved)
    else:
        co = frame[1] + shapekeys.key_offsets(obj, coeffs, rows, frame)
    if not shapekeys.rewrite_modal_keys(obj, co, frame):
        shapekeys.write_modal_keys(obj, co - frame[1], frame, obj.imagedyn.anchor_group,
                                   depth=obj.imagedyn.depth_from_motion)
        pokes.write_motion(obj)
    _remember(obj, volume, source, frame, coeffs, co)
    return volume.k


def forget() -> None:
    _BAKED.clear()
