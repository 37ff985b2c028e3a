"""Plane grids, UV <-> map-pixel mapping and modal key values (numpy only; no bpy, no torch).

The add-on's bpy layer calls these functions; tests call them to predict what Blender must show.

Conventions (one place):

* A photo plane is a flat grid whose UVs are an affine function of its rest positions:
  ``position = origin + u * eu + v * ev``. ``eu`` is the object-space vector from the left to the right edge of
  the photo (u: 0 -> 1), ``ev`` from the bottom to the top edge (v: 0 -> 1; Blender's v points up).
* The spectral volume's map has ``W x H`` pixels, image y pointing down, pixel centres at integer + 0.5. The map
  spans the whole UV square: ``x_px = u * W``, ``y_px = (1 - v) * H``.
* A displacement of ``(dx, dy)`` map pixels moves a vertex by ``dx / W * eu - dy / H * ev`` object units.
* Modal shape keys: for every band k one key holds Re A_k and one holds Im A_k (as object-space offsets). With
  complex modal coordinates q_k(t) the shape is ``Re(sum_k A_k q_k) = sum_k Re A_k Re q_k - Im A_k Im q_k``, so
  the key values are ``value_re = Re q_k`` and ``value_im = -Im q_k`` (:func:`modal_key_values`). A seamless loop
  is ``q_k(t) = amplitude * exp(2 pi i k t / L)`` with ``L`` the loop length in frames
  (``spectral.loop_coordinates``).
* Depth from motion: the plane's front normal is ``eu x ev`` (unit; +Z for a plane made by the add-on or by
  Import Images as Planes, toward the camera that sees the photo unmirrored). A vertex is lifted along it by
  ``depth * rms / max(rms)``, rms = its root-mean-square displacement over the loop (:func:`depth_offsets`), so
  where a moving part folds over a still one the moving part is in front (the preview's softmax-splat order).
"""
from __future__ import annotations

import numpy as np

from . import spectral

WORKING_WIDTH = 256  # width of the working motion map (pixels); the backend predicts volumes at 256 x 160
DEFAULT_PIXELS_PER_VERTEX = 2  # default grid density: one vertex per 2 working-map pixels
MAX_KEY_VALUE = 10.0  # Blender clamps shape-key values to [slider_min, slider_max], at most [-10, 10]


# ----------------------------------------------------------------------------------------------------------------
# Grids
# ----------------------------------------------------------------------------------------------------------------

def default_grid_size(image_width: float, image_height: float, columns: int | None = None) -> tuple[int, int]:
    """Vertex columns and rows for a photo (or plane) of the given size: ``columns`` across (default: one per 2
    pixels of the 256-wide working map = 128), rows from the aspect ratio so that cells are square. Both >= 2."""
    if not (image_width > 0 and image_height > 0):
        raise ValueError(f"image size must be positive, got {image_width} x {image_height}")
    if columns is None:
        columns = WORKING_WIDTH // DEFAULT_PIXELS_PER_VERTEX
    columns = max(2, int(columns))
    rows = max(2, int(round((columns - 1) * image_height / image_width)) + 1)
    return columns, rows


def grid_topology(columns: int, rows: int):
    """Faces of a ``columns x rows`` vertex grid (row-major, row 0 at the bottom).

    Returns ``loop_vertex`` (4F,) int32 (counter-clockwise quads seen from +Z), ``loop_start`` (F,) int32 and
    ``uv`` (N, 2) float32 per-vertex UVs spanning [0, 1]^2.
    """
    if columns < 2 or rows < 2:
        raise ValueError(f"a grid needs at least 2 x 2 vertices, got {columns} x {rows}")
    idx = np.arange(columns * rows, dtype=np.int32).reshape(rows, columns)
    a = idx[:-1, :-1]
    b = idx[:-1, 1:]
    c = idx[1:, 1:]
    d = idx[1:, :-1]
    loop_vertex = np.stack([a, b, c, d], axis=-1).reshape(-1)
    n_faces = (columns - 1) * (rows - 1)
    loop_start = (np.arange(n_faces, dtype=np.int32) * 4)
    u = np.linspace(0.0, 1.0, columns, dtype=np.float64)
    v = np.linspace(0.0, 1.0, rows, dtype=np.float64)
    uu, vv = np.meshgrid(u, v)
    uv = np.stack([uu.reshape(-1), vv.reshape(-1)], axis=-1).astype(np.float32)
    return loop_vertex, loop_start, uv


def grid_positions(uv: np.ndarray, origin, eu, ev) -> np.ndarray:
    """Rest positions (N, 3) float32 of a plane from per-vertex UVs: origin + u * eu + v * ev."""
    uv = np.asarray(uv, dtype=np.float64)
    o, a, b = (np.asarray(x, dtype=np.float64).reshape(1, 3) for x in (origin, eu, ev))
    return (o + uv[:, :1] * a + uv[:, 1:2] * b).astype(np.float32)


def centered_frame(width: float, height: float):
    """(origin, eu, ev) of a ``width x height`` plane in the XY plane centred on the object origin."""
    return (np.array([-width / 2, -height / 2, 0.0]), np.array([width, 0.0, 0.0]), np.array([0.0, height, 0.0]))


def fit_uv_frame(co: np.ndarray, uv: np.ndarray):
    """Least-squares affine frame of a UV-mapped plane: ``co ~ origin + u * eu + v * ev``.

    ``co`` (N, 3) rest positions, ``uv`` (N, 2). Returns ``(origin, eu, ev, max_residual)``; the residual (object
    units) is large when the mesh is not a flat, linearly UV-mapped plane. Raises ValueError when the UVs are
    degenerate (all on a line or a point).
    """
    co = np.asarray(co, dtype=np.float64)
    uv = np.asarray(uv, dtype=np.float64)
    design = np.concatenate([np.ones((uv.shape[0], 1)), uv], axis=1)  # (N, 3)
    if uv.shape[0] < 3 or np.linalg.matrix_rank(design) < 3:
        raise ValueError("the UV map is degenerate (all UVs on a line): unwrap the plane so the photo covers it")
    sol, *_ = np.linalg.lstsq(design, co, rcond=None)  # (3, 3): rows origin, eu, ev
    residual = float(np.abs(design @ sol - co).max()) if co.size else 0.0
    return sol[0], sol[1], sol[2], residual


# ----------------------------------------------------------------------------------------------------------------
# UV <-> map pixels, pixels -> object units
# ----------------------------------------------------------------------------------------------------------------

def uv_to_pixels(uv: np.ndarray, map_width: int, map_height: int):
    """Per-vertex UVs (N, 2) -> map pixel positions (x right, y down) as two (N,) float64 arrays."""
    uv = np.asarray(uv, dtype=np.float64)
    return uv[:, 0] * map_width, (1.0 - uv[:, 1]) * map_height


def pixels_to_object(dx: np.ndarray, dy: np.ndarray, eu, ev, map_width: int, map_height: int) -> np.ndarray:
    """Map-pixel displacements ``dx``, ``dy`` (..., N) (image y down) -> object-space offsets (..., N, 3)."""
    eu = np.asarray(eu, dtype=np.float64)
    ev = np.asarray(ev, dtype=np.float64)
    du = np.asarray(dx, dtype=np.float64) / map_width
    dv = -np.asarray(dy, dtype=np.float64) / map_height
    return du[..., None] * eu + dv[..., None] * ev


def modal_offsets(coeffs: np.ndarray, uv: np.ndarray, eu, ev, factors: np.ndarray | None = None) -> np.ndarray:
    """Object-space offsets of the modal shape keys, (K, 2, N, 3) float32: [:, 0] = Re A_k, [:, 1] = Im A_k.

    ``coeffs`` (K, 4, H, W) = [Re x, Im x, Re y, Im y] in map pixels, sampled bilinearly at the vertex UVs.
    ``factors`` (N, 2), optional, scale each vertex's motion along eu and along ev (Pin Edges, ``core.edges``).
    """
    k, _, h, w = coeffs.shape
    x, y = uv_to_pixels(uv, w, h)
    s = spectral.sample_bilinear(coeffs, x, y)  # (K, 4, N)
    if factors is not None:
        s[:, 0:2] *= factors[:, 0]
        s[:, 2:4] *= factors[:, 1]
    re = pixels_to_object(s[:, 0], s[:, 2], eu, ev, w, h)  # (K, N, 3)
    im = pixels_to_object(s[:, 1], s[:, 3], eu, ev, w, h)
    return np.stack([re, im], axis=1).astype(np.float32)


def predicted_offsets(coeffs: np.ndarray, freqs_hz: np.ndarray, t_seconds: float, uv: np.ndarray, eu, ev,
                      amplitude: float = 1.0) -> np.ndarray:
    """What the baked plane must show at a time: ``displacement_at`` sampled at the vertex UVs, in object units
    (N, 3). The reference the tests compare Blender's evaluated mesh against."""
    k, _, h, w = coeffs.shape
    disp = spectral.displacement_at(coeffs, freqs_hz, t_seconds)  # (2, H, W)
    x, y = uv_to_pixels(uv, w, h)
    s = spectral.sample_bilinear(disp[None], x, y)[0]  # (2, N)
    return (amplitude * pixels_to_object(s[0], s[1], eu, ev, w, h)).astype(np.float32)


def plane_normal(eu, ev) -> np.ndarray:
    """Unit front normal ``eu x ev`` (3,) float64 of a plane: the side from which the photo reads unmirrored."""
    n = np.cross(np.asarray(eu, dtype=np.float64), np.asarray(ev, dtype=np.float64))
    length = float(np.linalg.norm(n))
    if length == 0.0:
        raise ValueError("the plane's UV frame is degenerate (eu and ev are parallel)")
    return n / length


def rms_motion(offsets: np.ndarray) -> np.ndarray:
    """Root-mean-square displacement over the loop (N,) float64, object units, of vertices whose modal key offsets
    are ``offsets`` (K, 2, N, 3) (as from :func:`modal_offsets`), at amplitude 1: the square root of
    ``spectral.mean_square_displacement`` (the constant term counts, as in the preview's splat order; Im A_0 never
    shows and does not)."""
    off = np.asarray(offsets, dtype=np.float64)
    k, _, n, _ = off.shape
    interleaved = off.transpose(0, 3, 1, 2).reshape(k, 6, n, 1)  # (K, [Re x, Im x, Re y, Im y, Re z, Im z], N, 1)
    return np.sqrt(spectral.mean_square_displacement(interleaved)[:, 0])


def depth_offsets(offsets: np.ndarray, eu, ev, depth: float) -> np.ndarray:
    """Depth-from-motion offsets (N, 3) float32: ``depth * rms / max(rms)`` along :func:`plane_normal`.

    ``offsets`` (K, 2, N, 3) modal key offsets (object units). The most moving vertex is lifted by exactly
    ``depth`` object units, a still one not at all; all zeros when nothing moves or ``depth`` is 0.
    """
    rms = rms_motion(offsets)
    peak = float(rms.max()) if rms.size else 0.0
    if peak <= 0.0 or depth == 0.0:
        return np.zeros((rms.shape[0], 3), dtype=np.float32)
    lift = float(depth) * rms / peak  # (N,)
    return (lift[:, None] * plane_normal(eu, ev)[None, :]).astype(np.float32)


def aspect_mismatch(volume_size, photo_size) -> float:
    """Relative difference of the aspect ratios (W / H) of the volume's source and the photo (0 = same)."""
    va = volume_size[0] / volume_size[1]
    pa = photo_size[0] / photo_size[1]
    return abs(va / pa - 1.0)


# ----------------------------------------------------------------------------------------------------------------
# Modal coordinates -> shape-key values
# ----------------------------------------------------------------------------------------------------------------

def loop_length(num_frames: int, volume_fps: float, scene_fps: float, speed: float = 1.0) -> int:
    """Loop length in scene frames: the volume's duration at the scene's frame rate, divided by ``speed``,
    rounded to whole frames (so the loop stays seamless) and at least 2."""
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    return max(2, int(round(num_frames / volume_fps * scene_fps / speed)))


def effective_loop(loop_frames: int, speed: float) -> int:
    """Loop length actually played: ``loop_frames / speed`` rounded to whole frames, at least 2."""
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    return max(2, int(round(loop_frames / speed)))


def modal_key_values(q: np.ndarray):
    """THE sign convention: complex modal coordinates q (K, F) -> shape-key values (value_re, value_im).

    The Re key of band k holds Re A_k, the Im key holds Im A_k, and the shape is Re(A_k q_k) =
    Re A_k Re q_k - Im A_k Im q_k: so ``value_re = Re q`` and ``value_im = -Im q``. Works for derivatives too
    (it is linear). Values are float64 (K, F).
    """
    q = np.asarray(q)
    return np.real(q).astype(np.float64), (-np.imag(q)).astype(np.float64)


def bezier_keyframes(frames: np.ndarray, values: np.ndarray, slopes: np.ndarray):
    """Bezier keyframe arrays for curves through ``values`` (C, F) at ``frames`` (F,) with the given derivatives
    per frame: returns ``co``, ``handle_left``, ``handle_right``, each (C, F, 2) float32, handles one third of the
    neighbouring key spacing away (cubic Hermite interpolation, exact at the keys)."""
    frames = np.asarray(frames, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    slopes = np.asarray(slopes, dtype=np.float64)
    c, f = values.shape
    gaps = np.diff(frames)
    left = np.concatenate([[gaps[0] if f > 1 else 1.0], gaps]) / 3.0  # (F,)
    right = np.concatenate([gaps, [gaps[-1] if f > 1 else 1.0]]) / 3.0
    fr = np.broadcast_to(frames, (c, f))
    co = np.stack([fr, values], axis=-1)
    hl = np.stack([fr - left, values - slopes * left], axis=-1)
    hr = np.stack([fr + right, values + slopes * right], axis=-1)
    return co.astype(np.float32), hl.astype(np.float32), hr.astype(np.float32)
