"""Blender image pixels → 8-bit sRGB PNG bytes, and masks → greyscale PNG (numpy + zlib; Blender ships no image
library for Python).

Used for photos that are not a readable file: generated, painted/unsaved, or in a format the backend does not
read (EXR, HDR). Runs on the worker thread (compression of a large photo takes a moment).
"""
from __future__ import annotations

import struct
import zlib

import numpy as np


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Scene-linear [0, 1] → sRGB-encoded [0, 1] (IEC 61966-2-1)."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


def pixels_to_rgb8(pixels: np.ndarray, width: int, height: int, channels: int = 4,
                   linear: bool = False) -> np.ndarray:
    """Blender's flat ``Image.pixels`` (rows bottom-up, floats) → (H, W, 3) uint8 RGB, row 0 = top.

    ``linear`` = the values are scene-linear (float images), so they are sRGB-encoded first; byte images already
    hold sRGB-encoded values."""
    px = np.asarray(pixels, dtype=np.float32).reshape(height, width, channels)[::-1]
    if channels == 1:
        rgb = np.repeat(px, 3, axis=2)
    elif channels == 2:  # grey + alpha
        rgb = np.repeat(px[..., :1], 3, axis=2)
    else:
        rgb = px[..., :3]
    if linear:
        rgb = linear_to_srgb(rgb)
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png(pixels: np.ndarray, level: int = 6) -> bytes:
    """(H, W, 3) uint8 RGB or (H, W) uint8 greyscale -> PNG bytes (8-bit, "Up" filter on every row)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim == 2:
        channels, colour_type = 1, 0
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        channels, colour_type = 3, 2
    else:
        raise ValueError(f"encode_png needs an (H, W, 3) or (H, W) uint8 array, got {pixels.shape}")
    if min(pixels.shape[:2]) < 1:
        raise ValueError(f"encode_png needs at least one pixel, got {pixels.shape}")
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, w * channels)
    up = rows.copy()
    up[1:] -= rows[:-1]  # uint8 arithmetic wraps modulo 256, as the PNG "Up" filter needs
    raw = np.empty((h, 1 + w * channels), dtype=np.uint8)
    raw[:, 0] = 2
    raw[:, 1:] = up
    header = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
            + _chunk(b"IEND", b""))


def encode_mask(mask: np.ndarray) -> bytes:
    """A mask (h, w) in [0, 1] -> 8-bit greyscale PNG bytes (white = 1, row 0 = top)."""
    grey = np.clip(np.rint(np.asarray(mask, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    return encode_png(grey)
