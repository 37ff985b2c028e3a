"""Blender image pixels → 8-bit sRGB PNG bytes (numpy + zlib; Blender ships no image library for Python).

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


def encode_png(rgb: np.ndarray, level: int = 6) -> bytes:
    """(H, W, 3) uint8 → PNG bytes (8-bit RGB, "Up" filter on every row)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"encode_png needs an (H, W, 3) uint8 array, got {rgb.shape}")
    h, w = rgb.shape[:2]
    rows = rgb.reshape(h, w * 3)
    up = rows.copy()
    up[1:] -= rows[:-1]  # uint8 arithmetic wraps modulo 256, as the PNG "Up" filter needs
    raw = np.empty((h, 1 + w * 3), dtype=np.uint8)
    raw[:, 0] = 2
    raw[:, 1:] = up
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
            + _chunk(b"IEND", b""))
