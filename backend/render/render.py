"""Render neural frames: photo + spectral volume + per-frame modal coordinates -> frames (PNG or EXR files).

Frames are rendered in the requested order in small batches (the photo is encoded once) and each file is
written as soon as it is finished, so callers can stream them. ``callback(done, total)`` runs after every frame;
raise from it (e.g. a job's cancel exception) to stop: the files this call wrote are then deleted, so a cancelled
render never leaves a partial sequence behind.

Files: ``<prefix><frame:04d>.png`` (8-bit sRGB, as the photo) or ``.exr`` (float32, scene-linear: sRGB decoded,
as Blender expects EXR). Frame numbers are the caller's (scene frames), so an image sequence maps file number to
scene frame one to one.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Callable, Iterator

import numpy as np
import torch

from addon.core.files import atomic_path
from addon.core.spectral import SpectralVolume
from backend.spectral import mean_square_displacement, modal_displacement

from .frames import check_coordinates

log = logging.getLogger(__name__)

FORMATS = ("png", "exr")
DEFAULT_LONG_SIDE = 512  # default render size: the photo's aspect, longer side at most this
MAX_SIDE = 4096
PIXELS_PER_BATCH = 4 * 256 * 160  # frames per batch: about this many pixels


class Cancelled(Exception):
    """Raised from a progress callback to stop a render."""


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """Output frame numbers (scene frames, >= 0, in output order), file format and size ((W, H) or None for the
    photo's aspect with the longer side at most 512)."""

    frames: tuple
    format: str = "png"
    size: tuple | None = None

    def __post_init__(self):
        frames = tuple(self.frames)
        if not frames:
            raise ValueError("no frames asked for: give at least one frame number")
        for f in frames:
            if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < 0:
                raise ValueError(f"frame numbers must be whole numbers >= 0 (scene frames), got {f!r}")
        if len(set(frames)) != len(frames):
            raise ValueError("frame numbers repeat: ask for each frame once")
        object.__setattr__(self, "frames", tuple(int(f) for f in frames))
        if self.format not in FORMATS:
            raise ValueError(f"unknown frame format '{self.format}': use one of {', '.join(FORMATS)}")
        if self.size is not None:
            try:
                w, h = (int(v) for v in self.size)
            except (TypeError, ValueError):
                raise ValueError(f"size must be (width, height), got {self.size!r}") from None
            if not (16 <= w <= MAX_SIDE and 16 <= h <= MAX_SIDE):
                raise ValueError(f"size {w}x{h} is out of range: use 16..{MAX_SIDE} pixels per side")
            object.__setattr__(self, "size", (w, h))


def output_size(photo_size, size=None) -> tuple:
    """(W, H) of the rendered frames for a photo of ``photo_size`` (W, H)."""
    if size is not None:
        return tuple(int(v) for v in size)
    w, h = photo_size
    scale = min(1.0, DEFAULT_LONG_SIDE / max(w, h))
    return max(16, int(round(w * scale))), max(16, int(round(h * scale)))


def frame_filename(frame: int, fmt: str = "png", prefix: str = "frame_") -> str:
    return f"{prefix}{int(frame):04d}.{fmt}"


def _resize(photo: np.ndarray, size) -> np.ndarray:
    if (photo.shape[1], photo.shape[0]) == tuple(size):
        return photo
    from PIL import Image

    return np.asarray(Image.fromarray(photo).resize(tuple(size), Image.Resampling.LANCZOS))


def check_photo(photo) -> np.ndarray:
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ValueError(f"the photo must be RGB uint8 of shape (H, W, 3), got {photo.dtype} {photo.shape}")
    if min(photo.shape[:2]) < 16:
        raise ValueError(f"the photo is {photo.shape[1]}x{photo.shape[0]}: use at least 16 pixels per side")
    return photo


def check_motion_mask(mask) -> np.ndarray:
    """A motion mask (h, w) float in [0, 1]: per-pixel motion scale (1 = free, 0 = still), e.g. the add-on's
    Anchor group. Any size of at least 2x2; it is stretched over the frame (corners on corners)."""
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim != 2 or min(mask.shape) < 2:
        raise ValueError(f"the motion mask must be a 2D map of at least 2x2 values, got shape {mask.shape}")
    if not np.all(np.isfinite(mask)) or mask.min() < 0.0 or mask.max() > 1.0:
        raise ValueError("the motion mask must hold values in [0, 1] (1 = moves freely, 0 = stays still)")
    return mask


def mask_from_image(pixels: np.ndarray) -> np.ndarray:
    """A greyscale or RGB image (uint8 / uint16 / float in [0, 1]) -> motion mask (h, w) in [0, 1] (its mean of
    the colour channels; white = free)."""
    px = np.asarray(pixels)
    peak = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(px.dtype, 1.0)
    px = px.astype(np.float32) / peak
    if px.ndim == 3:
        px = px[..., :3].mean(axis=2)
    return check_motion_mask(np.clip(px, 0.0, 1.0))


class MaskTooLarge(ValueError):
    """A motion mask with more pixels than allowed."""


def read_mask_image(source, max_pixels: int | None = None) -> np.ndarray:
    """Motion mask from an image file (path or file object): greyscale 8/16-bit as it is, anything else as RGB.
    ValueError, saying what is wrong, when it is not a readable image or not a usable mask; :class:`MaskTooLarge`
    when it has more than ``max_pixels`` pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as im:
            if max_pixels is not None and im.size[0] * im.size[1] > max_pixels:
                raise MaskTooLarge(f"the image has {im.size[0]}x{im.size[1]} pixels; at most "
                                   f"{max_pixels:,} are accepted")
            pixels = np.asarray(im if im.mode in ("L", "I;16", "I;16B", "I;16L") else im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not a readable image ({exc})") from None
    return mask_from_image(pixels)


def scale_by_mask(coeffs: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """coeffs (K, 4, H, W) times the mask stretched bilinearly to H x W (corner samples on corner pixels, as the
    plane's vertices at UV 0 and 1): the motion of each pixel scales by the mask there (flows are linear in A)."""
    h, w = coeffs.shape[-2:]
    m = torch.from_numpy(check_motion_mask(mask))[None, None].to(device=coeffs.device, dtype=coeffs.dtype)
    m = torch.nn.functional.interpolate(m, size=(h, w), mode="bilinear", align_corners=True)
    return coeffs * m[0, 0]


def iter_frames(model, photo: np.ndarray, volume: SpectralVolume, q, *, size=None,
                device: torch.device | str = "cpu", batch_size: int | None = None,
                motion_mask: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Yield frames float32 (n, H, W, 3) in [0, 1] (sRGB), one batch at a time, for modal coordinates q (N, K).
    ``motion_mask`` (h, w) in [0, 1] scales the motion per pixel (:func:`scale_by_mask`)."""
    photo = check_photo(photo)
    q = check_coordinates(q, volume.k)
    if motion_mask is not None:
        motion_mask = check_motion_mask(motion_mask)
    w, h = output_size((photo.shape[1], photo.shape[0]), size)
    image = _resize(photo, (w, h))
    volume = volume.resampled(w, h)
    device = torch.device(device)
    if batch_size is None:
        batch_size = max(1, PIXELS_PER_BATCH // (w * h))
    with torch.no_grad():
        coeffs = torch.from_numpy(np.ascontiguousarray(volume.coeffs)).to(device)
        if motion_mask is not None:
            coeffs = scale_by_mask(coeffs, motion_mask)
        weight = mean_square_displacement(coeffs)[None, None]  # (1, 1, H, W) px²
        src = torch.from_numpy(np.array(image, copy=True)).to(device).permute(2, 0, 1)[None].float() / 255.0
        state = model.prepare(src)
        for start in range(0, len(q), batch_size):
            flow = modal_displacement(coeffs, q[start:start + batch_size])  # (n, 2, H, W)
            out = model.frames(state, flow, weight).clamp(0.0, 1.0)
            yield out.permute(0, 2, 3, 1).cpu().numpy()


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def write_frame(path: str, rgb: np.ndarray, fmt: str) -> None:
    """Write one frame float (H, W, 3) in [0, 1] sRGB as 8-bit PNG or linear float32 EXR (atomic rename)."""
    import cv2

    if fmt == "png":
        data = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    else:
        os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
        data = srgb_to_linear(rgb)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(tmp, np.ascontiguousarray(data[..., ::-1])):
            raise OSError(f"could not write frame '{path}': check that the folder is writable and has space")


def render_sequence(model, photo: np.ndarray, volume: SpectralVolume, q, settings: RenderSettings, out_dir,
                    *, prefix: str = "frame_", device="cpu",
                    callback: Callable[[int, int], None] | None = None,
                    on_frame: Callable[[int, str], None] | None = None,
                    motion_mask: np.ndarray | None = None) -> list:
    """Render ``settings.frames`` (with modal coordinates ``q``, one row per frame) into ``out_dir``.

    Returns the written paths in frame order. ``on_frame(frame, path)`` runs after each file is in place (for
    streaming), then ``callback(done, total)``. On any exception (cancel included) the files written by this call
    are removed before it propagates. ``motion_mask``: see :func:`iter_frames`."""
    q = check_coordinates(q, volume.k, len(settings.frames))
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    written: list = []
    total = len(settings.frames)
    try:
        done = 0
        for batch in iter_frames(model, photo, volume, q, size=settings.size, device=device,
                                 motion_mask=motion_mask):
            for rgb in batch:
                frame = settings.frames[done]
                path = os.path.join(out_dir, frame_filename(frame, settings.format, prefix))
                write_frame(path, rgb, settings.format)
                written.append(path)
                done += 1
                if on_frame is not None:
                    on_frame(frame, path)
                if callback is not None:
                    callback(done, total)
    except BaseException:
        for path in written:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        log.info("render stopped after %d of %d frames; removed the partial sequence", len(written), total)
        raise
    return written
