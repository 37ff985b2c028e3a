"""The service's ``render`` job kind: photo + spectral volume + per-frame modal coordinates (or a loop) + frame
numbers -> neural frames, published one by one as they finish (``GET /v1/jobs/{id}/files/frame_0001.png``) and,
when all are done, as one ``frames.zip`` result (cached by content hash).

Importing this module registers the kind (``backend.service.jobs.JOB_KIND_MODULES`` lists it). The renderer comes
from the service's models (``ModelManager.renderer``: loaded on first use, then listed and unloadable under
``/v1/models``). Cancel stops the render at the next frame; the job then ends 'cancelled' without a result, and the
add-on never applies a partial sequence.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import zipfile
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from . import images
from .cache import content_key
from .errors import ServiceError
from .jobs import Prepared, register_job_kind

log = logging.getLogger(__name__)

RESULT_NAME = "frames.zip"
MAX_FRAMES = 20000
MAX_VOLUME_BYTES = 256 * 2 ** 20


class LoopModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    loop_frames: float = Field(ge=2.0, le=1e6, allow_inf_nan=False, description="Scene frames per loop (L)")
    phase_frame: float = Field(default=0.0, ge=-1e9, le=1e9, allow_inf_nan=False,
                               description="Scene frame where the loop's phase is 0")
    amplitude: float = Field(default=1.0, ge=0.0, le=100.0, allow_inf_nan=False, description="Motion scale")


class RenderJobRequest(BaseModel):
    """Neural frames of a photo. Motion per frame n: F_n = Re(sum_k A_k q_k(n)) with the K complex modal
    coordinates of ``modal[n]`` ([re, im] per band), or the seamless ``loop`` (docs/renderer.md)."""

    model_config = ConfigDict(extra="forbid")
    image: str = Field(min_length=1, description="The photo's file bytes (PNG, JPEG, WebP, TIFF, BMP), base64")
    volume: str = Field(min_length=1, description="The spectral volume's .npz file bytes, base64")
    frames: list[int] = Field(min_length=1, max_length=MAX_FRAMES,
                              description="Scene frame numbers (>= 0) to render, in order; files are named by them")
    modal: Optional[list[list[list[float]]]] = Field(
        default=None, description="Per requested frame, K [re, im] modal coordinates (N x K x 2)")
    loop: Optional[LoopModel] = Field(default=None, description="The loop instead of 'modal'")
    format: Literal["png", "exr"] = Field(default="png", description="png (8-bit sRGB) or exr (linear float)")
    size: Optional[list[int]] = Field(default=None, min_length=2, max_length=2,
                                      description="(W, H) of the frames; default the photo's aspect, longer "
                                                  "side at most 512")
    motion_mask: Optional[str] = Field(
        default=None, min_length=1,
        description="Per-pixel motion scale as a greyscale image file (PNG), base64: white moves freely, black stays "
                    "still (the add-on's Anchor group); stretched over the frame, corners on corners")
    renderer: Optional[str] = Field(default=None, max_length=4096,
                                    description="Renderer checkpoint path on the backend's machine; None = the "
                                                "shipped one; 'tiny' = untrained (tests)")


@dataclasses.dataclass(frozen=True)
class RenderPayload:
    photo: np.ndarray
    volume: object  # SpectralVolume
    q: np.ndarray  # (N, K) complex
    settings: object  # RenderSettings
    renderer: object
    device: object
    motion_mask: Optional[np.ndarray] = None


def decode_volume(text: str):
    from addon.core.spectral import SpectralVolumeError, volume_from_arrays

    data = images.decode_base64(text, field="volume")
    if len(data) > MAX_VOLUME_BYTES:
        raise ServiceError(413, "volume_too_large", f"The volume has {len(data):,} bytes; at most "
                                                    f"{MAX_VOLUME_BYTES:,} are accepted")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        return data, volume_from_arrays(arrays)
    except SpectralVolumeError as exc:
        raise ServiceError(422, "invalid_volume", f"Not a usable spectral volume: {exc}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ServiceError(422, "invalid_volume", f"'volume' is not a readable .npz spectral volume ({exc}): send "
                                                  "the bytes of a file written by 'image-dynamics extract' or a "
                                                  "predict job") from None


def prepare_render(request: RenderJobRequest, service) -> Prepared:
    from backend.render.frames import LoopSettings, check_coordinates
    from backend.render.render import RenderSettings

    data = images.decode_base64(request.image)
    photo = images.decode_image(data, service.config.max_pixels, service.config.max_side)
    volume_bytes, volume = decode_volume(request.volume)
    mask_bytes, mask = (images.decode_mask(request.motion_mask, "motion_mask", "invalid_mask", service.config.max_pixels)
                        if request.motion_mask
                        else (b"", None))
    if (request.modal is None) == (request.loop is None):
        raise ServiceError(422, "invalid_motion", "Give exactly one of 'modal' (per-frame modal coordinates) and "
                                                  "'loop'")
    try:
        settings = RenderSettings(frames=tuple(request.frames), format=request.format,
                                  size=tuple(request.size) if request.size else None)
        if request.modal is not None:
            q = check_coordinates(request.modal, volume.k, len(settings.frames))
        else:
            loop = LoopSettings(**request.loop.model_dump())
            q = loop.coordinates(volume.k, settings.frames)
    except ValueError as exc:
        raise ServiceError(422, "invalid_render", f"Invalid render request: {exc}") from None
    renderer = service.models.renderer(request.renderer)  # 422 invalid_model when it cannot be loaded
    key = content_key("render", hashlib.sha256(data).hexdigest(), hashlib.sha256(volume_bytes).hexdigest(),
                      list(settings.frames), hashlib.sha256(np.ascontiguousarray(q).tobytes()).hexdigest(),
                      settings.format, settings.size, renderer.id, service.config.max_side,
                      hashlib.sha256(mask_bytes).hexdigest() if mask is not None else None)
    payload = RenderPayload(photo.pixels, volume, q, settings, renderer.model, renderer.device, mask)
    return Prepared(payload, cache_key=key, model=renderer.id)


def run_render(ctx, payload: RenderPayload) -> str:
    from backend.render.render import frame_filename, render_sequence

    settings = payload.settings
    total = len(settings.frames)
    ctx.progress(0, total, "rendering")
    out_dir = os.path.join(ctx.work_dir, "render")
    media = "image/png" if settings.format == "png" else "image/x-exr"

    def on_frame(frame: int, path: str) -> None:
        ctx.publish_file(os.path.basename(path), path, media)

    render_sequence(payload.renderer, payload.photo, payload.volume, payload.q, settings, out_dir,
                    device=payload.device, on_frame=on_frame, motion_mask=payload.motion_mask,
                    callback=lambda done, n: ctx.progress(done, n, "rendering"))
    ctx.progress(total, total, "packing")
    path = os.path.join(ctx.work_dir, RESULT_NAME)
    folder = os.path.join(ctx.work_dir, "files")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for frame in settings.frames:
            name = frame_filename(frame, settings.format)
            zf.write(os.path.join(folder, name), name)
    return path


register_job_kind(
    "render", run_render, request_model=RenderJobRequest, prepare=prepare_render,
    description="Render neural frames of a photo moved by a spectral volume (per-frame modal coordinates or a "
                "loop): frames are published as files as they finish, the result is a zip of all of them",
    result_name=RESULT_NAME, media_type="application/zip")
