"""Animate Photo: send the plane's photo to the backend, follow the job, save the spectral volume next to the .blend
and bake it; Cancel stops it without touching the scene.

Main thread: the operator reads the photo (file bytes, packed bytes, or pixels) and the settings into an
:class:`AnimateRequest`. Worker thread (:func:`animate_work`, no bpy): health check (starting the backend when the
preferences say so), upload, polling, download. Main thread again (:func:`apply_result`, from the timer in
``jobs.py``): write the .npz, bake the modal shape keys, push an undo step.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile

import bpy
import numpy as np
from bpy.props import StringProperty

from . import bake, brush, jobs, overlay, plane, prefs, shapekeys
from .core import files, heat, hint, png, protocol, spectral
from .core import mesh as core_mesh
from .core.protocol import BackendError, JobCancelled
from .ops import PlaneOperator, active_mesh

log = logging.getLogger(__name__)

BACKEND_FORMATS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}  # the backend decodes these
BACKEND_FILE_FORMATS = {"PNG", "JPEG", "WEBP", "BMP", "TIFF"}
LABEL = "Animate Photo"
BUSY_WAIT = 300.0  # seconds Animate Photo keeps retrying while the backend's queue is full


class AnimateError(RuntimeError):
    """The photo cannot be sent; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """The photo as file bytes, or as Blender pixels to encode (on the worker thread)."""

    name: str
    data: bytes | None = None
    pixels: np.ndarray | None = None  # flat float32, Blender layout (rows bottom-up)
    width: int = 0
    height: int = 0
    channels: int = 4
    linear: bool = False

    def encoded(self) -> bytes:
        if self.data is not None:
            return self.data
        rgb = png.pixels_to_rgb8(self.pixels, self.width, self.height, self.channels, self.linear)
        return png.encode_png(rgb)


@dataclasses.dataclass(frozen=True)
class AnimateRequest:
    object_name: str
    image: ImageSource
    params: protocol.PredictParams
    settings: jobs.BackendSettings
    moves: bytes | None = None  # the motion brush's hint (greyscale PNG), None = automatic
    brush: str = ""  # brush.digest of the painted brush the hint was drawn from


@dataclasses.dataclass(frozen=True)
class AnimateResult:
    data: bytes
    job_id: str
    cached: bool
    model: str | None
    brush: str = ""


def image_source(image) -> ImageSource:
    """Main thread: the bytes the backend gets for ``image`` - the original file or packed file when the backend
    reads its format and it has no unsaved edits, otherwise its pixels (generated, painted, EXR, ...)."""
    ext = os.path.splitext(image.filepath_raw or image.filepath or "")[1].lower()
    readable = ext in BACKEND_FORMATS or image.file_format in BACKEND_FILE_FORMATS
    if not image.is_dirty and readable:
        if image.packed_file is not None:
            return ImageSource(image.name, data=bytes(image.packed_file.data))
        if image.source == "FILE":
            path = bpy.path.abspath(image.filepath, library=image.library)
            if os.path.isfile(path):
                with open(path, "rb") as fh:
                    return ImageSource(image.name, data=fh.read())
    width, height = image.size  # loads the image; (0, 0) when its file is missing or unreadable
    if width < 1 or height < 1:
        raise AnimateError(f"The image '{image.name}' has no pixels (is its file missing?): reload or replace it "
                           "in the plane's material")
    channels = image.channels
    pixels = np.empty(width * height * channels, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return ImageSource(image.name, pixels=pixels, width=width, height=height, channels=channels,
                       linear=bool(image.is_float))


def animate_work(request: AnimateRequest):
    """The worker-thread part of Animate Photo (no bpy): returns :class:`AnimateResult`."""

    def work(emit, cancel_event) -> AnimateResult:
        with jobs.connected(request.settings, emit, cancel_event) as client:
            emit("Uploading the photo", 0.0)
            try:
                status = client.submit_predict(
                    request.image.encoded(), request.params, moves=request.moves, busy_wait=BUSY_WAIT,
                    cancelled=cancel_event.is_set,
                    on_busy=lambda seconds: emit(f"Backend busy (queue full): retrying in {seconds:.0f} s", 0.0))
            except JobCancelled:
                raise
            except BackendError as exc:
                raise protocol.moves_refused(exc) if request.moves is not None else exc from None
            final, data = jobs.follow(client, status, emit, cancel_event, "Downloading the motion")
            if cancel_event.is_set():
                raise JobCancelled()
        return AnimateResult(data, final.id, final.cached, final.model, request.brush)

    return work


def volume_folder() -> tuple[str, bool]:
    """(folder, beside_blend): ``<blend>_motion`` next to a saved .blend, else a temporary folder."""
    if bpy.data.filepath:
        stem = os.path.splitext(os.path.basename(bpy.data.filepath))[0]
        return os.path.join(os.path.dirname(bpy.data.filepath), f"{bpy.path.clean_name(stem)}_motion"), True
    return os.path.join(tempfile.gettempdir(), "image_dynamics_volumes"), False


def save_volume(object_name: str, data: bytes) -> tuple[str, spectral.SpectralVolume, bool]:
    """Write the downloaded .npz (validated) and return (path to store, volume, beside_blend). The stored path is
    relative ('//...') next to a saved .blend, so the file moves with it."""
    folder, beside = volume_folder()
    os.makedirs(folder, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()[:12]
    path = os.path.join(folder, f"{bpy.path.clean_name(object_name)}_{digest}.npz")
    with files.atomic_path(path) as tmp:  # validated before it replaces anything
        with open(tmp, "wb") as fh:
            fh.write(data)
        try:
            volume = spectral.load_npz(tmp)
        except spectral.SpectralVolumeError as exc:
            raise BackendError("bad_volume", f"The backend sent an unusable spectral volume ({exc}): update the "
                                             "backend and the add-on to matching versions") from None
    return (bpy.path.relpath(path) if beside else path), volume, beside


def apply_result(job, result: AnimateResult) -> str:
    """Main thread (timer): save the volume and bake it onto the plane; returns the message shown when done."""
    obj = bpy.data.objects.get(job.key)
    if obj is None or obj.type != "MESH":
        raise BackendError("plane_gone", f"The plane '{job.key}' was renamed or deleted while its motion was "
                                         "predicted: run Animate Photo again")
    stored, volume, beside = save_volume(obj.name, result.data)
    context = bpy.context
    scene = context.scene
    bake.apply_volume_settings(obj, scene, volume, stored)
    settings = scene.imagedyn
    request = bake.BakeRequest(volume_path=stored, anchor_group=obj.imagedyn.anchor_group,
                               set_frame_range=settings.set_frame_range,
                               include_closing_frame=settings.include_closing_frame)
    try:
        baked = bake.bake(context, obj, request, volume)
    except (shapekeys.BakeError, spectral.SpectralVolumeError, RuntimeError, ValueError) as exc:
        raise BackendError("bake_failed", f"The motion was saved to {stored} but could not be baked: {exc}") from exc
    if result.brush:
        obj[brush.PREDICTED_WITH] = result.brush
    elif brush.PREDICTED_WITH in obj:
        del obj[brush.PREDICTED_WITH]
    overlay.refresh(obj)  # the brush's preview ends once the volume honours it
    jobs.push_undo(f"{LABEL} '{obj.name}'")
    where = "" if beside else " (in a temporary folder: save the .blend and animate again to keep it beside it)"
    cached = " from the backend's cache" if result.cached else ""
    steered = " with the motion brush" if result.brush else ""
    notes = " ".join([*baked.warnings, heat.gentle_motion_note(volume.coeffs, core_mesh.MAX_KEY_VALUE)]).strip()
    return (f"Baked {2 * baked.bands} modal shape keys{cached}{steered}, loop of {baked.loop_frames} frames; volume "
            f"{stored}{where}" + (f". {notes}" if notes else ""))


class IMAGEDYN_OT_animate_photo(PlaneOperator, bpy.types.Operator):
    """Predict natural motion for the plane's photo with the Image Dynamics backend, then bake it as modal shape keys
    (runs in the background: progress in the Motion panel and the status bar, cancellable)"""

    bl_idname = "imagedyn.animate_photo"
    bl_label = "Animate Photo"
    find_plane = staticmethod(lambda context: active_mesh(context, modes=("OBJECT", "WEIGHT_PAINT")))

    def run(self, context, obj):
        image = plane.find_image(obj)
        if image is None:
            self.report({"ERROR"}, f"'{obj.name}' has no image texture: use 'Create Photo Plane' or 'Convert "
                                   "Active Plane' first")
            return {"CANCELLED"}
        job = jobs.job_for(obj.name)
        if job is not None and job.active:
            self.report({"WARNING"}, f"'{obj.name}' is already being animated: wait, or press Cancel")
            return {"CANCELLED"}
        settings = prefs.current_settings(context)
        try:
            protocol.normalize_url(settings.url)
            source = image_source(image)
            drawn = brush.hint_image(obj, tuple(image.size))
        except (AnimateError, BackendError, hint.HintError) as exc:
            self.report({"ERROR"}, getattr(exc, "message", None) or str(exc))
            return {"CANCELLED"}
        moves, steered = None, ""
        if drawn is not None:
            moves, _mask, report, painted = drawn
            steered = brush.digest(painted)
            for warning in report.warnings():
                self.report({"WARNING"}, warning)
        props = obj.imagedyn
        params = protocol.PredictParams(steps=props.animate_steps, guidance=props.animate_guidance,
                                        loop=props.animate_loop, seed=props.animate_seed)
        request = AnimateRequest(obj.name, source, params, settings, moves, steered)
        jobs.start_job(obj.name, LABEL, animate_work(request), apply_result)
        with_brush = f" and the motion brush '{brush.GROUP}'" if moves is not None else ""
        self.report({"INFO"}, f"Animating '{obj.name}'{with_brush} with the backend at {settings.url}: progress in "
                              "the Motion panel and the status bar")
        return {"FINISHED"}


class IMAGEDYN_OT_cancel_animate(bpy.types.Operator):
    """Cancel the running Animate Photo of a plane (the scene is left as it was)"""

    bl_idname = "imagedyn.cancel_animate"
    bl_label = "Cancel"
    bl_options = {"REGISTER", "UNDO"}

    object_name: StringProperty(name="Plane", default="",
                                description="Plane whose job to cancel (empty = the active object)")

    @classmethod
    def poll(cls, context):
        return bool(jobs.active_jobs())

    def execute(self, context):
        name = self.object_name or (context.active_object.name if context.active_object else "")
        if not jobs.cancel(name):
            self.report({"WARNING"}, f"No running job for '{name}'")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Cancelling Animate Photo of '{name}'")
        return {"FINISHED"}


classes = (IMAGEDYN_OT_animate_photo, IMAGEDYN_OT_cancel_animate)
