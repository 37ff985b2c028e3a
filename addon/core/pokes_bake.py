"""Pure helpers of the pokes layer (numpy only; no bpy, no torch): poke arrows on a photo plane -> map pixels ->
:class:`modal.Poke`, view rays -> plane points, and the modal coordinates the plane's keys get (loop + pokes).

Conventions (docs/pokes.md):

* Points are in the photo plane's object (local) space. The plane is ``origin + u * eu + v * ev``
  (``core.mesh.fit_uv_frame``), and the volume's map spans the UV square: ``x_px = u * W``, ``y_px = (1 - v) * H``
  — the mapping the bake uses. Points off the plane are projected onto it (least squares in u, v).
* A poke arrow drags the photo point under its base to the point under its tip: its force is ``tip - base`` in map
  pixels (image y down), times the trigger key's value.
* The loop and the pokes drive the same modal keys: ``q_k(f) = loop_amplitude * exp(2 pi i k (f - phase) / L)
  + q_poke_k(f)``, and the pokes are simulated with the loop's own band frequencies ``k * fps / L`` so both stay in
  tune (``ModalParams.speed`` is 1: the speed is already in ``L``).
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from . import mesh as core_mesh
from . import modal, spectral


# ----------------------------------------------------------------------------------------------------------------
# Plane space <-> map pixels, view rays
# ----------------------------------------------------------------------------------------------------------------

def plane_to_pixels(points, origin, eu, ev, width: int, height: int):
    """Plane-local points (N, 3) -> map pixel positions (x right, y down) as two (N,) float64 arrays."""
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    basis = np.stack([np.asarray(eu, dtype=np.float64), np.asarray(ev, dtype=np.float64)], axis=1)  # (3, 2)
    uv = (points - np.asarray(origin, dtype=np.float64)) @ np.linalg.pinv(basis).T  # (N, 2)
    return core_mesh.uv_to_pixels(uv, width, height)


def pixels_to_plane(x, y, origin, eu, ev, width: int, height: int) -> np.ndarray:
    """Map pixel positions (N,) x, y -> plane-local points (N, 3) (the inverse of :func:`plane_to_pixels`)."""
    u = np.asarray(x, dtype=np.float64) / width
    v = 1.0 - np.asarray(y, dtype=np.float64) / height
    o, a, b = (np.asarray(e, dtype=np.float64) for e in (origin, eu, ev))
    return o + np.multiply.outer(u, a) + np.multiply.outer(v, b)


def inside_map(x: float, y: float, width: int, height: int) -> bool:
    return 0.0 <= x <= width and 0.0 <= y <= height


def ray_plane_hit(ray_origin, ray_direction, origin, eu, ev):
    """Where a ray (plane-local origin and direction, (3,)) meets the plane's infinite carrier: (3,) or None when
    it runs parallel to the plane or the plane lies behind it."""
    o = np.asarray(ray_origin, dtype=np.float64)
    d = np.asarray(ray_direction, dtype=np.float64)
    normal = np.cross(np.asarray(eu, dtype=np.float64), np.asarray(ev, dtype=np.float64))
    denom = float(normal @ d)
    if abs(denom) <= 1e-12 * max(np.linalg.norm(normal) * np.linalg.norm(d), 1e-300):
        return None
    t = float(normal @ (np.asarray(origin, dtype=np.float64) - o)) / denom
    if t < 0.0:
        return None
    return o + t * d


def arrow_poke(base, tip, frame: float, origin, eu, ev, width: int, height: int, kind: str = "drag",
               scale: float = 1.0) -> modal.Poke:
    """The poke of an arrow from ``base`` to ``tip`` (plane-local points): at the pixel under the base, force
    ``scale * (pixel under tip - pixel under base)``. Raises ValueError when the base lies off the photo."""
    x, y = plane_to_pixels(np.stack([np.asarray(base, float), np.asarray(tip, float)]), origin, eu, ev,
                           width, height)
    if not inside_map(x[0], y[0], width, height):
        raise ValueError(f"the poke lies off the photo (map pixel {x[0]:.1f}, {y[0]:.1f} of {width}x{height}): "
                         "move its Empty onto the plane")
    return modal.Poke(frame=frame, x=x[0], y=y[0], force_x=scale * (x[1] - x[0]), force_y=scale * (y[1] - y[0]),
                      kind=kind)


# ----------------------------------------------------------------------------------------------------------------
# What gets simulated, and the result
# ----------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PokeRequest:
    """Everything one simulation of a plane depends on (frozen; :meth:`signature` tells when to re-simulate)."""

    frame_start: int
    frame_end: int
    fps: float
    loop_frames: int  # L: the loop's length in scene frames (speed included)
    phase_frame: float  # scene frame where the loop's phase is 0
    loop_amplitude: float  # amplitude * loop strength (0 = still until poked)
    params: modal.ModalParams
    pokes: tuple = ()
    source: str = ""  # identifies the spectral volume (path and modification time)

    def frames(self) -> np.ndarray:
        """Scene frames keyed: every frame of the range (at least two)."""
        return np.arange(self.frame_start, max(self.frame_end, self.frame_start + 1) + 1, dtype=np.float64)

    def signature(self) -> str:
        return hashlib.sha1(repr(self).encode()).hexdigest()


def loop_frequencies(k: int, fps: float, loop_frames: int) -> np.ndarray:
    """Band frequencies (K,) in Hz of the loop as played in the scene: k * fps / L."""
    return np.arange(k, dtype=np.float64) * float(fps) / float(loop_frames)


def motion(coeffs: np.ndarray, request: PokeRequest):
    """Modal coordinates of loop + pokes over the request's frames.

    Returns ``(frames (F,), q (K, F) complex128, dq (K, F) complex128 per frame)``, bands first as
    ``animation.write_modal_coordinates`` keys them: q = loop_amplitude * exp(2 pi i k (f - phase) / L) + q_poke(f).
    """
    k = coeffs.shape[0]
    frames = request.frames()
    q, dq = spectral.loop_coordinates(k, frames, request.loop_frames, request.loop_amplitude,
                                      request.phase_frame)  # (F, K)
    if request.pokes:
        freqs = loop_frequencies(k, request.fps, request.loop_frames)
        q_poke, v_poke = modal.simulate_state(coeffs, freqs, request.pokes, frames.shape[0], request.fps,
                                              request.params, frame_start=frames[0])
        q = q + q_poke
        dq = dq + v_poke / request.fps
    return frames, q.T, dq.T


def peak_key_value(q: np.ndarray) -> float:
    """Largest |shape-key value| the coordinates need (Blender clamps them to +-MAX_KEY_VALUE)."""
    q = np.asarray(q)
    if q.size == 0:
        return 0.0
    return float(max(np.abs(q.real).max(), np.abs(q.imag).max()))
