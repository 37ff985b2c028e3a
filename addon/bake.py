"""Load a spectral volume for a plane and bake it: the steps behind the Load Volume and Bake operators."""
from __future__ import annotations

import dataclasses
import logging

import numpy as np

from . import animation, plane, pokes, shapekeys, volumes
from .core import mesh as core_mesh
from .core import spectral

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
        result.bands = shapekeys.bake_modal_keys(obj, volume.coeffs, request.anchor_group,
                                                 progress=lambda done, _total: wm.progress_update(done),
                                                 depth=obj.imagedyn.depth_from_motion)
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
    log.info("baked %d bands onto '%s' (%d vertices), loop %d frames", result.bands, obj.name, result.vertices,
             result.loop_frames)
    return result


def clear(obj) -> int:
    """Remove the add-on's keys and their animation from ``obj``. Returns the number of keys removed."""
    animation.clear_modal_animation(obj)
    return shapekeys.remove_modal_keys(obj)
