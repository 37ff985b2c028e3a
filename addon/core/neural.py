"""Neural frames, the add-on's side without bpy: the render request, modal coordinates from shape-key values, the
frame files and how an image sequence maps them to scene frames.

The backend's ``render`` job (docs/renderer.md) takes per requested frame the K complex modal coordinates q_k as
[re, im] pairs: the frame shows F = Re(sum_k A_k q_k). The add-on's modal keys hold Re A_k ("re" key) and Im A_k
("im" key) with values value_re = Re q and value_im = -Im q (``core.mesh.modal_key_values``), so whatever the
timeline plays (loop, pokes, amplitude, loop strength) is q = value_re - i value_im.
"""
from __future__ import annotations

import base64
import re

import numpy as np

from .hint import fill_from_neighbours

FRAME_PREFIX = "frame_"
FRAME_RE = re.compile(r"^frame_(\d{4,})\.(png|exr)$")
FORMATS = ("png", "exr")


def coordinates_from_key_values(value_re: np.ndarray, value_im: np.ndarray) -> np.ndarray:
    """Key values (K, N) of the Re and Im keys -> modal coordinates (N, K, 2) float64 [re, im] for the request."""
    value_re = np.asarray(value_re, dtype=np.float64)
    value_im = np.asarray(value_im, dtype=np.float64)
    if value_re.shape != value_im.shape or value_re.ndim != 2:
        raise ValueError(f"key values must be two (K, N) arrays, got {value_re.shape} and {value_im.shape}")
    return np.stack([value_re.T, -value_im.T], axis=-1)


def anchor_mask(uv: np.ndarray, weights: np.ndarray, max_side: int = 1024) -> np.ndarray:
    """The Anchor group as an image-space motion mask (h, w) float32 in [0, 1], row 0 = top of the photo.

    ``uv`` (N, 2) per-vertex UVs, ``weights`` (N,) the group's weight per vertex (0 where a vertex is not in it),
    the factor the mesh path applies to each vertex's shape-key motion. One cell per distinct U and V of the
    vertices (a grid plane maps vertex to cell one to one; the backend stretches the mask with corners on corners,
    which interpolates between vertices as the mesh does); cells no vertex falls in take their neighbours' mean.
    """
    uv = np.asarray(uv, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2 or weights.shape != (uv.shape[0],) or uv.shape[0] == 0:
        raise ValueError(f"anchor mask needs (N, 2) UVs and N weights, got {uv.shape} and {weights.shape}")
    uv = np.clip(uv, 0.0, 1.0)
    gw = int(np.clip(len(np.unique(np.round(uv[:, 0], 5))), 2, max_side))
    gh = int(np.clip(len(np.unique(np.round(uv[:, 1], 5))), 2, max_side))
    col = np.rint(uv[:, 0] * (gw - 1)).astype(np.int64)
    row = np.rint((1.0 - uv[:, 1]) * (gh - 1)).astype(np.int64)
    total = np.zeros((gh, gw))
    count = np.zeros((gh, gw))
    np.add.at(total, (row, col), np.clip(weights, 0.0, 1.0))
    np.add.at(count, (row, col), 1.0)
    known = count > 0
    mask = fill_from_neighbours(np.where(known, total / np.maximum(count, 1.0), 0.0), known)
    return mask.astype(np.float32)


def frame_size(photo_width: int, photo_height: int, long_side: int) -> tuple:
    """(W, H) of the frames: the photo's aspect, longer side ``long_side`` at most (never upscaled), >= 16."""
    if photo_width < 1 or photo_height < 1:
        raise ValueError(f"the photo has no pixels ({photo_width}x{photo_height})")
    scale = min(1.0, long_side / max(photo_width, photo_height))
    return max(16, int(round(photo_width * scale))), max(16, int(round(photo_height * scale)))


def frame_filename(frame: int, fmt: str = "png") -> str:
    """The backend's file name of a frame: frame_0001.png (the number is the scene frame)."""
    return f"{FRAME_PREFIX}{int(frame):04d}.{fmt}"


def render_body(image: bytes, volume: bytes, frames, modal: np.ndarray, fmt: str = "png", size=None,
                renderer: str | None = None, motion_mask: bytes | None = None) -> dict:
    """JSON body of ``POST /v1/jobs/render`` (``motion_mask``: PNG bytes from ``png.encode_mask``)."""
    frames = [int(f) for f in frames]
    modal = np.asarray(modal, dtype=np.float64)
    if modal.shape[0] != len(frames) or modal.ndim != 3 or modal.shape[2] != 2:
        raise ValueError(f"modal coordinates {modal.shape} do not match {len(frames)} frames x K x 2")
    if fmt not in FORMATS:
        raise ValueError(f"unknown frame format {fmt!r}: use one of {FORMATS}")
    body = {"image": base64.b64encode(image).decode("ascii"), "volume": base64.b64encode(volume).decode("ascii"),
            "frames": frames, "modal": modal.tolist(), "format": fmt}
    if size is not None:
        body["size"] = [int(size[0]), int(size[1])]
    if renderer:
        body["renderer"] = renderer
    if motion_mask:
        body["motion_mask"] = base64.b64encode(motion_mask).decode("ascii")
    return body


def sequence_user_settings(first_frame: int, count: int) -> dict:
    """Image-user settings so that scene frame f shows file number f of a sequence frame_<first>..: Blender shows
    file ``(f - frame_start + 1) + frame_offset`` for f in [frame_start, frame_start + frame_duration - 1]."""
    if count < 1 or first_frame < 0:
        raise ValueError(f"a sequence needs at least one frame from a frame >= 0, got {count} from {first_frame}")
    return {"frame_start": int(first_frame), "frame_offset": int(first_frame) - 1, "frame_duration": int(count)}


def contiguous(frames) -> bool:
    frames = list(frames)
    return bool(frames) and frames == list(range(frames[0], frames[0] + len(frames)))
