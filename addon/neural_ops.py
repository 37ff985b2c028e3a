"""Render Neural Frames: send what the timeline shows (loop and pokes, as per-frame modal coordinates) to the
backend's ``render`` job, and show the returned image sequence on the plane's material, frame-accurately.

Main thread (operator): the photo, the volume file, the scene's frame range and, per frame, the modal keys' values
(read from their F-curves, what the loop and pokes write) -> :class:`NeuralRequest`. Worker thread
(:func:`neural_work`, no bpy): health, submit, poll, download the zip, unpack it into a private staging folder.
Main thread again (:func:`apply_result`): move the frames into ``<blend>_neural/<plane>/`` (replacing an older
sequence), point a "IDyn Neural Frames" image node at them (scene frame f shows file frame_f) in place of the
photo node, and mute the modal keys (the frames already contain the motion). Cancel or failure changes nothing in
the scene and leaves no frames behind. "Use Mesh Warp" puts the photo and the keys back.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
import shutil
import tempfile
import zipfile

import bpy
import numpy as np
from bpy.props import EnumProperty, IntProperty, StringProperty

from . import animation, compat, jobs, plane, prefs, shapekeys, volumes, wind
from .animate_ops import AnimateError, ImageSource, image_source
from .core import neural, png, protocol, spectral
from .core.protocol import BackendError, JobCancelled
from .ops import PlaneOperator

log = logging.getLogger(__name__)

LABEL = "Neural Frames"
NODE_NAME = "IDyn Neural Frames"
PHOTO_TAG = "imagedyn_photo_node"  # on the sequence node: name of the photo node it replaces
MUTED_TAG = "imagedyn_neural_muted"  # on the Key datablock: keys muted while neural frames show


def job_key(obj) -> str:
    return f"{obj.name} (neural frames)"


@dataclasses.dataclass(frozen=True)
class NeuralRequest:
    object_name: str
    image: ImageSource
    volume: bytes
    frames: tuple
    modal: np.ndarray  # (N, K, 2) [re, im]
    fmt: str
    size: tuple
    renderer: str
    out_dir: str
    settings: jobs.BackendSettings
    anchor: tuple | None = None  # (UVs (N, 2), weights (N,)) of the Anchor group, None = every pixel moves freely


@dataclasses.dataclass(frozen=True)
class NeuralResult:
    staging: str
    frames: tuple
    fmt: str
    job_id: str
    cached: bool
    model: str | None


# ----------------------------------------------------------------------------------------------------------------
# Reading the scene (main thread)
# ----------------------------------------------------------------------------------------------------------------

def key_values(obj, frames) -> tuple:
    """Values (K, N) of the Re and Im modal keys at scene ``frames``, as the timeline plays them: each key's F-curve
    evaluated (clamped to the key's slider range like Blender does), or its current value when not animated."""
    bands = shapekeys.modal_keys(obj)
    key = obj.data.shape_keys
    fcurves = compat.find_fcurves(key) if key is not None else None
    frames = np.asarray(frames, dtype=np.float64)
    out = np.zeros((2, len(bands), len(frames)))
    for i, (_k, re_block, im_block) in enumerate(bands):
        for part, block in enumerate((re_block, im_block)):
            fc = fcurves.find(animation.data_path(block)) if fcurves is not None else None
            if fc is None or fc.mute:
                values = np.full(len(frames), block.value)
            else:
                values = np.array([fc.evaluate(f) for f in frames])
            out[part, i] = np.clip(values, block.slider_min, block.slider_max)
    return out[0], out[1]


def anchor_of(obj):
    """(UVs, weights) of the plane's Anchor group, as the modal keys use it; None when there is none or every
    vertex moves at full weight (the mask would change nothing)."""
    name = obj.imagedyn.anchor_group
    if not name or name not in obj.vertex_groups:
        return None
    weights = shapekeys.group_weights(obj, name)
    if np.all(weights >= 1.0):
        return None
    try:
        return shapekeys.vertex_uvs(obj.data), weights
    except shapekeys.BakeError:
        return None


def volume_bytes(obj, path: str) -> bytes:
    """The volume file the renderer gets: the plane's own, or - when wind arrows turn its motion - the turned volume
    the keys hold (written to a temporary .npz), so the frames move as the mesh does."""
    if not wind.has_winds(obj):
        with open(path, "rb") as fh:
            return fh.read()
    volume, source = volumes.plane_volume(obj)
    turned = dataclasses.replace(volume, coeffs=wind.effective_coeffs(obj, volume, source))
    with tempfile.TemporaryDirectory(prefix="image_dynamics_wind_") as folder:
        out = os.path.join(folder, "volume.npz")
        spectral.save_npz(out, turned)
        with open(out, "rb") as fh:
            return fh.read()


def photo_image(obj):
    """The plane's photo (the image of the node the neural frames replaced, else the first image texture)."""
    for slot in obj.material_slots:
        mat = slot.material
        if mat is None or mat.node_tree is None:
            continue
        seq = mat.node_tree.nodes.get(NODE_NAME)
        if seq is not None and seq.get(PHOTO_TAG) in mat.node_tree.nodes:
            return mat.node_tree.nodes[seq[PHOTO_TAG]].image
    return plane.find_image(obj)


def output_folder(object_name: str) -> tuple:
    """(folder, beside_blend): ``<blend>_neural/<plane>`` next to a saved .blend, else a temporary folder."""
    name = bpy.path.clean_name(object_name)
    if bpy.data.filepath:
        stem = bpy.path.clean_name(os.path.splitext(os.path.basename(bpy.data.filepath))[0])
        return os.path.join(os.path.dirname(bpy.data.filepath), f"{stem}_neural", name), True
    return os.path.join(tempfile.gettempdir(), "image_dynamics_neural", name), False


# ----------------------------------------------------------------------------------------------------------------
# Worker thread (no bpy)
# ----------------------------------------------------------------------------------------------------------------

def neural_work(request: NeuralRequest):
    def work(emit, cancel_event) -> NeuralResult:
        with jobs.connected(request.settings, emit, cancel_event) as client:
            emit("Uploading", 0.0)
            mask = png.encode_mask(neural.anchor_mask(*request.anchor)) if request.anchor is not None else None
            body = neural.render_body(request.image.encoded(), request.volume, request.frames, request.modal,
                                      request.fmt, request.size, request.renderer or None, mask)
            final, data = jobs.follow(client, client.submit("render", body), emit, cancel_event,
                                         "Downloading the frames")
        if cancel_event.is_set():
            raise JobCancelled()
        staging = tempfile.mkdtemp(prefix="image_dynamics_neural_")
        try:
            expected = {neural.frame_filename(f, request.fmt) for f in request.frames}
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = set(zf.namelist())
                if names != expected:
                    raise BackendError("bad_result", f"The backend sent {len(names)} frames for {len(expected)} "
                                                     "requested: update the backend and the add-on to matching "
                                                     "versions")
                for name in sorted(names):
                    with open(os.path.join(staging, name), "wb") as fh:
                        fh.write(zf.read(name))
            if cancel_event.is_set():
                raise JobCancelled()
        except (BackendError, zipfile.BadZipFile, OSError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, BackendError):
                raise
            raise BackendError("bad_result", f"Could not unpack the frames ({exc})") from None
        return NeuralResult(staging, tuple(request.frames), request.fmt, final.id, final.cached, final.model)

    return work


# ----------------------------------------------------------------------------------------------------------------
# Applying the result (main thread)
# ----------------------------------------------------------------------------------------------------------------

def _install_frames(result: NeuralResult, out_dir: str) -> list:
    """Replace the sequence in ``out_dir`` by the staged frames (older frame files of ours are removed)."""
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):
        if neural.FRAME_RE.match(name):
            os.remove(os.path.join(out_dir, name))
    paths = []
    for frame in result.frames:
        name = neural.frame_filename(frame, result.fmt)
        dest = os.path.join(out_dir, name)
        shutil.move(os.path.join(result.staging, name), dest)
        paths.append(dest)
    shutil.rmtree(result.staging, ignore_errors=True)
    return paths


def _sequence_image(obj, first_path: str):
    name = f"IDyn_neural_{obj.name}"
    image = bpy.data.images.get(name)
    if image is None:
        image = bpy.data.images.load(first_path)
        image.name = name
    else:
        image.filepath = first_path
    image.source = "SEQUENCE"
    image.reload()  # drop every cached frame of an older sequence
    return image


def apply_sequence(obj, first_path: str, first_frame: int, count: int):
    """Show the sequence on ``obj``'s photo material(s) in place of the photo node; mute the modal keys."""
    image = _sequence_image(obj, first_path)
    photo = photo_image(obj)
    done = 0
    for slot in obj.material_slots:
        mat = slot.material
        if mat is None or mat.node_tree is None:
            continue
        tree = mat.node_tree
        photo_node = next((n for n in tree.nodes if n.type == "TEX_IMAGE" and n.image == photo
                           and n.name != NODE_NAME), None)
        if photo_node is None:
            continue
        seq = tree.nodes.get(NODE_NAME) or tree.nodes.new("ShaderNodeTexImage")
        seq.name = seq.label = NODE_NAME
        seq.location = (photo_node.location.x, photo_node.location.y - 300)
        seq.image = image
        seq.interpolation, seq.extension = photo_node.interpolation, photo_node.extension
        seq[PHOTO_TAG] = photo_node.name
        user = seq.image_user
        for attr, value in neural.sequence_user_settings(first_frame, count).items():
            setattr(user, attr, value)
        user.use_auto_refresh = True
        user.use_cyclic = False
        for link in list(photo_node.outputs["Color"].links) + list(photo_node.outputs["Alpha"].links):
            tree.links.new(seq.outputs[link.from_socket.name], link.to_socket)
        photo_node.mute = False
        done += 1
    if not done:
        raise BackendError("no_photo_node", f"'{obj.name}' has no material with its photo's image texture node: "
                                            "the frames were saved but not applied")
    _mute_keys(obj, True)
    for node in _compositor_nodes(obj):  # a compositor that shows these frames follows the new range
        _map_frames(node, image, seq.image_user)
    return image


def compositor_node_name(obj) -> str:
    return f"IDyn Neural Frames: {obj.name}"[:63]


def _sequence_node(obj):
    """The material node showing ``obj``'s neural frames, or None."""
    for slot in obj.material_slots:
        tree = slot.material.node_tree if slot.material is not None else None
        if tree is not None and NODE_NAME in tree.nodes:
            return tree.nodes[NODE_NAME]
    return None


def _map_frames(node, image, user) -> None:
    """Compositor Image node: show ``image`` with the material's frame mapping (scene frame f = file frame_f)."""
    node.image = image
    node.frame_start, node.frame_offset, node.frame_duration = user.frame_start, user.frame_offset, user.frame_duration
    node.use_auto_refresh = True
    node.use_cyclic = False


def _compositor_nodes(obj):
    """Compositor Image nodes of ``obj``'s neural frames in every scene (the add-on's nodes only)."""
    name = compositor_node_name(obj)
    for scene in bpy.data.scenes:
        tree = compat.find_compositor_tree(scene)
        if tree is not None and name in tree.nodes:
            yield tree.nodes[name]


def send_to_compositor(scene, obj) -> str:
    """Put ``obj``'s neural frames into the scene's compositor as an Image node (scene frame f shows frame_f).

    A compositor the add-on has to make gets Render Layers over the frames (Alpha Over) into the output, with a
    transparent film, so a render shows the 3D scene in front of the neural frames; in an existing compositor the
    node is added unconnected (nothing of the artist's is rewired). Re-sending updates the same node."""
    seq = _sequence_node(obj)
    if seq is None or seq.image is None:
        raise BackendError("no_neural_frames", f"'{obj.name}' shows no neural frames: render them first")
    tree, created = compat.compositor_tree(scene)
    name = compositor_node_name(obj)
    node = tree.nodes.get(name) or tree.nodes.new("CompositorNodeImage")
    node.name = node.label = name
    _map_frames(node, seq.image, seq.image_user)
    if not created:
        return (f"Added '{name}' to the compositor of scene '{scene.name}' (unconnected: wire it where you need "
                "it)")
    out = compat.compositor_output(tree)
    layers = next((n for n in tree.nodes if n.type == "R_LAYERS"), None)
    if out is None or layers is None:
        return f"Added '{name}' to a new compositor of scene '{scene.name}' (unconnected)"
    over = tree.nodes.new("CompositorNodeAlphaOver")
    over.name = over.label = "IDyn Alpha Over"
    background, foreground = compat.alpha_over_inputs(over)
    tree.links.new(node.outputs["Image"], background)
    tree.links.new(layers.outputs["Image"], foreground)
    tree.links.new(over.outputs["Image"], out.inputs[0])
    node.location = (layers.location.x, layers.location.y - 400)
    over.location = (layers.location.x + 300, layers.location.y - 100)
    out.location = (layers.location.x + 600, layers.location.y)
    scene.render.film_transparent = True
    return (f"New compositor in scene '{scene.name}': the render in front of '{obj.name}'s neural frames "
            "(Film > Transparent turned on)")


def _mute_keys(obj, mute: bool) -> None:
    key = obj.data.shape_keys
    if key is None:
        return
    blocks = [b for _, re_block, im_block in shapekeys.modal_keys(obj) for b in (re_block, im_block)]
    depth = shapekeys.depth_key(obj)
    if depth is not None:
        blocks.append(depth)
    for block in blocks:
        block.mute = mute
    key[MUTED_TAG] = bool(mute)


def restore_mesh_warp(obj) -> bool:
    """Reconnect the photo node, drop the sequence node and unmute the keys. Returns whether anything changed."""
    changed = False
    for slot in obj.material_slots:
        mat = slot.material
        tree = mat.node_tree if mat is not None else None
        seq = tree.nodes.get(NODE_NAME) if tree is not None else None
        if seq is None:
            continue
        photo_node = tree.nodes.get(seq.get(PHOTO_TAG, ""))
        if photo_node is not None:
            for link in list(seq.outputs["Color"].links) + list(seq.outputs["Alpha"].links):
                tree.links.new(photo_node.outputs[link.from_socket.name], link.to_socket)
        tree.nodes.remove(seq)
        changed = True
    key = obj.data.shape_keys
    if key is not None and key.get(MUTED_TAG):
        _mute_keys(obj, False)
        changed = True
    return changed


def shows_neural_frames(obj) -> bool:
    return obj is not None and any(s.material is not None and s.material.node_tree is not None
                                   and NODE_NAME in s.material.node_tree.nodes for s in obj.material_slots)


def apply_result(job, result: NeuralResult) -> str:
    name = job.key.rsplit(" (neural frames)", 1)[0]
    obj = bpy.data.objects.get(name)
    if obj is None or obj.type != "MESH":
        shutil.rmtree(result.staging, ignore_errors=True)
        raise BackendError("plane_gone", f"The plane '{name}' was renamed or deleted while its frames were rendered: "
                                         "render again")
    out_dir, beside = output_folder(obj.name)
    paths = _install_frames(result, out_dir)
    first = bpy.path.relpath(paths[0]) if beside else paths[0]
    apply_sequence(obj, first, result.frames[0], len(result.frames))
    jobs.push_undo(f"{LABEL} '{obj.name}'")
    where = "" if beside else " (temporary folder: save the .blend and render again to keep them beside it)"
    cached = " from the backend's cache" if result.cached else ""
    return (f"{len(paths)} neural frames{cached} ({result.frames[0]}..{result.frames[-1]}) on '{obj.name}' from "
            f"{out_dir}{where}; mesh warp muted")


# ----------------------------------------------------------------------------------------------------------------
# Operators
# ----------------------------------------------------------------------------------------------------------------

def baked_plane(context):
    obj = context.active_object
    if obj is None or obj.type != "MESH" or obj.mode != "OBJECT":
        return None
    return obj if shapekeys.has_modal_keys(obj) else None


class IMAGEDYN_OT_render_neural(PlaneOperator, bpy.types.Operator):
    """Render the scene's frame range as neural frames with the backend (softmax splatting + synthesis network)
    from the motion the timeline shows (loop and pokes), and show them on the plane's material"""

    bl_idname = "imagedyn.render_neural"
    bl_label = "Render Neural Frames"
    find_plane = staticmethod(baked_plane)

    long_side: IntProperty(name="Longest Side", default=512, min=16, max=4096,
                           description="Frames keep the photo's aspect with at most this many pixels on the longer "
                                       "side (never more than the photo)")
    file_format: EnumProperty(name="Format", default="png",
                              items=(("png", "PNG", "8-bit sRGB, like the photo"),
                                     ("exr", "OpenEXR", "32-bit float, scene-linear")),
                              description="File format of the frames")
    renderer: StringProperty(name="Renderer", default="",
                             description="Renderer checkpoint on the backend's machine (empty = the shipped one)")

    def run(self, context, obj):
        scene = context.scene
        props = obj.imagedyn
        key = job_key(obj)
        job = jobs.job_for(key)
        if job is not None and job.active:
            self.report({"WARNING"}, f"Neural frames of '{obj.name}' are already being rendered: wait or cancel")
            return {"CANCELLED"}
        image = photo_image(obj)
        if image is None:
            self.report({"ERROR"}, f"'{obj.name}' has no image texture: neural frames need the photo")
            return {"CANCELLED"}
        path = bpy.path.abspath(props.volume_path) if props.volume_path else ""
        if not path or not os.path.isfile(path):
            self.report({"ERROR"}, f"The plane's spectral volume '{props.volume_path}' is missing: load or animate "
                                   "it again (the backend needs the volume file)")
            return {"CANCELLED"}
        frames = tuple(range(scene.frame_start, scene.frame_end + 1))
        if scene.frame_start < 0:
            self.report({"ERROR"}, "The scene starts before frame 0: neural frames are numbered from 0")
            return {"CANCELLED"}
        try:
            volume = volume_bytes(obj, path)
            source = image_source(image)
            protocol.normalize_url(prefs.current_settings(context).url)
        except (AnimateError, BackendError, OSError, volumes.VolumeUnavailable) as exc:
            self.report({"ERROR"}, getattr(exc, "message", None) or str(exc))
            return {"CANCELLED"}
        value_re, value_im = key_values(obj, frames)
        modal = neural.coordinates_from_key_values(value_re, value_im)
        w, h = image.size
        size = neural.frame_size(w, h, self.long_side)
        request = NeuralRequest(obj.name, source, volume, frames, modal, self.file_format, size, self.renderer,
                                output_folder(obj.name)[0], prefs.current_settings(context), anchor_of(obj))
        jobs.start_job(key, LABEL, neural_work(request), apply_result)
        self.report({"INFO"}, f"Rendering {len(frames)} neural frames of '{obj.name}' ({size[0]}x{size[1]}): "
                              "progress in the Motion panel and the status bar")
        return {"FINISHED"}


class IMAGEDYN_OT_cancel_neural(bpy.types.Operator):
    """Cancel the running neural-frame render of the active plane (the scene is left as it was)"""

    bl_idname = "imagedyn.cancel_neural"
    bl_label = "Cancel Neural Frames"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        job = jobs.job_for(job_key(obj)) if obj is not None else None
        return job is not None and job.active

    def execute(self, context):
        jobs.cancel(job_key(context.active_object))
        self.report({"INFO"}, "Cancelling the neural frames")
        return {"FINISHED"}


class IMAGEDYN_OT_neural_to_compositor(PlaneOperator, bpy.types.Operator):
    """Put the plane's neural frames into the scene's compositor as an image sequence (frame-accurate); a new
    compositor shows the render in front of them"""

    bl_idname = "imagedyn.neural_to_compositor"
    bl_label = "Neural Frames to Compositor"

    def run(self, context, obj):
        try:
            message = send_to_compositor(context.scene, obj)
        except BackendError as exc:
            self.report({"ERROR"}, exc.message)
            return {"CANCELLED"}
        self.report({"INFO"}, message)
        return {"FINISHED"}


class IMAGEDYN_OT_use_mesh_warp(PlaneOperator, bpy.types.Operator):
    """Show the photo deformed by the modal shape keys again instead of the neural frames (the frames stay on
    disk)"""

    bl_idname = "imagedyn.use_mesh_warp"
    bl_label = "Use Mesh Warp"

    def run(self, context, obj):
        if not restore_mesh_warp(obj):
            self.report({"INFO"}, f"'{obj.name}' already shows the mesh warp")
            return {"CANCELLED"}
        self.report({"INFO"}, f"'{obj.name}' shows the photo with mesh warping again")
        return {"FINISHED"}


classes = (IMAGEDYN_OT_render_neural, IMAGEDYN_OT_cancel_neural, IMAGEDYN_OT_neural_to_compositor,
           IMAGEDYN_OT_use_mesh_warp)
