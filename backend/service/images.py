"""Uploaded photos: base64 → bytes → checked, decoded RGB uint8 array. Every bad input is a ServiceError (4xx).

Checks, in order: valid base64, not empty, a format Pillow reads, pixel count from the header (before any pixel is
decoded, so a decompression bomb costs nothing), complete decode (truncated files fail), minimum size. Pixels are
used as stored (EXIF orientation ignored, as Blender does), alpha is dropped.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ServiceError

MIN_SIDE = 16
FORMATS = "PNG, JPEG, WebP, TIFF or BMP"


@dataclasses.dataclass(frozen=True)
class Photo:
    pixels: np.ndarray  # (H, W, 3) uint8 RGB, downscaled to the working size
    size: tuple  # (W, H) of the uploaded photo (after EXIF orientation)


def decode_base64(text: str, field: str = "image") -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ServiceError(422, "invalid_base64", f"'{field}' is not valid base64: send the file's bytes "
                                                  "base64-encoded") from None
    if not data:
        raise ServiceError(422, "empty_image", f"'{field}' is empty: send the photo's file bytes")
    return data


def decode_image(data: bytes, max_pixels: int, max_side: int) -> Photo:
    """Decode ``data`` to RGB; downscale so the longest side is at most ``max_side`` (Lanczos)."""
    if not data:
        raise ServiceError(422, "empty_image", "The image is empty: send the photo's file bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            if isinstance(exc, UnidentifiedImageError):
                raise ServiceError(422, "invalid_image", f"The upload is not an image this backend can read: send "
                                                         f"a {FORMATS} file") from None
            raise _too_many(None, max_pixels) from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise ServiceError(422, "invalid_image", f"The image could not be read ({exc}): send a {FORMATS} "
                                                     "file") from None
        w, h = image.size
        if w * h > max_pixels:
            raise _too_many((w, h), max_pixels)
        try:
            image.load()
            rgb = _to_rgb(image)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombWarning,
                Image.DecompressionBombError) as exc:
            raise ServiceError(422, "invalid_image", f"The image is truncated or corrupt ({exc}): export it "
                                                     f"again as {FORMATS}") from None
    w, h = rgb.size
    if min(w, h) < MIN_SIDE:
        raise ServiceError(422, "image_too_small", f"The image is {w}x{h} pixels: send one at least {MIN_SIDE} "
                                                   f"pixels on each side")
    scale = max_side / max(w, h)
    if scale < 1.0:
        rgb = rgb.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    return Photo(np.asarray(rgb, dtype=np.uint8).copy(), (w, h))


def decode_mask(text: str, field: str, code: str, max_pixels: int, check=None) -> tuple:
    """(file bytes, map (h, w) float32 in [0, 1]) of a greyscale mask image sent base64 in ``field`` (white = 1).
    Not base64 / empty: 422 ``invalid_base64`` / ``empty_image`` (as every image field); unreadable or unusable
    (``check`` raises ValueError): 422 ``code``; more than ``max_pixels``: 413 ``too_many_pixels``."""
    from backend.render.render import MaskTooLarge, read_mask_image

    data = decode_base64(text, field=field)
    try:
        mask = read_mask_image(io.BytesIO(data), max_pixels)
        return data, (mask if check is None else check(mask))
    except MaskTooLarge as exc:
        raise ServiceError(413, "too_many_pixels", f"'{field}': {exc}; send a smaller image") from None
    except ValueError as exc:
        raise ServiceError(422, code, f"Unusable '{field}': {exc}; send a greyscale PNG (white = moves, black = "
                                      f"still)") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB. EXIF orientation is ignored on purpose: Blender shows the pixels as stored, and the motion must
    line up with the plane's texture. 16-bit greyscale is scaled (Pillow's convert would clip it)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or grey.max() > 255 else 255.0
        grey8 = np.clip(grey * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(grey8[..., None], 3, axis=2))
    return image.convert("RGB")


def _too_many(size, max_pixels: int) -> ServiceError:
    what = f"{size[0]}x{size[1]} = {size[0] * size[1]:,} pixels" if size else "too many pixels"
    return ServiceError(413, "too_many_pixels", f"The image has {what}; this backend accepts at most "
                                                f"{max_pixels:,} (serve --max-pixels). Send a smaller image")
