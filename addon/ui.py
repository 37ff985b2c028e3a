"""Sidebar panels in the 3D viewport (tab "Image Dynamics")."""
from __future__ import annotations

import bpy

from . import brush, jobs, neural_ops, pokes, shapekeys, wind


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
        draw_animate(layout, obj)
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
        if shapekeys.has_modal_keys(obj):
            draw_neural(layout, obj)


def _progress(layout, factor: float, text: str) -> None:
    if hasattr(layout, "progress"):  # UILayout.progress: Blender 4.0+
        layout.progress(factor=factor, text=text, type="BAR")
    else:
        layout.label(text=f"{text}", icon="TIME")


def _draw_outcome(layout, job) -> None:
    """The last job's message below its button (labels do not wrap: split into lines)."""
    if job is None or not job.message:
        return
    icon = {"failed": "ERROR", "done": "CHECKMARK"}.get(job.state, "INFO")
    col = layout.column(align=True)
    for i, line in enumerate(jobs.wrap(job.message, 48)):
        col.label(text=line, icon=icon if i == 0 else "BLANK1")


def draw_animate(layout, obj) -> None:
    """Animate Photo, or the running job's progress bar and Cancel; the last job's outcome below."""
    job = jobs.job_for(obj.name)
    if job is not None and job.active:
        row = layout.row(align=True)
        _progress(row, job.progress, job.text)
        op = row.operator("imagedyn.cancel_animate", text="", icon="CANCEL")
        op.object_name = obj.name
        return
    layout.operator("imagedyn.animate_photo", icon="PLAY")
    _draw_outcome(layout, job)


def draw_neural(layout, obj) -> None:
    """The Neural Frames rows of the Motion panel: Render (or progress + Cancel), Use Mesh Warp, last outcome."""
    job = jobs.job_for(neural_ops.job_key(obj))
    if job is not None and job.active:
        row = layout.row(align=True)
        _progress(row, job.progress, f"Neural frames: {job.text}")
        row.operator("imagedyn.cancel_neural", text="", icon="CANCEL")
        return
    row = layout.row(align=True)
    row.operator("imagedyn.render_neural", icon="RENDER_ANIMATION")
    if neural_ops.shows_neural_frames(obj):
        row.operator("imagedyn.neural_to_compositor", text="", icon="NODE_COMPOSITING")
        row.operator("imagedyn.use_mesh_warp", text="", icon="MOD_MESHDEFORM")
    _draw_outcome(layout, job)


def draw_status_bar(self, context) -> None:
    """Appended to the status bar: one progress bar (and cancel button) per running job."""
    for job in jobs.active_jobs():
        row = self.layout.row(align=True)
        _progress(row, job.progress, f"{job.label} '{job.key}': {job.text}")
        op = row.operator("imagedyn.cancel_animate", text="", icon="CANCEL")
        op.object_name = job.key


class IMAGEDYN_PT_animate(_SidebarPanel, bpy.types.Panel):
    bl_label = "Animate Settings"
    bl_parent_id = "IMAGEDYN_PT_motion"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        props = context.active_object.imagedyn
        _prop_column(self.layout, props, "animate_steps", "animate_seed")
        _prop_column(self.layout, props, "animate_guidance", "animate_loop")


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
        layout.prop(props, "depth_from_motion")


class IMAGEDYN_PT_steer(_SidebarPanel, bpy.types.Panel):
    """Where it moves (motion brush, Anchor), which way (wind arrows), the border (Pin Edges), and Show Motion."""

    bl_label = "Steer the Motion"
    bl_parent_id = "IMAGEDYN_PT_motion"

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        props = obj.imagedyn
        baked = shapekeys.has_modal_keys(obj)
        col = layout.column(align=True)
        row = col.row(align=True)
        row.operator("imagedyn.paint_motion", icon="BRUSH_DATA")
        if brush.GROUP in obj.vertex_groups:
            row.operator("imagedyn.remove_brush", text="", icon="X")
        col.label(text="Brush: what the model animates (before Animate Photo)", icon="INFO")
        col = layout.column(align=True)
        row = col.row(align=True)
        row.prop_search(props, "anchor_group", obj, "vertex_groups", text="Anchor")
        row.operator("imagedyn.add_anchor", text="", icon="ADD")
        col.label(text="Anchor: holds parts still in Blender, any motion", icon="INFO")
        col = layout.column(align=True)
        col.enabled = baked
        row = col.row(align=True)
        row.operator("imagedyn.wind_add", icon="FORCE_WIND")
        count = len(wind.plane_winds(obj))
        if count:
            row.operator("imagedyn.wind_clear", text="", icon="TRASH")
            col.label(text=f"{count} wind arrow{'' if count == 1 else 's'}: move / rotate / scale to steer",
                      icon="INFO")
        error = wind.last_error(obj)
        if error:
            for i, line in enumerate(jobs.wrap(error, 48)):
                layout.label(text=line, icon="ERROR" if i == 0 else "BLANK1")
        row = layout.row(align=True)
        row.prop(props, "pin_edges")
        row.prop(props, "show_motion", toggle=True, icon="SHADING_RENDERED")
        if props.show_motion and props.motion_peak > 0:
            layout.label(text=f"Peak motion {100 * props.motion_peak:.2f}% of the photo's height")


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


class IMAGEDYN_PT_wind(_SidebarPanel, bpy.types.Panel):
    """The active wind arrow's settings (the Motion panels belong to the plane)."""

    bl_label = "Wind Arrow"

    @classmethod
    def poll(cls, context):
        return wind.is_wind(context.active_object)

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        settings = obj.imagedyn_wind
        layout.label(text=f"'{obj.name}' on '{obj.parent.name if obj.parent else '?'}'", icon="FORCE_WIND")
        layout.prop(settings, "enabled")
        layout.prop(settings, "strength", slider=True)
        layout.label(text="G moves, R turns, S sets its reach", icon="INFO")
        error = wind.last_error(obj.parent) if obj.parent is not None else ""
        for i, line in enumerate(jobs.wrap(error, 48)):
            layout.label(text=line, icon="ERROR" if i == 0 else "BLANK1")


classes = (IMAGEDYN_PT_plane, IMAGEDYN_PT_motion, IMAGEDYN_PT_animate, IMAGEDYN_PT_steer, IMAGEDYN_PT_loop,
           IMAGEDYN_PT_pokes, IMAGEDYN_PT_wind)


def register_status_bar() -> None:
    bpy.types.STATUSBAR_HT_header.append(draw_status_bar)


def unregister_status_bar() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_status_bar)
