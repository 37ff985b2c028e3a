"""Wind arrows: turn a spectral volume's motion toward a direction near a point (numpy only; no bpy, no torch).

An arrow says "around here, things sway along this line". It changes the volume, not the keyframes, so the plane
re-bakes from the changed volume in a fraction of a second without the backend (addon/wind.py, docs/addon.md).

The transform. Every pixel's trajectory F_t(p) (2-vector, map pixels, y down) is mapped by a real 2x2 matrix
M(p): F'_t(p) = M(p) F_t(p). Because F_t = Re sum_k A_k exp(2 pi i f_k t) is linear in the coefficients, this is
``A_k'(p) = M(p) A_k(p)`` for every band k, Re and Im parts alike: the loop stays a loop, its frequencies and its
phases stay, only the direction (and the share of motion along it) changes. For one arrow with axis d (unit) and
weight w(p) in [0, 1]:

    M(p) = S(w) R(w theta)        S(w) = (1 + w (alpha - 1)) d d^T + (1 + w (beta - 1)) d_perp d_perp^T

* ``theta`` turns the dominant axis of the motion under the arrow onto d. It is one angle per arrow, from the
  weighted sum of the pixels' motion covariances C(p) = sum_{k>=1} (Re a_k Re a_k^T + Im a_k Im a_k^T) (the
  covariance of the oscillation over the loop, up to a factor 1/2; the constant k = 0 offset is not motion). One
  angle for the whole region keeps neighbouring pixels moving together: a per-pixel angle would flip the sense of
  motion between neighbours whose axes lie either side of the perpendicular, tearing the mesh.
* ``beta`` = :data:`ACROSS` keeps that fraction of the motion across the arrow, ``alpha`` stretches the motion
  along it so the region's mean-square motion (its energy) is unchanged. After the full transform (w = 1) the
  region's dominant axis is d exactly; a pixel whose own axis was delta off the region's ends tan(delta') =
  (beta / alpha) tan(delta) off d (beta / alpha <= 0.15).
* ``w(p) = strength * falloff(r / radius)``: 1 within half the radius of the arrow's base, a smoothstep down to 0 at
  the radius, 0 beyond: pixels farther than the radius are returned bit for bit.

Distances and angles are measured on the photo (``pixel_aspect`` = width / height of one map pixel on the plane),
so an arrow drawn at 45 degrees on a stretched map still means 45 degrees on the photo. Several arrows apply one
after another (in the order given), each measuring the motion the previous ones left: where two overlap, the later
one wins.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

ACROSS = 0.15  # share of the motion across the arrow kept at full weight
CORE = 0.5  # full weight within this fraction of the radius
MAX_STRETCH = 4.0  # alpha never exceeds this (a region moving almost only across the arrow)


@dataclasses.dataclass(frozen=True)
class WindArrow:
    """One arrow in map pixels (x right, y down): base ``(x, y)``, direction ``(dx, dy)`` (any length > 0), radius
    of influence ``radius`` (map pixels along y; along x it spans radius / pixel_aspect), ``strength`` 0..1 (how far the motion turns toward the arrow)."""

    x: float
    y: float
    dx: float
    dy: float
    radius: float
    strength: float = 1.0

    def __post_init__(self):
        for name in ("x", "y", "dx", "dy", "radius", "strength"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise ValueError(f"wind arrow {name} must be finite, got {value}")
            object.__setattr__(self, name, value)
        if math.hypot(self.dx, self.dy) <= 0.0:
            raise ValueError("a wind arrow needs a direction (its length is zero)")
        if self.radius <= 0.0:
            raise ValueError(f"a wind arrow needs a radius > 0, got {self.radius}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"wind arrow strength must be in [0, 1], got {self.strength}")


def falloff(s: np.ndarray) -> np.ndarray:
    """Weight at distance ``s`` (in radii): 1 up to :data:`CORE`, smoothstep down to 0 at 1, 0 beyond."""
    t = np.clip((1.0 - np.asarray(s, dtype=np.float64)) / (1.0 - CORE), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def motion_covariance(coeffs: np.ndarray) -> np.ndarray:
    """Per-pixel covariance of the oscillation, (3, H, W) float64 = [c_xx, c_xy, c_yy] over bands k >= 1.

    ``coeffs`` (K, 4, H, W) = [Re x, Im x, Re y, Im y]. Twice the covariance of F_t over the loop (Parseval)."""
    c = np.asarray(coeffs[1:], dtype=np.float64)
    xx = (c[:, 0] ** 2 + c[:, 1] ** 2).sum(axis=0)
    xy = (c[:, 0] * c[:, 2] + c[:, 1] * c[:, 3]).sum(axis=0)
    yy = (c[:, 2] ** 2 + c[:, 3] ** 2).sum(axis=0)
    return np.stack([xx, xy, yy])


def dominant_angle(cov: np.ndarray) -> np.ndarray:
    """Angle (radians, in (-pi/2, pi/2]) of the principal axis of covariances ``cov`` (3, ...) = [xx, xy, yy]."""
    xx, xy, yy = cov
    return 0.5 * np.arctan2(2.0 * xy, xx - yy)


def anisotropy(cov: np.ndarray) -> np.ndarray:
    """(lambda_1 - lambda_2) / (lambda_1 + lambda_2) of covariances (3, ...): 0 = no preferred axis, 1 = a line."""
    xx, xy, yy = cov
    trace = xx + yy
    return np.sqrt((xx - yy) ** 2 + 4.0 * xy ** 2) / np.maximum(trace, 1e-300)


def _wrap_axis(angle: float) -> float:
    """An axis angle difference folded into (-pi/2, pi/2]."""
    return (angle + 0.5 * math.pi) % math.pi - 0.5 * math.pi


def _rotation(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]]) if np.ndim(angle) == 0 else np.stack([np.stack([c, -s]), np.stack([s, c])])


def arrow_matrices(arrow: WindArrow, coeffs: np.ndarray, pixel_aspect: float = 1.0):
    """``(ys, xs, M)``: the slices of the map the arrow touches and its matrices there, (2, 2, h, w) float64, in
    photo-metric coordinates (x scaled by ``pixel_aspect``). ``None`` when it touches no pixel."""
    k, _, height, width = coeffs.shape
    reach_x = arrow.radius / pixel_aspect
    x0, x1 = max(0, int(math.floor(arrow.x - reach_x))), min(width, int(math.ceil(arrow.x + reach_x)) + 1)
    y0, y1 = max(0, int(math.floor(arrow.y - arrow.radius))), min(height, int(math.ceil(arrow.y + arrow.radius)) + 1)
    if x0 >= x1 or y0 >= y1 or arrow.strength == 0.0:
        return None
    ys, xs = slice(y0, y1), slice(x0, x1)
    px = (np.arange(x0, x1) + 0.5 - arrow.x) * pixel_aspect
    py = np.arange(y0, y1) + 0.5 - arrow.y
    w = arrow.strength * falloff(np.hypot(px[None, :], py[:, None]) / arrow.radius)  # (h, w)
    if not np.any(w > 0.0):
        return None
    cov = motion_covariance(_to_photo(coeffs[:, :, ys, xs], pixel_aspect))
    region = (cov * w).sum(axis=(1, 2))
    target = math.atan2(arrow.dy, arrow.dx * pixel_aspect)
    theta = _wrap_axis(target - float(dominant_angle(region))) if region[0] + region[2] > 0 else 0.0
    rotated = _rotate_cov(region, theta)
    c_dd, c_pp = _along_across(rotated, target)
    alpha = math.sqrt(1.0 + (1.0 - ACROSS ** 2) * c_pp / c_dd) if c_dd > 0 else 1.0
    alpha = min(alpha, MAX_STRETCH)
    d = np.array([math.cos(target), math.sin(target)])
    n = np.array([-d[1], d[0]])
    a = 1.0 + w * (alpha - 1.0)  # (h, w)
    b = 1.0 + w * (ACROSS - 1.0)
    stretch = a * np.outer(d, d)[:, :, None, None] + b * np.outer(n, n)[:, :, None, None]  # (2, 2, h, w)
    rot = _rotation(w * theta)  # (2, 2, h, w)
    return ys, xs, np.einsum("ijhw,jkhw->ikhw", stretch, rot), w


def _rotate_cov(cov, theta: float):
    r = _rotation(theta)
    m = np.array([[cov[0], cov[1]], [cov[1], cov[2]]])
    out = r @ m @ r.T
    return np.array([out[0, 0], out[0, 1], out[1, 1]])


def _along_across(cov, angle: float):
    d = np.array([math.cos(angle), math.sin(angle)])
    n = np.array([-d[1], d[0]])
    m = np.array([[cov[0], cov[1]], [cov[1], cov[2]]])
    return float(d @ m @ d), float(n @ m @ n)


def _to_photo(coeffs: np.ndarray, pixel_aspect: float) -> np.ndarray:
    """x coefficients in photo metric (times ``pixel_aspect``); y unchanged."""
    if pixel_aspect == 1.0:
        return coeffs
    out = np.array(coeffs, dtype=np.float64)
    out[:, 0:2] *= pixel_aspect
    return out


def apply_arrows(coeffs: np.ndarray, arrows, pixel_aspect: float = 1.0) -> np.ndarray:
    """The volume's coefficients (K, 4, H, W) with every arrow applied in turn: float32, a new array (pixels no
    arrow reaches keep their exact values)."""
    out = np.array(coeffs, dtype=np.float32, copy=True)
    for arrow in arrows:
        found = arrow_matrices(arrow, out, pixel_aspect)
        if found is None:
            continue
        ys, xs, m, w = found
        if pixel_aspect != 1.0:  # photo metric -> map pixels: M_px = D^-1 M D, D = diag(aspect, 1)
            m = m.copy()
            m[0, 1] /= pixel_aspect
            m[1, 0] *= pixel_aspect
        block = out[:, :, ys, xs].astype(np.float64)  # (K, 4, h, w)
        x = block[:, 0:2]  # [Re x, Im x]
        y = block[:, 2:4]
        new_x = m[0, 0] * x + m[0, 1] * y
        new_y = m[1, 0] * x + m[1, 1] * y
        touched = w > 0.0
        block[:, 0:2] = np.where(touched, new_x, x)
        block[:, 2:4] = np.where(touched, new_y, y)
        out[:, :, ys, xs] = block.astype(np.float32)
    return out


def touched_vertices(changed: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the vertices at map pixel positions ``x``, ``y`` (N,) whose bilinear sample (the four pixels
    around them, as ``spectral.sample_bilinear`` picks them) reads a pixel where ``changed`` (H, W) is True: the
    vertices a changed volume moves, so a live re-bake samples only those."""
    h, w = changed.shape
    px = np.clip(np.asarray(x, dtype=np.float64) - 0.5, 0.0, w - 1)
    py = np.clip(np.asarray(y, dtype=np.float64) - 0.5, 0.0, h - 1)
    x0 = np.minimum(np.floor(px).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(py).astype(np.int64), max(h - 2, 0))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    hit = changed[y0, x0] | changed[y0, x1] | changed[y1, x0] | changed[y1, x1]
    return np.flatnonzero(hit)
