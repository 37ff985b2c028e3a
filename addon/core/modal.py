"""Interactive dynamics: modal simulation of "pokes" on a spectral volume (numpy only, no bpy, no torch).

Every frequency band k >= 1 of a spectral volume is a unit-mass damped oscillator in modal space::

    q_k'' + gamma_k q_k' + omega_k^2 q_k = 0        omega_k = 2 pi f_k * speed,  gamma_k = alpha + beta omega_k^2

and the displacement of pixel p is ``F_t(p) = Re sum_k A_k(p) q_k(t)`` — the loop's convention, where the loop is
``q_k(t) = exp(2 pi i f_k t)`` (exactly a free undamped solution, see :func:`step_frames`). The k = 0 band is a
constant offset with no restoring force and is excluded: ``q[:, 0] == 0``.

A poke at pixel p with image-space force d (pixels, y down) sets the modal state, per band k >= 1::

    drag    (dragged by d and released at rest):  q_k = s * conj(d . A_k(p)) / N,   q_k' = 0
    impulse (a flick in direction d):             q_k = 0,                          q_k' = omega_k * s * conj(d . A_k(p)) / N
    N = max( sum_{j>=1} |d_hat . A_j(p)|^2 , (floor * a_ref)^2 ),   s = strength

``conj(d . A_k)`` is the paper's magnitude |d_hat . A_k| |d| with phase -arg(d_hat . A_k). Dividing by N makes the
units work (A in pixels, q dimensionless like the loop's exp(i w t)): a drag of d moves the poked pixel by exactly
``strength * |d|`` along d at the poke frame; it is the smallest modal state (least sum |q_k|^2) that does so.
``a_ref`` is the volume's typical strong motion (99th percentile over pixels of sqrt(sum_{k>=1} |A_k|^2)); the
floor keeps pokes on (almost) static pixels from exploding: they respond proportionally less, and no pixel whose
amplitude is at most a_ref moves more than ``strength * |d| / floor``. An impulse gives every band the velocity that
makes an undamped band swing to the same amplitude as the drag.

Pokes superpose (the system is linear): each poke *adds* its state at its time. Time is stepped with the exact
solution of the linear oscillator — the 2x2 transition matrix exp(M dt) in closed form (under-, critically- and
over-damped) — so any frame rate is stable, energy never grows and no substeps are needed. A poke at a fractional
frame is propagated exactly from its time to the next frame.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Iterable, Sequence

import numpy as np

from . import spectral

log = logging.getLogger(__name__)

KINDS = ("drag", "impulse")
REFERENCE_PERCENTILE = 99.0


# ----------------------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------------------

def _finite(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return v


@dataclasses.dataclass(frozen=True)
class Poke:
    """One poke. ``frame`` (scene frame, fractional allowed) is when it happens; ``x``, ``y`` where, in pixels of
    the volume's map (x right, y down, pixel centres at integer + 0.5); ``force_x``, ``force_y`` the drag vector d
    in pixels of the map (y down). ``kind``: "drag" (dragged by d, released at rest) or "impulse" (a flick)."""

    frame: float
    x: float
    y: float
    force_x: float
    force_y: float
    kind: str = "drag"

    def __post_init__(self):
        for name in ("frame", "x", "y", "force_x", "force_y"):
            object.__setattr__(self, name, _finite(f"poke {name}", getattr(self, name)))
        if self.kind not in KINDS:
            raise ValueError(f"unknown poke kind {self.kind!r}: use one of {', '.join(repr(k) for k in KINDS)}")

    @property
    def force(self) -> np.ndarray:
        return np.array([self.force_x, self.force_y], dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class ModalParams:
    """Simulation settings. ``alpha``, ``beta``: Rayleigh damping gamma = alpha + beta * omega^2 (paper values);
    ``speed`` scales every band's frequency; ``strength`` scales every poke; ``floor`` (0..1] is the relative
    amplitude below which a poked pixel counts as weakly moving and responds proportionally less."""

    alpha: float = 0.4
    beta: float = 0.08
    speed: float = 1.0
    strength: float = 1.0
    floor: float = 0.3

    def __post_init__(self):
        for name in ("alpha", "beta", "speed", "strength", "floor"):
            object.__setattr__(self, name, _finite(f"modal parameter {name}", getattr(self, name)))
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"damping must not be negative (alpha={self.alpha}, beta={self.beta}): "
                             "negative damping adds energy and the motion would grow without bound")
        if self.speed <= 0:
            raise ValueError(f"speed must be positive, got {self.speed}")
        if self.strength < 0:
            raise ValueError(f"strength must be zero or positive, got {self.strength}: "
                             "reverse a poke's direction instead")
        if not 0 < self.floor <= 1:
            raise ValueError(f"floor must be in (0, 1], got {self.floor}")


def _check_coeffs(coeffs) -> np.ndarray:
    if not isinstance(coeffs, np.ndarray) or coeffs.dtype.kind != "f":
        raise ValueError("coeffs must be a floating-point numpy array of shape (K, 4, H, W)")
    if coeffs.ndim != 4 or coeffs.shape[1] != 4 or min(coeffs.shape) < 1:
        raise ValueError(f"coeffs must have shape (K, 4, H, W) with [Re x, Im x, Re y, Im y] channels, "
                         f"got {tuple(coeffs.shape)}")
    return coeffs


def _check_freqs(freqs_hz, k: int) -> np.ndarray:
    f = np.asarray(freqs_hz, dtype=np.float64)
    if f.shape != (k,):
        raise ValueError(f"freqs_hz must have one frequency per band, shape ({k},), got {f.shape}")
    if not np.all(np.isfinite(f)) or np.any(f < 0):
        raise ValueError("freqs_hz must be finite and non-negative (Hz)")
    return f


def _check_fps(fps) -> float:
    v = _finite("fps", fps)
    if v <= 0:
        raise ValueError(f"fps must be positive, got {fps}: use the scene's frame rate (fps / fps_base)")
    return v


def _check_num_frames(num_frames) -> int:
    n = _finite("num_frames", num_frames)
    if isinstance(num_frames, bool) or n != int(n) or n < 1:
        raise ValueError(f"num_frames must be a positive whole number, got {num_frames!r}")
    return int(n)


# ----------------------------------------------------------------------------------------------------------------
# Oscillator constants and the exact transition matrix
# ----------------------------------------------------------------------------------------------------------------

def band_constants(freqs_hz, params: ModalParams = ModalParams()):
    """(omega, gamma), each (K,) float64 in 1/s. Band 0 gets omega = gamma = 0; it is never excited."""
    f = np.asarray(freqs_hz, dtype=np.float64)
    omega = 2.0 * np.pi * f * params.speed
    gamma = params.alpha + params.beta * omega ** 2
    omega[:1] = 0.0
    gamma[:1] = 0.0
    return omega, gamma


def transition(omega, gamma, t) -> np.ndarray:
    """Exact state transition Phi(t) = exp(M t), M = [[0, 1], [-omega^2, -gamma]], for state (q, q').

    Arguments broadcast together; returns (..., 2, 2) float64. Closed form with h = gamma / 2::

        Phi = e^{-h t} [[c + h s, s], [-omega^2 s, c - h s]]
        under-damped  (omega > h):  c = cos(mu t),  s = sin(mu t) / mu,    mu = sqrt(omega^2 - h^2)
        critical      (omega = h):  c = 1,          s = t
        over-damped   (omega < h):  c = cosh(nu t), s = sinh(nu t) / nu,  nu = sqrt(h^2 - omega^2)

    The over-damped case is evaluated as a sum of two decaying exponentials when nu t is large (no overflow).
    """
    omega, gamma, t = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (omega, gamma, t)))
    h = 0.5 * gamma
    disc = omega ** 2 - h ** 2
    decay = np.exp(-h * t)
    ec = np.empty(omega.shape)  # e^{-ht} c
    es = np.empty(omega.shape)  # e^{-ht} s
    under, over = disc > 0, disc < 0
    crit = ~(under | over)

    mu = np.sqrt(disc[under])
    ec[under] = decay[under] * np.cos(mu * t[under])
    es[under] = decay[under] * np.sin(mu * t[under]) / mu

    ec[crit] = decay[crit]
    es[crit] = decay[crit] * t[crit]

    nu = np.sqrt(-disc[over])
    to, ho, do = t[over], h[over], decay[over]
    x = nu * to
    small = np.abs(x) < 1.0
    ec_o = np.empty(nu.shape)
    es_o = np.empty(nu.shape)
    ec_o[small] = do[small] * np.cosh(x[small])
    es_o[small] = do[small] * np.sinh(x[small]) / nu[small]
    big = ~small
    slow = np.exp(-(omega[over][big] ** 2 / (ho[big] + nu[big])) * to[big])  # e^{(nu - h) t}, no cancellation
    fast = np.exp(-(ho[big] + nu[big]) * to[big])
    ec_o[big] = 0.5 * (slow + fast)
    es_o[big] = 0.5 * (slow - fast) / nu[big]
    ec[over], es[over] = ec_o, es_o

    phi = np.empty(omega.shape + (2, 2))
    phi[..., 0, 0] = ec + h * es
    phi[..., 0, 1] = es
    phi[..., 1, 0] = -(omega ** 2) * es
    phi[..., 1, 1] = ec - h * es
    return phi


def step_frames(omega, gamma, dt: float, kicks: np.ndarray, initial=None):
    """Exact stepper. ``kicks`` (N, K, 2) complex state increments (q, q') added at frames 0..N-1 (after the
    step into that frame); ``initial`` (K, 2) complex state just before frame 0's kick (default rest).

    Returns (q, qdot), each (N, K) complex128. With ``initial = (1, i omega_k)`` and no damping this reproduces the
    loop's q_k(t) = exp(i omega_k t) (the loop is a free solution of the undamped oscillator)."""
    kicks = np.asarray(kicks, dtype=np.complex128)
    n, k = kicks.shape[:2]
    phi = transition(omega, gamma, dt)  # (K, 2, 2)
    a, b, c, d = phi[:, 0, 0], phi[:, 0, 1], phi[:, 1, 0], phi[:, 1, 1]
    q_out = np.empty((n, k), dtype=np.complex128)
    v_out = np.empty((n, k), dtype=np.complex128)
    if initial is None:
        q = np.zeros(k, dtype=np.complex128)
        v = np.zeros(k, dtype=np.complex128)
    else:
        init = np.asarray(initial, dtype=np.complex128)
        q, v = init[:, 0].copy(), init[:, 1].copy()
    kq, kv = kicks[..., 0], kicks[..., 1]
    for i in range(n):
        if i > 0:
            q, v = a * q + b * v, c * q + d * v
        q = q + kq[i]
        v = v + kv[i]
        q_out[i] = q
        v_out[i] = v
    return q_out, v_out


# ----------------------------------------------------------------------------------------------------------------
# Projection of a poke onto the modes
# ----------------------------------------------------------------------------------------------------------------

def modal_basis_at(coeffs: np.ndarray, x: float, y: float) -> np.ndarray:
    """A_k(p) at one pixel position (bilinear, pixels of the map, x right, y down): (K, 2) complex128 [x, y]."""
    coeffs = _check_coeffs(coeffs)
    s = spectral.sample_bilinear(coeffs, np.array([x], dtype=np.float64), np.array([y], dtype=np.float64))
    s = s[:, :, 0].astype(np.float64)  # (K, 4)
    return s[:, 0::2] + 1j * s[:, 1::2]


def reference_amplitude(coeffs: np.ndarray) -> float:
    """Typical strong motion of the volume in pixels: the 99th percentile over pixels of sqrt(sum_{k>=1} |A_k|^2)."""
    coeffs = _check_coeffs(coeffs)
    c = coeffs[1:].astype(np.float32, copy=False)
    power = np.einsum("kchw,kchw->hw", c, c, dtype=np.float64) if len(c) else np.zeros(coeffs.shape[2:])
    return float(np.sqrt(np.percentile(power, REFERENCE_PERCENTILE)))


def poke_state(basis: np.ndarray, omega: np.ndarray, poke: Poke, params: ModalParams,
               reference: float) -> np.ndarray:
    """The modal state (K, 2) complex [q, q'] a poke sets, from A_k(p) ``basis`` (K, 2). Band 0 stays zero."""
    d = poke.force
    length = float(np.hypot(d[0], d[1]))
    state = np.zeros((basis.shape[0], 2), dtype=np.complex128)
    if length == 0.0 or params.strength == 0.0:
        return state
    proj = basis[1:] @ d  # (K-1,) complex: d . A_k
    norm = max(float(np.sum(np.abs(proj) ** 2)) / length ** 2, (params.floor * reference) ** 2)
    if norm == 0.0:
        log.debug("poke at (%.1f, %.1f) hits a volume without motion: no response", poke.x, poke.y)
        return state
    q = params.strength * np.conj(proj) / norm
    if poke.kind == "drag":
        state[1:, 0] = q
    else:  # impulse
        state[1:, 1] = omega[1:] * q
    return state


# ----------------------------------------------------------------------------------------------------------------
# Simulation
# ----------------------------------------------------------------------------------------------------------------

def _check_poke_inside(poke: Poke, width: int, height: int) -> None:
    if not (0.0 <= poke.x <= width and 0.0 <= poke.y <= height):
        raise ValueError(f"poke at frame {poke.frame:g} lies at ({poke.x:.1f}, {poke.y:.1f}), outside the "
                         f"{width}x{height} motion map: move it onto the image")


def simulate_state(coeffs: np.ndarray, freqs_hz, pokes: Iterable[Poke], num_frames: int, fps: float,
                   params: ModalParams = ModalParams(), frame_start: float = 0):
    """Like :func:`simulate`, returning (q, qdot), each (num_frames, K) complex128 (qdot in 1/s)."""
    coeffs = _check_coeffs(coeffs)
    k, _, height, width = coeffs.shape
    freqs = _check_freqs(freqs_hz, k)
    fps = _check_fps(fps)
    frame_start = _finite("frame_start", frame_start)
    num_frames = _check_num_frames(num_frames)
    if not isinstance(params, ModalParams):
        raise ValueError(f"params must be a ModalParams, got {type(params).__name__}")
    pokes = list(pokes)
    for p in pokes:
        if not isinstance(p, Poke):
            raise ValueError(f"pokes must be Poke objects, got {type(p).__name__}")
        _check_poke_inside(p, width, height)

    omega, gamma = band_constants(freqs, params)
    kicks = np.zeros((num_frames, k, 2), dtype=np.complex128)
    reference = reference_amplitude(coeffs) if pokes else 0.0
    for p in pokes:
        rel = p.frame - frame_start
        row = max(0, math.ceil(rel))
        if row >= num_frames:
            continue  # after the simulated range
        state = poke_state(modal_basis_at(coeffs, p.x, p.y), omega, p, params, reference)
        lag = (row - rel) / fps  # seconds from the poke to the frame where it first shows
        if lag != 0.0:
            state = np.einsum("kij,kj->ki", transition(omega, gamma, lag), state)
        kicks[row] += state
    log.debug("simulated %d pokes over %d frames at %g fps (K=%d)", len(pokes), num_frames, fps, k)
    return step_frames(omega, gamma, 1.0 / fps, kicks)


def simulate(coeffs: np.ndarray, freqs_hz, pokes: Iterable[Poke], num_frames: int, fps: float,
             params: ModalParams = ModalParams(), frame_start: float = 0) -> np.ndarray:
    """Modal coordinates q (num_frames, K) complex128 of scene frames frame_start .. frame_start + num_frames - 1.

    ``coeffs`` (K, 4, H, W) spectral volume, ``freqs_hz`` (K,) its band frequencies, ``pokes`` any number of
    :class:`Poke` (pokes before frame_start still count; pokes after the range are ignored), ``fps`` the scene
    frame rate. Displacement of pixel p at row n: Re sum_k A_k(p) q[n, k]; q[:, 0] == 0."""
    return simulate_state(coeffs, freqs_hz, pokes, num_frames, fps, params, frame_start)[0]


# ----------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------

def response_at(coeffs: np.ndarray, q: np.ndarray, x: float, y: float) -> np.ndarray:
    """Displacement (N, 2) float64 [x, y] in pixels of the map at pixel (x, y) for modal coordinates q (N, K)."""
    basis = modal_basis_at(coeffs, x, y)
    q = np.asarray(q)
    if q.ndim != 2 or q.shape[1] != basis.shape[0]:
        raise ValueError(f"q must have shape (num_frames, {basis.shape[0]}), got {q.shape}")
    return np.real(q @ basis)


def modal_energy(q: np.ndarray, qdot: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """Energy per band (N, K): 1/2 |q'|^2 + 1/2 omega^2 |q|^2 (unit mass)."""
    return 0.5 * np.abs(qdot) ** 2 + 0.5 * np.asarray(omega) ** 2 * np.abs(q) ** 2


def key_values(q: np.ndarray) -> np.ndarray:
    """Per-frame values of the 2K modal shape keys, (N, 2K) float32, interleaved [Re q_0, -Im q_0, Re q_1, ...].

    The add-on's sign convention (``core.mesh.modal_key_values``): the Re key of band k holds the offsets Re A_k,
    the Im key holds Im A_k, and Re(A q) = Re A Re q - Im A Im q, so the values are (Re q_k, -Im q_k)."""
    q = np.asarray(q)
    if q.ndim != 2:
        raise ValueError(f"q must have shape (num_frames, K), got {q.shape}")
    out = np.empty((q.shape[0], 2 * q.shape[1]), dtype=np.float32)
    out[:, 0::2] = q.real
    out[:, 1::2] = -q.imag
    return out


__all__: Sequence[str] = ("KINDS", "Poke", "ModalParams", "band_constants", "transition", "step_frames",
                          "modal_basis_at", "reference_amplitude", "poke_state", "simulate", "simulate_state",
                          "response_at", "modal_energy", "key_values")
