"""Wind arrows in Blender: Empty arrows parented to a photo plane that set the direction of the motion near them.

Convention (docs/addon.md):

* A wind arrow is an Empty (display "Single Arrow") parented to the photo plane and marked
  ``imagedyn_wind.is_wind``, like a poke but with no trigger: it acts on the whole loop, as it is placed now (its own
  animation is not followed).
* Its base (the Empty's origin) is where it acts, its direction (local +Z, projected onto the plane) the axis the
  motion turns to, its length (Display Size x Scale) the radius it reaches: full effect within half of it, fading
  to none at its tip's distance. *Strength* (0..1) says how far the motion turns.
* The plane's volume is transformed by ``core.wind.apply_arrows`` (in photo-metric map pixels) and the keys are
  re-baked from it in place (``bake.rebake_keys``) - no backend, a fraction of a second. The transformed volume is
  what the keys hold, so pokes, Show Motion and neural frames all see the turned motion.
"""
from __future__ import annotations

import hashlib
import logging

import bpy
import numpy as np
from bpy.props import BoolProperty, FloatProperty

from . import arrows, shapekeys
from .core import pokes_bake
from .core import wind as core_wind

log = logging.getLogger(__name__)

_EFFECTIVE: dict = {}  # plane name -> (signature, coeffs): the last transformed volume per plane
_ERRORS: dict = {}  # plane name -> last problem reading its arrows (shown in the panel)


def _touch(self, context):
    self.id_data.update_tag()  # the depsgraph handler (live.py) sees the arrow changed and re-bakes


class IMAGEDYN_PG_wind(bpy.types.PropertyGroup):
    is_wind: BoolProperty(
        name="Is Wind Arrow", default=False,
        description="This Empty is an Image Dynamics wind arrow of its parent photo plane")
    enabled: BoolProperty(
        name="Enabled", default=True, update=_touch,
        description="Turn the motion near this arrow (off: it is kept but ignored)")
    strength: FloatProperty(
        name="Strength", default=1.0, min=0.0, max=1.0, update=_touch,
        description="How far the motion near the arrow turns to its direction: 1 = the motion sways along the arrow "
                    "(a little across it remains), 0 = unchanged")


def is_wind(obj) -> bool:
    return obj is not None and obj.type == "EMPTY" and obj.imagedyn_wind.is_wind


def plane_winds(plane) -> list:
    """Enabled wind arrows of a plane (its children), in name order (the order they apply in)."""
    if plane is None or plane.type != "MESH":
        return []
    return sorted((c for c in plane.children if is_wind(c) and c.imagedyn_wind.enabled), key=lambda o: o.name)


def has_winds(plane) -> bool:
    return bool(plane_winds(plane))


def add_wind(plane, base, tip, strength: float = 1.0, name: str = "Wind"):
    """New wind arrow on ``plane`` from ``base`` to ``tip`` (plane-local points). Does not re-bake."""
    empty = arrows.new_arrow(plane, base, tip, name)
    settings = empty.imagedyn_wind
    settings.is_wind = True
    settings.strength = strength
    return empty


def remove_winds(plane) -> int:
    """Delete every wind arrow of ``plane``."""
    doomed = [c for c in plane.children if is_wind(c)]
    for empty in doomed:
        bpy.data.objects.remove(empty)
    return len(doomed)


def pixel_aspect(frame, width: int, height: int) -> float:
    """Width / height of one map pixel on the plane (``frame`` = ``shapekeys.plane_frame``; 1 when the volume has
    the photo's aspect)."""
    _uv, _rest, _origin, eu, ev, _flat = frame
    return float(np.linalg.norm(eu)) / width / max(float(np.linalg.norm(ev)) / height, 1e-12)


def wind_arrows(plane, width: int, height: int, frame=None) -> list:
    """The plane's wind arrows as :class:`core.wind.WindArrow` in pixels of a ``width x height`` map (``frame``:
    the plane's ``shapekeys.plane_frame`` when the caller has it)."""
    winds = plane_winds(plane)
    if not winds:
        return []
    frame = frame or shapekeys.plane_frame(plane)
    _uv, _rest, origin, eu, ev, _flat = frame
    aspect = pixel_aspect(frame, width, height)
    out = []
    for empty in winds:
        base, tip = arrows.arrow_in_plane(empty, plane)
        x, y = pokes_bake.plane_to_pixels(np.stack([base, tip]), origin, eu, ev, width, height)
        dx, dy = x[1] - x[0], y[1] - y[0]
        radius = float(np.hypot(dx * aspect, dy))
        if radius <= 1e-6:
            log.warning("wind arrow '%s' has no length on the photo and is ignored", empty.name)
            continue
        out.append(core_wind.WindArrow(x[0], y[0], dx, dy, radius, empty.imagedyn_wind.strength))
    return out


def signature(plane, width: int, height: int, frame=None) -> str:
    """Identifies the plane's arrows as the transform sees them ('' without arrows)."""
    found = wind_arrows(plane, width, height, frame)
    if not found:
        return ""
    text = repr([tuple(round(float(v), 6) for v in (a.x, a.y, a.dx, a.dy, a.radius, a.strength)) for a in found])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def effective_coeffs(plane, volume, source: str = "", frame=None) -> np.ndarray:
    """The coefficients the plane's keys hold: the volume's, turned by its wind arrows (the volume's own array
    when it has none). ``source`` identifies the volume's version for the cache."""
    if not plane_winds(plane):
        return volume.coeffs
    _k, _four, height, width = volume.coeffs.shape
    frame = frame or shapekeys.plane_frame(plane)
    found = wind_arrows(plane, width, height, frame)
    if not found:
        return volume.coeffs
    key = (source or id(volume), signature(plane, width, height, frame))
    cached = _EFFECTIVE.get(plane.name)
    if cached is not None and cached[0] == key:
        return cached[1]
    coeffs = core_wind.apply_arrows(volume.coeffs, found, pixel_aspect(frame, width, height))
    if len(_EFFECTIVE) >= 8:
        _EFFECTIVE.clear()
    _EFFECTIVE[plane.name] = (key, coeffs)
    return coeffs


def last_error(plane) -> str:
    return _ERRORS.get(plane.name, "")


def set_error(plane, message: str) -> None:
    if message:
        _ERRORS[plane.name] = message
    else:
        _ERRORS.pop(plane.name, None)


def forget() -> None:
    _EFFECTIVE.clear()
    _ERRORS.clear()


classes = (IMAGEDYN_PG_wind,)


def register_properties():
    bpy.types.Object.imagedyn_wind = bpy.props.PointerProperty(
        type=IMAGEDYN_PG_wind, name="Image Dynamics Wind Arrow",
        description="Image Dynamics wind arrow settings of this Empty (when it is a wind arrow of a photo plane)")


def unregister_properties():
    forget()
    del bpy.types.Object.imagedyn_wind
