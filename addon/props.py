"""Properties: per photo plane (``Object.imagedyn``) and per scene (``Scene.imagedyn``).

The loop properties are live: changing one rewrites the loop keyframes at once (about a millisecond for 32 keys).
So are the pokes' settings: on a plane with poke Empties, loop + pokes are re-simulated (addon/pokes.py).
"""
from __future__ import annotations

import logging

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import animation, live, overlay, pokes, shapekeys
from .core import mesh as core_mesh

log = logging.getLogger(__name__)


def _update_loop(self, context):
    obj = self.id_data
    if not shapekeys.has_modal_keys(obj):
        return
    length = pokes.write_motion(obj)
    overlay.refresh(obj)  # Amplitude changes what Show Motion shows
    scene = context.scene if context is not None else None
    # A plane with pokes is simulated over the scene's range: never shrink that range to one loop.
    if scene is not None and scene.imagedyn.set_frame_range and length and not pokes.has_pokes(obj):
        animation.set_scene_range(scene, self.loop_start, length, scene.imagedyn.include_closing_frame)


def _update_motion(self, context):
    """Loop strength and poke settings: rewrite loop (+ pokes) keyframes, leave the frame range alone."""
    if shapekeys.has_modal_keys(self.id_data):
        pokes.write_motion(self.id_data)
        overlay.refresh(self.id_data)


def _update_depth(self, context):
    """Depth from Motion: rewrite (or remove, at 0) the depth key of a baked plane."""
    obj = self.id_data
    try:
        shapekeys.write_depth_key(obj, self.depth_from_motion)
    except shapekeys.BakeError as exc:  # an update callback cannot report: log what to do
        log.warning("Depth from Motion not applied to '%s': %s", obj.name, exc)


def _update_anchor(self, context):
    obj = self.id_data
    group = self.anchor_group if self.anchor_group in obj.vertex_groups else ""
    shapekeys.set_anchor_group(obj, group)
    overlay.refresh(obj)


def _update_pin(self, context):
    """Pin Edges: re-bake the keys in place (problems are logged and shown in the panel)."""
    live.update_plane(self.id_data, rebake=True)


def _update_show_motion(self, context):
    obj = self.id_data
    if obj.type != "MESH":
        return
    if self.show_motion:
        overlay.show(obj)
    else:
        overlay.hide(obj)


# Blender 4.5+ warns when a path property holds a '//'-relative path unless it declares support (4.2 lacks the flag)
_RELATIVE_PATH = {"PATH_SUPPORTS_BLEND_RELATIVE"} if bpy.app.version >= (4, 5, 0) else set()


class IMAGEDYN_PG_object(bpy.types.PropertyGroup):
    volume_path: StringProperty(
        name="Spectral Volume", subtype="FILE_PATH", options=_RELATIVE_PATH,
        description="Spectral volume (.npz) whose motion is baked onto this plane, e.g. from "
                    "'image-dynamics extract clip.mp4 -o v.npz' or from the backend")
    volume_summary: StringProperty(
        name="Volume", description="Bands, loop length, frame rate and map size of the loaded spectral volume")
    volume_num_frames: IntProperty(
        name="Volume Frames", default=150, min=2,
        description="Loop length of the loaded spectral volume, in its own frames")
    volume_fps: FloatProperty(
        name="Volume FPS", default=30.0, min=0.001,
        description="Frame rate of the loaded spectral volume")
    amplitude: FloatProperty(
        name="Amplitude", default=1.0, min=0.0, max=core_mesh.MAX_KEY_VALUE, soft_max=5.0, update=_update_loop,
        description="Motion scale: below 1 calms the motion down, above 1 magnifies it (Blender limits shape-key "
                    "values to 10)")
    speed: FloatProperty(
        name="Speed", default=1.0, min=0.05, max=20.0, soft_min=0.1, soft_max=4.0, update=_update_loop,
        description="Playback speed of the motion: 0.5 is slow motion (the loop lasts twice as many frames). The "
                    "loop length is rounded to whole frames so the loop stays seamless")
    loop_frames: IntProperty(
        name="Loop Length", default=150, min=2, max=100000, update=_update_loop,
        description="Frames in one loop at speed 1 (set from the volume's duration and the scene frame rate when "
                    "a volume is loaded)")
    loop_start: IntProperty(
        name="First Frame", default=1, update=_update_loop,
        description="Scene frame where the loop starts (the scene range is set to one loop from here)")
    start_offset: IntProperty(
        name="Start Offset", default=0, update=_update_loop,
        description="Loop frame shown at the first frame: shifts the motion in time without changing the loop")
    loop_strength: FloatProperty(
        name="Loop Strength", default=1.0, min=0.0, max=1.0, update=_update_motion,
        description="How much of the ambient loop plays under the pokes (times Amplitude): 1 = the full loop, "
                    "0 = the photo is still until poked")
    poke_strength: FloatProperty(
        name="Poke Strength", default=1.0, min=0.0, soft_max=5.0, update=_update_motion,
        description="Scales every poke: at 1 a drag moves the poked point by the arrow's length when it is "
                    "released")
    poke_alpha: FloatProperty(
        name="Damping", default=0.4, min=0.0, soft_max=5.0, update=_update_motion,
        description="Damping alpha of every band, in 1/s (damping = alpha + beta * omega^2): higher = pokes die "
                    "out sooner. The paper uses 0.4")
    poke_beta: FloatProperty(
        name="High-Frequency Damping", default=0.08, min=0.0, soft_max=1.0, precision=3, update=_update_motion,
        description="Damping beta, in s (damping = alpha + beta * omega^2): higher = fast jitter dies out "
                    "sooner than slow sway. The paper uses 0.08")
    poke_floor: FloatProperty(
        name="Still-Region Floor", default=0.3, min=0.01, max=1.0, update=_update_motion,
        description="Pokes on nearly still regions (sky, rock) respond less: a region moving less than this "
                    "fraction of the photo's strong motion is treated as stiff")
    auto_simulate: BoolProperty(
        name="Auto Simulate", default=True,
        description="Re-simulate the pokes shortly after a poke Empty is moved, retimed, added or deleted, or the "
                    "scene's frame range changes. Off: press Simulate Pokes")
    depth_from_motion: FloatProperty(
        name="Depth from Motion", default=0.0, min=0.0, soft_max=0.05, step=0.1, precision=4, subtype="DISTANCE",
        update=_update_depth,
        description="Lift moving parts toward the viewer (along the plane's normal) by up to this distance, in "
                    "proportion to how much they move, so that where a moving part swings over a still part it is "
                    "drawn in front. About 0.002 for a plane 1 unit tall; 0 = off (the plane stays flat)")
    animate_steps: IntProperty(
        name="Steps", default=25, min=1, max=500, soft_max=100,
        description="Denoising steps of the motion prediction (Animate Photo): more = slower, a little finer")
    animate_seed: IntProperty(
        name="Seed", default=0, min=0,
        description="Random seed of the motion prediction: another seed gives another plausible motion")
    animate_guidance: FloatProperty(
        name="Guidance", default=1.5, min=0.0, max=20.0, soft_max=5.0,
        description="How strongly the prediction follows the photo (classifier-free guidance; 1 = plain)")
    animate_loop: FloatProperty(
        name="Loop Guidance", default=0.0, min=0.0, max=10.0, soft_max=2.0,
        description="Pushes the predicted motion toward a seamless loop (0 = off; the baked loop is always "
                    "seamless, this makes its motion more natural across the seam)")
    anchor_group: StringProperty(
        name="Anchor", update=_update_anchor,
        description="Vertex group that holds regions still in Blender, whatever the volume says: weight 0 stays "
                    "still, 1 moves fully (paint it in Weight Paint mode); empty = everything moves")
    pin_edges: BoolProperty(
        name="Pin Edges", default=True, update=_update_pin,
        description="Keep the plane's border on the photo's edges: border vertices only slide along their edge, "
                    "corners stay put, and the motion returns to full within a few rows, so a camera framed on the "
                    "backdrop never sees past it. Off: the border moves with the photo")
    show_motion: BoolProperty(
        name="Show Motion", default=False, update=_update_show_motion,
        description="Heat overlay of how much the photo moves (blue = still, red = 2% of the photo's height or "
                    "more), in the viewport only: Material Preview / Rendered, or Solid with Color: Attribute. "
                    "Renders never show it")
    motion_peak: FloatProperty(
        name="Peak Motion", default=0.0, min=0.0, subtype="FACTOR",
        description="Largest RMS motion of a vertex over the loop as a fraction of the photo's height (set by "
                    "Show Motion)")


class IMAGEDYN_PG_scene(bpy.types.PropertyGroup):
    grid_columns: IntProperty(
        name="Grid Columns", default=core_mesh.WORKING_WIDTH // core_mesh.DEFAULT_PIXELS_PER_VERTEX,
        min=2, max=1024, soft_max=core_mesh.WORKING_WIDTH,
        description="Vertices across a new photo plane (rows follow the photo's aspect). 128 = one vertex per 2 "
                    "pixels of the 256-wide motion map, 256 = full map resolution")
    use_standard_view: BoolProperty(
        name="Standard View Transform", default=True,
        description="When making a plane, set the scene's view transform to Standard so the emissive plane "
                    "renders with the photo's own colours (AgX visibly changes them)")
    set_frame_range: BoolProperty(
        name="Set Frame Range", default=True,
        description="Make the scene's frame range exactly one loop when baking or changing the loop")
    include_closing_frame: BoolProperty(
        name="Include Closing Frame", default=False,
        description="End the frame range on the frame identical to the first (First Frame + Loop Length). Off: "
                    "every frame of the loop is rendered once, so the video repeats without a doubled frame")


classes = (IMAGEDYN_PG_object, IMAGEDYN_PG_scene)


def register_properties():
    bpy.types.Object.imagedyn = PointerProperty(type=IMAGEDYN_PG_object, name="Image Dynamics",
                                                description="Image Dynamics settings of this photo plane")
    bpy.types.Scene.imagedyn = PointerProperty(type=IMAGEDYN_PG_scene, name="Image Dynamics",
                                               description="Image Dynamics settings of this scene")


def unregister_properties():
    del bpy.types.Scene.imagedyn
    del bpy.types.Object.imagedyn
