"""Arrow Empties on a photo plane, the handle both pokes (addon/pokes.py) and wind arrows (addon/wind.py) use: an
Empty drawn as a single arrow, parented to the plane, whose base (its origin) marks a point of the photo and whose
tip (local +Z times Display Size, times its scale) a direction and a length. Points are plane-local."""
from __future__ import annotations

import math

import bpy
import numpy as np
from bpy.props import FloatProperty
from mathutils import Euler, Matrix, Quaternion, Vector

from . import compat, shapekeys


def _channel(fcurves, path, current, frame):
    values = list(current)
    if fcurves is not None:
        for i in range(len(values)):
            fc = fcurves.find(path, index=i)
            if fc is not None and not fc.mute:
                values[i] = fc.evaluate(frame)
    return values


def basis_at(obj, frame: float) -> Matrix:
    """The object's location/rotation/scale matrix at ``frame`` from its own keys (current values if unkeyed)."""
    fcurves = compat.find_fcurves(obj)
    if fcurves is None:
        return obj.matrix_basis.copy()
    loc = Vector(_channel(fcurves, "location", obj.location, frame))
    scale = Vector(_channel(fcurves, "scale", obj.scale, frame))
    mode = obj.rotation_mode
    if mode == "QUATERNION":
        rot = Quaternion(_channel(fcurves, "rotation_quaternion", obj.rotation_quaternion, frame)).normalized()
    elif mode == "AXIS_ANGLE":
        angle, *axis = _channel(fcurves, "rotation_axis_angle", obj.rotation_axis_angle, frame)
        rot = Quaternion(axis, angle)
    else:
        rot = Euler(_channel(fcurves, "rotation_euler", obj.rotation_euler, frame), mode).to_quaternion()
    return Matrix.LocRotScale(loc, rot, scale)


def arrow_in_plane(empty, plane, frame: float | None = None):
    """(base, tip) of the arrow in the plane's local space, as (3,) float64 arrays: at ``frame`` from the Empty's own
    keys, or as it is now (``frame`` None)."""
    if empty.parent == plane and empty.parent_type == "OBJECT":
        basis = empty.matrix_basis if frame is None else basis_at(empty, frame)
        local = empty.matrix_parent_inverse @ basis
    else:
        local = plane.matrix_world.inverted() @ empty.matrix_world
    base = local @ Vector((0.0, 0.0, 0.0))
    tip = local @ Vector((0.0, 0.0, empty.empty_display_size))
    return np.array(base, dtype=np.float64), np.array(tip, dtype=np.float64)


def set_arrow(empty, base, tip) -> None:
    """Place an arrow Empty (parented to its plane) from ``base`` to ``tip``, plane-local points."""
    base, tip = Vector(base), Vector(tip)
    direction = tip - base
    empty.location = base
    if direction.length > 1e-9:
        empty.rotation_euler = direction.to_track_quat("Z", "Y").to_euler()
    empty.empty_display_size = max(direction.length, 1e-4)


def new_arrow(plane, base, tip, name: str):
    """An arrow Empty parented to ``plane``, from ``base`` to ``tip``."""
    empty = bpy.data.objects.new(name, None)
    empty.empty_display_type = "SINGLE_ARROW"
    for collection in plane.users_collection[:1] or [bpy.context.scene.collection]:
        collection.objects.link(empty)
    empty.parent = plane
    empty.matrix_parent_inverse = Matrix.Identity(4)
    set_arrow(empty, base, tip)
    return empty


def photo_point(plane, u: float, v: float) -> Vector:
    """Plane-local point at photo position (u, v) (0..1, v up)."""
    _uv, _rest, origin, eu, ev, _flat = shapekeys.plane_frame(plane)
    return Vector(origin + u * eu + v * ev)


def photo_arrow(plane, u: float, v: float, angle: float, length: float):
    """(base, tip) plane-local of an arrow at photo position (u, v), pointing ``angle`` radians on the photo
    (0 = right, pi/2 = up), ``length`` times the photo's width long."""
    _uv, _rest, origin, eu, ev, _flat = shapekeys.plane_frame(plane)
    width = float(np.linalg.norm(eu))
    step = width * length * (math.cos(angle) * eu / width
                             + math.sin(angle) * ev / max(float(np.linalg.norm(ev)), 1e-12))
    base = Vector(origin + u * eu + v * ev)
    return base, base + Vector(step)


def across_property():
    """An operator's "Across" option: where on the photo, left to right (for :func:`photo_arrow`)."""
    return FloatProperty(name="Across", default=0.5, min=0.0, max=1.0,
                         description="Where on the photo, from its left (0) to its right (1) edge")


def up_property():
    """An operator's "Up" option: where on the photo, bottom to top (for :func:`photo_arrow`)."""
    return FloatProperty(name="Up", default=0.5, min=0.0, max=1.0,
                         description="Where on the photo, from its bottom (0) to its top (1) edge")
