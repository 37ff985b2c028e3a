"""Operators that steer the motion: Paint Motion (the motion brush), Remove Brush, Add Wind Arrow, Remove Wind
Arrows. The data layers are brush.py and wind.py; live.py re-bakes and refreshes after edits."""
from __future__ import annotations

import logging
import time

import bpy
from bpy.props import FloatProperty

from . import arrows, brush, live, plane, shapekeys, wind
from .ops import PlaneOperator, active_mesh

log = logging.getLogger(__name__)


def photo_plane(context):
    """The active mesh with a photo, in Object or Weight Paint mode (where the brush is painted)."""
    obj = active_mesh(context, modes=("OBJECT", "WEIGHT_PAINT"))
    return obj if plane.find_image(obj) is not None else None


def wind_plane(context):
    """The active baked plane, or the active wind arrow's plane."""
    obj = context.active_object
    if wind.is_wind(obj):
        obj = obj.parent
    return obj if shapekeys.has_modal_keys(obj) and obj.mode == "OBJECT" else None


class IMAGEDYN_OT_paint_motion(PlaneOperator, bpy.types.Operator):
    """Paint where the photo moves: makes the vertex group IDyn_moves (empty = the model decides) and enters Weight
    Paint mode. Weight 1 = moves, 0 = still; Animate Photo then predicts motion only where you painted"""

    bl_idname = "imagedyn.paint_motion"
    bl_label = "Paint Motion"
    find_plane = staticmethod(photo_plane)

    def run(self, context, obj):
        brush.ensure_group(obj)
        if obj.mode != "WEIGHT_PAINT":
            bpy.ops.object.mode_set(mode="WEIGHT_PAINT")
        settings = getattr(context.tool_settings, "unified_paint_settings", None)
        if settings is not None and hasattr(settings, "weight"):
            settings.weight = 1.0
        self.report({"INFO"}, f"Paint weight 1 where the photo moves (unpainted = still) on '{brush.GROUP}', then "
                              "press Animate Photo")
        return {"FINISHED"}


class IMAGEDYN_OT_remove_brush(PlaneOperator, bpy.types.Operator):
    """Remove the motion brush (the vertex group IDyn_moves): Animate Photo lets the model decide what moves"""

    bl_idname = "imagedyn.remove_brush"
    bl_label = "Remove Motion Brush"
    find_plane = staticmethod(photo_plane)

    def run(self, context, obj):
        if not brush.remove_group(obj):
            self.report({"INFO"}, f"'{obj.name}' has no motion brush")
            return {"CANCELLED"}
        live.update_plane(obj)
        self.report({"INFO"}, "Motion brush removed: the model decides what moves")
        return {"FINISHED"}


class IMAGEDYN_OT_wind_add(PlaneOperator, bpy.types.Operator):
    """Add a wind arrow (an Empty on the photo plane): the motion near it sways along its direction, out to its
    length. Move, rotate and scale it like any object; the plane re-bakes at once, no backend needed"""

    bl_idname = "imagedyn.wind_add"
    bl_label = "Add Wind Arrow"
    find_plane = staticmethod(wind_plane)

    u: arrows.across_property()
    v: arrows.up_property()
    angle: FloatProperty(name="Direction", default=0.0, subtype="ANGLE",
                         description="Direction the motion turns to: 0 = left-right, 90 degrees = up-down")
    length: FloatProperty(name="Reach", default=0.3, min=1e-3, max=4.0, soft_max=1.0,
                          description="Arrow length as a fraction of the photo's width: the motion turns fully within "
                                      "half of it and not at all beyond it")
    strength: FloatProperty(name="Strength", default=1.0, min=0.0, max=1.0,
                            description="How far the motion near the arrow turns to its direction")

    def run(self, context, obj):
        base, tip = arrows.photo_arrow(obj, self.u, self.v, self.angle, self.length)
        empty = wind.add_wind(obj, base, tip, self.strength)
        t0 = time.perf_counter()
        live.update_plane(obj)
        error = wind.last_error(obj)
        if error:
            self.report({"ERROR"}, f"Wind arrow '{empty.name}' added but the plane was not re-baked: {error}")
            return {"FINISHED"}
        self.report({"INFO"}, f"Wind arrow '{empty.name}': re-baked '{obj.name}' in {time.perf_counter() - t0:.2f} s "
                              "(move, rotate or scale the arrow to steer it)")
        return {"FINISHED"}


class IMAGEDYN_OT_wind_clear(PlaneOperator, bpy.types.Operator):
    """Delete every wind arrow of the photo plane and re-bake it with the volume's own directions"""

    bl_idname = "imagedyn.wind_clear"
    bl_label = "Remove Wind Arrows"
    find_plane = staticmethod(wind_plane)

    def run(self, context, obj):
        removed = wind.remove_winds(obj)
        context.view_layer.objects.active = obj
        live.update_plane(obj)
        self.report({"INFO"}, f"Removed {removed} wind arrows from '{obj.name}'")
        return {"FINISHED"}


classes = (IMAGEDYN_OT_paint_motion, IMAGEDYN_OT_remove_brush, IMAGEDYN_OT_wind_add, IMAGEDYN_OT_wind_clear)
