"""Operators (thin: read settings, call plane / bake, report what happened or what to do).

:class:`PlaneOperator` is the base of the operators that act on one photo plane (here and in poke_ops.py): it
finds the plane for ``poll`` and ``execute``, and turns the add-on's user errors into an ERROR report.
"""
from __future__ import annotations

import logging

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import bake, compat, plane, pokes, shapekeys, volumes
from .core import spectral

log = logging.getLogger(__name__)

ANCHOR_GROUP = "IDyn_anchor"
USER_ERRORS = (plane.PlaneError, shapekeys.BakeError, spectral.SpectralVolumeError, pokes.PokeError)


def active_mesh(context, modes=("OBJECT",)):
    """The active object when it is a mesh in one of ``modes`` (Object Mode), else None."""
    obj = context.active_object
    return obj if obj is not None and obj.type == "MESH" and obj.mode in modes else None


def report_error(op, exc: Exception) -> set:
    """Report one of :data:`USER_ERRORS` on ``op`` (its message says what to do) and cancel."""
    if isinstance(exc, spectral.SpectralVolumeError):
        op.report({"ERROR"}, volumes.volume_error_message(exc))
    else:
        op.report({"ERROR"}, str(exc))
    return {"CANCELLED"}


class PlaneOperator:
    """Mixin of the operators that act on one photo plane: available while :meth:`find_plane` finds one;
    ``execute`` calls ``run(context, plane)`` and reports a user error instead of raising it."""

    bl_options = {"REGISTER", "UNDO"}
    find_plane = staticmethod(active_mesh)

    @classmethod
    def poll(cls, context):
        return cls.find_plane(context) is not None

    def execute(self, context):
        try:
            return self.run(context, self.find_plane(context))
        except USER_ERRORS as exc:
            return report_error(self, exc)

    def run(self, context, obj) -> set:
        raise NotImplementedError


def _columns_property():
    return IntProperty(name="Grid Columns", default=0, min=0, max=1024, soft_max=256,
                       description="Vertices across the plane (0 = the scene's Grid Columns setting)")


def _apply_view_setting(context) -> None:
    """A new photo grid: switch to the Standard view transform when the scene's setting asks for it."""
    if context.scene.imagedyn.use_standard_view:
        compat.set_view_transform(context.scene, "Standard")


class IMAGEDYN_OT_create_plane(bpy.types.Operator, ImportHelper):
    """Create a photo plane: a subdivided grid with the photo's aspect ratio, UVs and an emissive photo material"""

    bl_idname = "imagedyn.create_plane"
    bl_label = "Create Photo Plane"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.png;*.jpg;*.jpeg;*.tif;*.tiff;*.exr;*.webp;*.bmp", options={"HIDDEN"},
                                description="File types shown in the file browser")
    columns: _columns_property()

    def execute(self, context):
        try:
            image = plane.load_image(self.filepath)
            obj = plane.create_plane(context, image, self.columns or context.scene.imagedyn.grid_columns)
        except plane.PlaneError as exc:
            return report_error(self, exc)
        _apply_view_setting(context)
        self.report({"INFO"}, f"Created photo plane '{obj.name}' ({len(obj.data.vertices)} vertices)")
        return {"FINISHED"}


class IMAGEDYN_OT_plane_from_active(PlaneOperator, bpy.types.Operator):
    """Turn the active image-textured plane (e.g. from Import Images as Planes) into a subdivided photo grid"""

    bl_idname = "imagedyn.plane_from_active"
    bl_label = "Convert Active Plane"

    columns: _columns_property()

    def run(self, context, obj):
        plane.regrid_plane(obj, self.columns or context.scene.imagedyn.grid_columns)
        _apply_view_setting(context)
        self.report({"INFO"}, f"'{obj.name}' is now a {len(obj.data.vertices)}-vertex photo grid")
        return {"FINISHED"}


def _run_bake(op, context, obj, volume=None) -> set:
    """Bake ``obj``'s volume and report; SpectralVolumeError / BakeError go to :meth:`PlaneOperator.execute`."""
    settings = context.scene.imagedyn
    request = bake.BakeRequest(volume_path=obj.imagedyn.volume_path, anchor_group=obj.imagedyn.anchor_group,
                               set_frame_range=settings.set_frame_range,
                               include_closing_frame=settings.include_closing_frame)
    result = bake.bake(context, obj, request, volume)
    for warning in result.warnings:
        op.report({"WARNING"}, warning)
    op.report({"INFO"}, f"Baked {2 * result.bands} modal shape keys on '{obj.name}', loop of "
                        f"{result.loop_frames} frames")
    return {"FINISHED"}


class IMAGEDYN_OT_load_volume(PlaneOperator, bpy.types.Operator, ImportHelper):
    """Load a spectral volume (.npz) for the active photo plane and bake it"""

    bl_idname = "imagedyn.load_volume"
    bl_label = "Load Spectral Volume"

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"}, description="File types shown")
    bake_now: BoolProperty(name="Bake", default=True,
                           description="Bake the volume as modal shape keys right after loading it")

    def run(self, context, obj):
        volume = volumes.read_volume(self.filepath)
        bake.apply_volume_settings(obj, context.scene, volume, self.filepath)
        if self.bake_now:
            return _run_bake(self, context, obj, volume)
        warning = bake.aspect_warning(volume, obj)
        if warning:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Loaded {volumes.summary(volume)}")
        return {"FINISHED"}


class IMAGEDYN_OT_bake(PlaneOperator, bpy.types.Operator):
    """Bake the plane's spectral volume as modal shape keys (Re/Im per band) with a seamless loop animation"""

    bl_idname = "imagedyn.bake"
    bl_label = "Bake Motion"

    def run(self, context, obj):
        if not obj.imagedyn.volume_path:
            self.report({"ERROR"}, "No spectral volume loaded: use 'Load Spectral Volume' first")
            return {"CANCELLED"}
        return _run_bake(self, context, obj)


class IMAGEDYN_OT_clear(PlaneOperator, bpy.types.Operator):
    """Remove the modal shape keys and loop animation made by Image Dynamics (your own shape keys are kept)"""

    bl_idname = "imagedyn.clear"
    bl_label = "Clear Motion"

    def run(self, context, obj):
        removed = bake.clear(obj)
        self.report({"INFO"}, f"Removed {removed} Image Dynamics shape keys")
        return {"FINISHED"}


class IMAGEDYN_OT_add_anchor(PlaneOperator, bpy.types.Operator):
    """Add an anchor vertex group (all weights 1) and use it: paint weight 0 where the photo must stay still"""

    bl_idname = "imagedyn.add_anchor"
    bl_label = "Add Anchor Group"

    def run(self, context, obj):
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
