"""Operators (thin: read settings, call plane / bake, report what happened or what to do)."""
from __future__ import annotations

import logging

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import bake, compat, plane, shapekeys
from .core import spectral

log = logging.getLogger(__name__)

ANCHOR_GROUP = "IDyn_anchor"


def _mesh_poll(context) -> bool:
    obj = context.active_object
    return obj is not None and obj.type == "MESH" and obj.mode == "OBJECT"


def _columns_property():
    return IntProperty(name="Grid Columns", default=0, min=0, max=1024, soft_max=256,
                       description="Vertices across the plane (0 = the scene's Grid Columns setting)")


class IMAGEDYN_OT_create_plane(bpy.types.Operator, ImportHelper):
    """Create a photo plane: a subdivided grid with the photo's aspect ratio, UVs and an emissive photo material"""

    bl_idname = "imagedyn.create_plane"
    bl_label = "Create Photo Plane"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.png;*.jpg;*.jpeg;*.tif;*.tiff;*.exr;*.webp;*.bmp", options={"HIDDEN"},
                                description="File types shown in the file browser")
    columns: _columns_property()

    def execute(self, context):
        settings = context.scene.imagedyn
        try:
            image = plane.load_image(self.filepath)
            obj = plane.create_plane(context, image, self.columns or settings.grid_columns)
        except plane.PlaneError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if settings.use_standard_view:
            compat.set_view_transform(context.scene, "Standard")
        self.report({"INFO"}, f"Created photo plane '{obj.name}' ({len(obj.data.vertices)} vertices)")
        return {"FINISHED"}


class IMAGEDYN_OT_plane_from_active(bpy.types.Operator):
    """Turn the active image-textured plane (e.g. from Import Images as Planes) into a subdivided photo grid"""

    bl_idname = "imagedyn.plane_from_active"
    bl_label = "Convert Active Plane"
    bl_options = {"REGISTER", "UNDO"}

    columns: _columns_property()

    @classmethod
    def poll(cls, context):
        return _mesh_poll(context)

    def execute(self, context):
        obj = context.active_object
        try:
            plane.regrid_plane(obj, self.columns or context.scene.imagedyn.grid_columns)
        except plane.PlaneError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if context.scene.imagedyn.use_standard_view:
            compat.set_view_transform(context.scene, "Standard")
        self.report({"INFO"}, f"'{obj.name}' is now a {len(obj.data.vertices)}-vertex photo grid")
        return {"FINISHED"}


def _run_bake(op, context, obj, volume=None) -> set:
    settings = context.scene.imagedyn
    request = bake.BakeRequest(volume_path=obj.imagedyn.volume_path, anchor_group=obj.imagedyn.anchor_group,
                               set_frame_range=settings.set_frame_range,
                               include_closing_frame=settings.include_closing_frame)
    try:
        result = bake.bake(context, obj, request, volume)
    except spectral.SpectralVolumeError as exc:
        op.report({"ERROR"}, bake.volume_error_message(exc))
        return {"CANCELLED"}
    except shapekeys.BakeError as exc:
        op.report({"ERROR"}, str(exc))
        return {"CANCELLED"}
    for warning in result.warnings:
        op.report({"WARNING"}, warning)
    op.report({"INFO"}, f"Baked {2 * result.bands} modal shape keys on '{obj.name}', loop of "
                        f"{result.loop_frames} frames")
    return {"FINISHED"}


class IMAGEDYN_OT_load_volume(bpy.types.Operator, ImportHelper):
    """Load a spectral volume (.npz) for the active photo plane and bake it"""

    bl_idname = "imagedyn.load_volume"
    bl_label = "Load Spectral Volume"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"}, description="File types shown")
    bake_now: BoolProperty(name="Bake", default=True,
                           description="Bake the volume as modal shape keys right after loading it")

    @classmethod
    def poll(cls, context):
        return _mesh_poll(context)

    def execute(self, context):
        obj = context.active_object
        try:
            volume = bake.read_volume(self.filepath)
        except spectral.SpectralVolumeError as exc:
            self.report({"ERROR"}, bake.volume_error_message(exc))
            return {"CANCELLED"}
        bake.apply_volume_settings(obj, context.scene, volume, self.filepath)
        if self.bake_now:
            return _run_bake(self, context, obj, volume)
        warning = bake.aspect_warning(volume, obj)
        if warning:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Loaded {bake.summary(volume)}")
        return {"FINISHED"}


class IMAGEDYN_OT_bake(bpy.types.Operator):
    """Bake the plane's spectral volume as modal shape keys (Re/Im per band) with a seamless loop animation"""

    bl_idname = "imagedyn.bake"
    bl_label = "Bake Motion"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _mesh_poll(context)

    def execute(self, context):
        obj = context.active_object
        if not obj.imagedyn.volume_path:
            self.report({"ERROR"}, "No spectral volume loaded: use 'Load Spectral Volume' first")
            return {"CANCELLED"}
        return _run_bake(self, context, obj)


class IMAGEDYN_OT_clear(bpy.types.Operator):
    """Remove the modal shape keys and loop animation made by Image Dynamics (your own shape keys are kept)"""

    bl_idname = "imagedyn.clear"
    bl_label = "Clear Motion"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _mesh_poll(context)

    def execute(self, context):
        removed = bake.clear(context.active_object)
        self.report({"INFO"}, f"Removed {removed} Image Dynamics shape keys")
        return {"FINISHED"}


class IMAGEDYN_OT_add_anchor(bpy.types.Operator):
    """Add an anchor vertex group (all weights 1) and use it: paint weight 0 where the photo must stay still"""

    bl_idname = "imagedyn.add_anchor"
    bl_label = "Add Anchor Group"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _mesh_poll(context)

    def execute(self, context):
        obj = context.active_object
        group = obj.vertex_groups.get(ANCHOR_GROUP) or obj.vertex_groups.new(name=ANCHOR_GROUP)
        group.add(list(range(len(obj.data.vertices))), 1.0, "REPLACE")
        obj.vertex_groups.active_index = group.index
        obj.imagedyn.anchor_group = group.name
        self.report({"INFO"}, f"Vertex group '{group.name}' pins the motion: paint 0 in Weight Paint mode where the "
                              "photo must stay still")
        return {"FINISHED"}


class IMAGEDYN_OT_standard_view(bpy.types.Operator):
    """Set the scene's view transform to Standard so emissive photo planes render with the photo's colours"""

    bl_idname = "imagedyn.standard_view"
    bl_label = "Use Standard View Transform"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        if not compat.set_view_transform(context.scene, "Standard"):
            self.report({"ERROR"}, "This Blender has no 'Standard' view transform: set it in Render Properties > "
                                   "Color Management")
            return {"CANCELLED"}
        self.report({"INFO"}, "View transform set to Standard")
        return {"FINISHED"}


classes = (
    IMAGEDYN_OT_create_plane,
    IMAGEDYN_OT_plane_from_active,
    IMAGEDYN_OT_load_volume,
    IMAGEDYN_OT_bake,
    IMAGEDYN_OT_clear,
    IMAGEDYN_OT_add_anchor,
    IMAGEDYN_OT_standard_view,
)
