"""Poke operators: drag-and-release in the viewport, add, simulate and remove pokes (the data layer is pokes.py).

The viewport drag is factored for tests: :func:`region_to_plane` (region pixel -> point on the photo plane through
``bpy_extras.view3d_utils``), :class:`DragSession` (press / move / release / cancel) and :func:`drag_modal` (the
operator's event handling) run with any region, view and event objects that carry the attributes Blender's have.
"""
from __future__ import annotations

import logging

import bpy
import numpy as np
from bpy.props import FloatProperty
from mathutils import Vector

from . import arrows, pokes, shapekeys
from .core import pokes_bake
from .ops import PlaneOperator

log = logging.getLogger(__name__)

_NAVIGATION = {"MIDDLEMOUSE", "WHEELUPMOUSE", "WHEELDOWNMOUSE", "TRACKPADPAN", "TRACKPADZOOM", "NDOF_MOTION"}
STATUS = "Poke: press on the photo, drag in the direction of the push, release.  Esc / right-click: cancel"


def region_to_plane(region, rv3d, plane, coord, photo_only: bool = True):
    """Viewport pixel ``coord`` (region x, y) -> plane-local point on the photo plane (rest shape), or None when
    the view ray misses it (``photo_only``: misses the photo's UV area)."""
    from bpy_extras import view3d_utils

    origin_w = view3d_utils.region_2d_to_origin_3d(region, rv3d, coord)
    direction_w = view3d_utils.region_2d_to_vector_3d(region, rv3d, coord)
    inv = plane.matrix_world.inverted()
    uv, _rest, origin, eu, ev, _flat = shapekeys.plane_frame(plane)
    hit = pokes_bake.ray_plane_hit(np.array(inv @ origin_w), np.array(inv.to_3x3() @ direction_w), origin, eu, ev)
    if hit is None:
        return None
    if photo_only:
        (u,), (y,) = pokes_bake.plane_to_pixels(hit[None], origin, eu, ev, 1, 1)  # 1x1 map: x = u, y = 1 - v
        lo, hi = uv.min(axis=0) - 1e-6, uv.max(axis=0) + 1e-6
        if not (lo[0] <= u <= hi[0] and lo[1] <= 1.0 - y <= hi[1]):
            return None
    return Vector(hit)


class DragSession:
    """One viewport drag: press on the photo, the arrow follows the mouse, release makes it a poke at ``frame``."""

    def __init__(self, plane, frame: float, kind: str = "drag"):
        self.plane, self.frame, self.kind = plane, frame, kind
        self.base = None
        self.empty = None

    @property
    def started(self) -> bool:
        return self.base is not None

    def press(self, region, rv3d, coord) -> bool:
        """Start at the photo point under ``coord``; False when the click misses the photo."""
        hit = region_to_plane(region, rv3d, self.plane, coord)
        if hit is None:
            return False
        self.base = hit
        self.empty = arrows.new_arrow(self.plane, hit, hit, "Poke")
        return True

    def move(self, region, rv3d, coord) -> None:
        hit = region_to_plane(region, rv3d, self.plane, coord, photo_only=False)
        if hit is not None and self.empty is not None:
            arrows.set_arrow(self.empty, self.base, hit)

    def release(self, region, rv3d, coord):
        """Finish: the arrow becomes a poke (returned). PokeError (and nothing left behind) for a mere click."""
        self.move(region, rv3d, coord)
        if self.empty.empty_display_size <= 1e-3 * max(self.plane.dimensions):
            self.cancel()
            raise pokes.PokeError("Drag to poke: press on the photo, drag in the direction of the push, release")
        pokes.make_poke(self.empty, self.frame, self.kind)
        return self.empty

    def cancel(self) -> None:
        if self.empty is not None:
            bpy.data.objects.remove(self.empty)
        self.empty = self.base = None


def play_from_here(context) -> bool:
    """Start playback (unless it is running) so the response shows at once. False when it cannot (headless)."""
    screen = getattr(context, "screen", None)
    if screen is None:
        return False
    if screen.is_animation_playing:
        return True
    try:
        bpy.ops.screen.animation_play()
    except RuntimeError as exc:  # no window that can play
        log.debug("playback not started: %s", exc)
        return False
    return True


def _status(context, text) -> None:
    workspace = getattr(context, "workspace", None)
    if workspace is not None:
        workspace.status_text_set(text)
    area = getattr(context, "area", None)
    if area is not None:
        area.tag_redraw()


def _simulate_and_report(op, context, plane) -> bool:
    try:
        warnings = pokes.simulate(plane, context.scene)
    except (pokes.PokeError, ValueError) as exc:
        op.report({"ERROR"}, str(exc))
        return False
    for warning in warnings:
        op.report({"WARNING"}, warning)
    return True


def drag_modal(op, context, event) -> set:
    """The drag operator's event handling; ``op.session`` is a :class:`DragSession`."""
    session = op.session
    coord = (event.mouse_region_x, event.mouse_region_y)
    region, rv3d = context.region, context.region_data
    if event.type in {"ESC", "RIGHTMOUSE"} and event.value == "PRESS":
        session.cancel()
        _status(context, None)
        return {"CANCELLED"}
    if event.type == "LEFTMOUSE" and event.value == "PRESS" and not session.started:
        if not session.press(region, rv3d, coord):
            op.report({"WARNING"}, "Press on the photo plane to poke it (Esc cancels)")
        return {"RUNNING_MODAL"}
    if event.type == "MOUSEMOVE" and session.started:
        session.move(region, rv3d, coord)
        return {"RUNNING_MODAL"}
    if event.type == "LEFTMOUSE" and event.value == "RELEASE" and session.started:
        _status(context, None)
        try:
            empty = session.release(region, rv3d, coord)
        except pokes.PokeError as exc:
            op.report({"WARNING"}, str(exc))
            return {"CANCELLED"}
        _simulate_and_report(op, context, session.plane)
        op.report({"INFO"}, f"Poke '{empty.name}' at frame {session.frame:g}")
        play_from_here(context)
        return {"FINISHED"}
    return {"PASS_THROUGH"} if event.type in _NAVIGATION else {"RUNNING_MODAL"}


class _PokeOperator(PlaneOperator):
    """Pokes act on the active baked plane, or on the active poke's plane."""

    find_plane = staticmethod(pokes.plane_for)


class IMAGEDYN_OT_poke_drag(bpy.types.Operator):
    """Poke the photo: press on the plane, drag and release. Adds a poke at the current frame, simulates and plays"""

    bl_idname = "imagedyn.poke_drag"
    bl_label = "Poke (Drag)"
    bl_options = {"REGISTER", "UNDO"}

    kind: pokes.kind_property()

    @classmethod
    def poll(cls, context):  # modal only: no execute, so not a PlaneOperator
        return pokes.plane_for(context) is not None

    def invoke(self, context, event):
        if context.area is None or context.area.type != "VIEW_3D" or context.region_data is None:
            self.report({"ERROR"}, "Start Poke (Drag) from a 3D Viewport (sidebar tab Image Dynamics > Pokes)")
            return {"CANCELLED"}
        self.session = DragSession(pokes.plane_for(context), context.scene.frame_current, self.kind)
        context.window_manager.modal_handler_add(self)
        _status(context, STATUS)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        return drag_modal(self, context, event)


class IMAGEDYN_OT_poke_add(_PokeOperator, bpy.types.Operator):
    """Add a poke (an arrow Empty on the photo plane) at the current frame and simulate; move, rotate, scale and
    retime it like any object"""

    bl_idname = "imagedyn.poke_add"
    bl_label = "Add Poke"

    u: arrows.across_property()
    v: arrows.up_property()
    angle: FloatProperty(name="Direction", default=0.0, subtype="ANGLE",
                         description="Direction of the push on the photo: 0 = to the right, 90 degrees = up")
    length: FloatProperty(name="Length", default=0.05, min=1e-4, soft_max=0.5,
                          description="Arrow length as a fraction of the photo's width: a drag moves the poked "
                                      "point this far (times Poke Strength)")
    kind: pokes.kind_property()

    def run(self, context, plane):
        pokes.load_volume(plane)  # PokeError: what to do, reported by PlaneOperator.execute
        base, tip = arrows.photo_arrow(plane, self.u, self.v, self.angle, self.length)
        empty = pokes.add_poke(plane, base, tip, context.scene.frame_current, self.kind)
        if not _simulate_and_report(self, context, plane):
            return {"FINISHED"}  # the poke is kept; the report says what to fix
        self.report({"INFO"}, f"Added poke '{empty.name}' at frame {context.scene.frame_current}")
        return {"FINISHED"}


class IMAGEDYN_OT_poke_simulate(_PokeOperator, bpy.types.Operator):
    """Simulate the plane's pokes over the scene's frame range (loop + pokes into the modal shape keys)"""

    bl_idname = "imagedyn.poke_simulate"
    bl_label = "Simulate Pokes"

    def run(self, context, plane):
        if not _simulate_and_report(self, context, plane):
            return {"CANCELLED"}
        scene = context.scene
        self.report({"INFO"}, f"Simulated {len(pokes.plane_pokes(plane))} pokes on '{plane.name}' over frames "
                              f"{scene.frame_start}-{scene.frame_end}")
        return {"FINISHED"}


class IMAGEDYN_OT_poke_clear(_PokeOperator, bpy.types.Operator):
    """Delete every poke Empty of the photo plane and go back to the loop alone"""

    bl_idname = "imagedyn.poke_clear"
    bl_label = "Remove Pokes"

    def run(self, context, plane):
        removed = pokes.remove_pokes(plane)
        context.view_layer.objects.active = plane
        if not _simulate_and_report(self, context, plane):
            return {"CANCELLED"}
        self.report({"INFO"}, f"Removed {removed} pokes from '{plane.name}'")
        return {"FINISHED"}


classes = (IMAGEDYN_OT_poke_drag, IMAGEDYN_OT_poke_add, IMAGEDYN_OT_poke_simulate, IMAGEDYN_OT_poke_clear)
