"""Sidebar panels in the 3D viewport (tab "Image Dynamics")."""
from __future__ import annotations

import bpy

from . import pokes, shapekeys


class _SidebarPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Image Dynamics"


def _prop_column(layout, data, *names):
    """An aligned column of ``data``'s properties ``names``; returns it."""
    col = layout.column(align=True)
    for name in names:
        col.prop(data, name)
    return col


class IMAGEDYN_PT_plane(_SidebarPanel, bpy.types.Panel):
    bl_label = "Photo Plane"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.imagedyn
        layout.operator("imagedyn.create_plane", icon="IMAGE_DATA")
        layout.operator("imagedyn.plane_from_active", icon="MOD_SUBSURF")
        _prop_column(layout, settings, "grid_columns", "use_standard_view")
        if context.scene.view_settings.view_transform != "Standard":
            layout.operator("imagedyn.standard_view", icon="COLOR")


class IMAGEDYN_PT_motion(_SidebarPanel, bpy.types.Panel):
    bl_label = "Motion"

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "MESH"

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        props = obj.imagedyn
        layout.operator("imagedyn.load_volume", icon="FILE_FOLDER")
        if props.volume_summary:
            layout.label(text=props.volume_summary, icon="INFO")
        row = layout.row(align=True)
        row.operator("imagedyn.bake", icon="SHAPEKEY_DATA")
        row.operator("imagedyn.clear", icon="TRASH", text="Clear")
        settings = context.scene.imagedyn
        col = _prop_column(layout, settings, "set_frame_range")
        sub = col.row()
        sub.enabled = settings.set_frame_range
        sub.prop(settings, "include_closing_frame")


class IMAGEDYN_PT_loop(_SidebarPanel, bpy.types.Panel):
    bl_label = "Loop"
    bl_parent_id = "IMAGEDYN_PT_motion"

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        props = obj.imagedyn
        layout.enabled = shapekeys.has_modal_keys(obj)
        _prop_column(layout, props, "amplitude", "speed")
        _prop_column(layout, props, "loop_frames", "loop_start", "start_offset")
        row = layout.row(align=True)
        row.prop_search(props, "anchor_group", obj, "vertex_groups", text="Anchor")
        row.operator("imagedyn.add_anchor", text="", icon="ADD")
        layout.prop(props, "depth_from_motion")


class IMAGEDYN_PT_pokes(_SidebarPanel, bpy.types.Panel):
    """Shown for a baked photo plane and for its poke Empties, so pokes can be edited and simulated from either."""

    bl_label = "Pokes"

    @classmethod
    def poll(cls, context):
        return pokes.plane_for(context) is not None

    def draw(self, context):
        layout = self.layout
        plane = pokes.plane_for(context)
        if plane is None:
            layout.label(text="Select a baked photo plane or one of its pokes")
            return
        props = plane.imagedyn
        row = layout.row(align=True)
        row.operator("imagedyn.poke_drag", icon="EMPTY_SINGLE_ARROW")
        row.operator("imagedyn.poke_add", text="", icon="ADD")
        _prop_column(layout, props, "loop_strength", "poke_strength")
        _prop_column(layout, props, "poke_alpha", "poke_beta", "poke_floor")
        row = layout.row(align=True)
        row.prop(props, "auto_simulate")
        row.operator("imagedyn.poke_simulate", icon="FILE_REFRESH")
        row.operator("imagedyn.poke_clear", text="", icon="TRASH")
        count = len(pokes.plane_pokes(plane))
        layout.label(text=f"{count} poke{'' if count == 1 else 's'} on '{plane.name}'", icon="INFO")
        error = pokes.last_error(plane)
        if error:
            layout.label(text=error, icon="ERROR")
        obj = context.active_object
        if pokes.is_poke(obj):
            box = layout.box()
            box.label(text=f"Poke '{obj.name}'", icon="EMPTY_SINGLE_ARROW")
            settings = obj.imagedyn_poke
            box.prop(settings, "enabled")
            box.prop(settings, "kind")
            box.prop(settings, "trigger")
            keys = pokes.trigger_keys(obj)
            box.label(text="Fires at frame " + ", ".join(f"{f:g}" for f, _v in keys) if keys
                      else "No trigger key: keyframe Trigger (I) at the poke's frame")


classes = (IMAGEDYN_PT_plane, IMAGEDYN_PT_motion, IMAGEDYN_PT_loop, IMAGEDYN_PT_pokes)
