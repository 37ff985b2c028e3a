"""The spectral-volume contract, numpy side (no bpy, no torch).

A spectral volume describes per-pixel displacement trajectories over a loop of ``T`` frames at ``fps``::

    F_t(p) = Re( sum_{k=0}^{K-1} A_k(p) * exp(2*pi*i * f_k * t_seconds) ),   f_k = k * fps / T

``A_k`` is complex, for x and y separately, in pixels of the stored map, image y axis pointing down. It is the
one-sided amplitude (``A_0 = S_0 / T``, ``A_k = 2 S_k / T`` for k >= 1, ``S`` = FFT over the T frames).

Array layouts used everywhere in the project (defined here, once):

* ``coeffs``        float32 (K, 4, H, W): channels [Re x, Im x, Re y, Im y]
* complex form      complex64 (K, 2, H, W): channels [x, y]
* trajectories      float32 (T, 2, H, W): displacement of every pixel of frame 0 at frames 0..T-1, channels [x, y]
* displacement      float32 (2, H, W) for one time, (N, 2, H, W) for N times
* modal coordinates complex (N, K): N frames (or times) first, K bands second, everywhere (loops, pokes, the
                    renderer's wire format); the displacement they give is ``Re(sum_k A_k q_k)``

This module owns the motion math the rest of the project calls: the displacement at times
(:func:`displacement_at`) or for any modal coordinates (:func:`modal_displacement`), the mean-square displacement
over the loop (:func:`mean_square_displacement`), and a loop's modal coordinates (:func:`loop_coordinates`). The
backend's torch twin (``backend/spectral.py``) implements the same functions under the same names (the loop
coordinates, plain numpy, it imports from here); a test asserts they agree.
"""
from __future__ import annotations

import dataclasses
import math
import os
import zipfile
from typing import Mapping

import numpy as np

from .files import atomic_path

SCHEMA_VERSION = 1
DEFAULT_NUM_FRAMES = 150
DEFAULT_FPS = 30.0
DEFAULT_K = 16
NORMALIZATION_PERCENTILE = 95.0

# Provenance fields: optional, stored as 0-d arrays (strings as unicode, never objects).
PROVENANCE_STR = ("model", "extracted_from", "sampler")
PROVENANCE_INT = ("seed", "steps", "start_frame", "hint")  # hint: 1 when a "moves here" hint steered it
PROVENANCE_FLOAT = ("guidance", "loop")


class SpectralVolumeError(ValueError):
    """A spectral volume (array or .npz file) breaks the contract. ``field`` names the offending field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"spectral volume field '{field}': {message}")


# ----------------------------------------------------------------------------------------------------------------
# Frequencies and complex/real packing
# ----------------------------------------------------------------------------------------------------------------

def frequencies(k: int, fps: float, num_frames: int) -> np.ndarray:
    """f_k = k * fps / T for k = 0..K-1, in Hz."""
    return (np.arange(k, dtype=np.float64) * float(fps) / float(num_frames)).astype(np.float32)


def to_complex(coeffs: np.ndarray) -> np.ndarray:
    """(..., K, 4, H, W) float -> (..., K, 2, H, W) complex64 ([x, y])."""
    c = np.asarray(coeffs)
    return (c[..., 0::2, :, :] + 1j * c[..., 1::2, :, :]).astype(np.complex64)


def from_complex(a: np.ndarray) -> np.ndarray:
    """(..., K, 2, H, W) complex -> (..., K, 4, H, W) float32 ([Re x, Im x, Re y, Im y])."""
    a = np.asarray(a)
    out = np.empty(a.shape[:-3] + (4,) + a.shape[-2:], dtype=np.float32)
    out[..., 0::2, :, :] = a.real
    out[..., 1::2, :, :] = a.imag
    return out


# ----------------------------------------------------------------------------------------------------------------
# Trajectories <-> spectral volume
# ----------------------------------------------------------------------------------------------------------------

def max_bins(num_frames: int) -> int:
    """Largest K whose bins all lie strictly below Nyquist (so every A_k is a two-sided pair)."""
    return (int(num_frames) + 1) // 2


def trajectories_to_spectral(traj: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
    """(T, 2, H, W) displacements in pixels -> coeffs (K, 4, H, W) one-sided amplitudes in pixels."""
    traj = np.asarray(traj, dtype=np.float64)
    if traj.ndim != 4 or traj.shape[1] != 2:
        raise ValueError(f"trajectories must have shape (T, 2, H, W), got {traj.shape}")
    t = traj.shape[0]
    if not 1 <= k <= max_bins(t):
        raise ValueError(f"K={k} needs at least {2 * k - 1} frames below Nyquist; the clip has {t} frames")
    # The first K bins of the FFT over time, as one matrix product: only K of the T/2 bins are kept, so this is
    # 4x faster than a full rfft along the (strided) time axis at 150 x 256 x 160, and exact.
    phase = 2.0 * np.pi * np.outer(np.arange(k), np.arange(t)) / t  # (K, T)
    flat = traj.reshape(t, -1)
    s = (np.cos(phase) @ flat - 1j * (np.sin(phase) @ flat)).reshape((k,) + traj.shape[1:])  # (K, 2, H, W)
    a = s * (2.0 / t)
    a[0] = s[0] / t
    return from_complex(a)


def displacement_at(coeffs: np.ndarray, freqs_hz: np.ndarray, t_seconds) -> np.ndarray:
    """Displacement (2, H, W) at a time in seconds, or (N, 2, H, W) for an array of N times."""
    t = np.asarray(t_seconds, dtype=np.float64)
    phase = 2.0 * np.pi * np.multiply.outer(t.reshape(-1), np.asarray(freqs_hz, dtype=np.float64))  # (N, K)
    out = modal_displacement(coeffs, np.exp(1j * phase))
    return out[0] if t.ndim == 0 else out.reshape(t.shape + out.shape[1:])


def spectral_to_trajectories(coeffs: np.ndarray, num_frames: int) -> np.ndarray:
    """coeffs (K, 4, H, W) -> trajectories (T, 2, H, W) sampled at frames 0..T-1 (exact inverse for K bins)."""
    freqs = np.arange(coeffs.shape[0], dtype=np.float64) / float(num_frames)  # cycles per frame
    return displacement_at(coeffs, freqs, np.arange(num_frames, dtype=np.float64))


# ----------------------------------------------------------------------------------------------------------------
# Motion for modal coordinates, mean-square displacement, loop coordinates
# ----------------------------------------------------------------------------------------------------------------

def modal_displacement(coeffs: np.ndarray, q) -> np.ndarray:
    """``F = Re(sum_k A_k q_k)``: coeffs (K, 4, H, W) and modal coordinates q (N, K) complex -> (N, 2, H, W) float32.

    The general form of the spectral-volume formula: ``q_k = exp(2 pi i f_k t)`` is :func:`displacement_at`, a loop
    in scene frames is :func:`loop_coordinates`, pokes are simulated by ``addon.core.modal``."""
    a = to_complex(coeffs).astype(np.complex128)  # (K, 2, H, W)
    q = np.asarray(q, dtype=np.complex128)
    if q.ndim != 2 or q.shape[1] != a.shape[0]:
        raise ValueError(f"modal coordinates must have shape (N, K={a.shape[0]}), got {q.shape}")
    return np.real(np.einsum("nk,kchw->nchw", q, a)).astype(np.float32)


def mean_square_displacement(coeffs: np.ndarray) -> np.ndarray:
    """``W(p) = mean over the loop of ||F_t(p)||^2`` in px^2: coeffs (..., K, C, H, W) -> (..., H, W).

    Exact by Parseval (the loop's harmonics are orthogonal over its T frames)::

        W = ||Re A_0||^2 + sum_{k>=1} ||A_k||^2 / 2

    The constant term counts: a part that sits displaced still lies over what it covers. **Im A_0 does not**: the
    constant term of F_t is Re(A_0 e^0) = Re A_0, so Im A_0 moves nothing (it is 0 for a volume taken from real
    trajectories; a model may predict anything there, and it never shows).

    The channels C interleave [Re, Im] of each displacement component: 4 for a spectral volume ([Re x, Im x, Re y,
    Im y]); any even number works (e.g. 6 for object-space x, y, z offsets). Computed in float64; the result has the
    input's floating-point type (float32 at least).
    """
    c = np.asarray(coeffs)
    dtype = np.result_type(c.dtype, np.float32)
    c = c.astype(np.float64)
    power = (c[..., 0, 0::2, :, :] ** 2).sum(axis=-3) + 0.5 * (c[..., 1:, :, :, :] ** 2).sum(axis=(-4, -3))
    return power.astype(dtype)


def loop_coordinates(k: int, frames, loop_frames: float, amplitude: float = 1.0, phase_frame: float = 0.0):
    """Modal coordinates of a seamless loop at scene ``frames`` (N,) and their derivatives per frame.

    ``q_k(n) = amplitude * exp(2 pi i k (n - phase_frame) / L)``, ``L = loop_frames``: every band repeats after
    exactly L frames. With ``L = T / volume fps * scene fps`` this is ``exp(2 pi i f_k t)``, t the seconds since
    ``phase_frame``, i.e. the spectral-volume formula. Returns ``(q, dq)``, each (N, K) complex128.
    """
    frames = np.asarray(frames, dtype=np.float64).reshape(-1)
    omega = 2.0 * math.pi * np.arange(k, dtype=np.float64) / float(loop_frames)  # radians per frame
    q = amplitude * np.exp(1j * np.multiply.outer(frames - phase_frame, omega))
    dq = 1j * omega[None, :] * q
    return q, dq


# ----------------------------------------------------------------------------------------------------------------
# Resampling (bilinear, half-pixel centres = torch align_corners=False, antialias=False)
# ----------------------------------------------------------------------------------------------------------------

def _linear_taps(n_in: int, n_out: int):
    scale = n_in / n_out
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = src - i0
    return i0, i1, w1


def resize_bilinear(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize the last two axes of ``x`` to (height, width), bilinear with half-pixel centres."""
    x = np.asarray(x, dtype=np.float64)
    y0, y1, wy = _linear_taps(x.shape[-2], height)
    x0, x1, wx = _linear_taps(x.shape[-1], width)
    rows = x[..., y0, :] * (1.0 - wy)[:, None] + x[..., y1, :] * wy[:, None]
    return rows[..., x0] * (1.0 - wx) + rows[..., x1] * wx


def resample(coeffs: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resample coeffs (K, 4, H, W) to (K, 4, height, width); x amplitudes scale with W, y with H."""
    k, c, h, w = coeffs.shape
    out = resize_bilinear(coeffs, height, width)
    out[:, 0:2] *= width / w
    out[:, 2:4] *= height / h
    return out.astype(np.float32)


def sample_bilinear(coeffs: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample coeffs (K, 4, H, W) at pixel positions (pixel centres at integer + 0.5 from the top-left corner).

    ``x``, ``y`` arrays of shape (N,) in map pixels (x right, y down), clamped to the map. Returns (K, 4, N).
    """
    k, c, h, w = coeffs.shape
    px = np.clip(np.asarray(x, dtype=np.float64) - 0.5, 0.0, w - 1)
    py = np.clip(np.asarray(y, dtype=np.float64) - 0.5, 0.0, h - 1)
    x0 = np.minimum(np.floor(px).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(py).astype(np.int64), max(h - 2, 0))
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = px - x0
    fy = py - y0
    c00 = coeffs[:, :, y0, x0]
    c01 = coeffs[:, :, y0, x1]
    c10 = coeffs[:, :, y1, x0]
    c11 = coeffs[:, :, y1, x1]
    top = c00 * (1 - fx) + c01 * fx
    bot = c10 * (1 - fx) + c11 * fx
    return (top * (1 - fy) + bot * fy).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Frequency-adaptive normalisation (paper section 4): per-frequency 95th percentile + signed square root
# ----------------------------------------------------------------------------------------------------------------

def normalization_scales(coeffs: np.ndarray, percentile: float = NORMALIZATION_PERCENTILE,
                         eps: float = 1e-6) -> np.ndarray:
    """s_k = percentile of |coefficient| per frequency over a dataset (..., K, 4, H, W) -> (K,) float32."""
    c = np.abs(np.asarray(coeffs, dtype=np.float64))
    k = c.shape[-4]
    per_k = np.moveaxis(c, -4, 0).reshape(k, -1)
    s = np.percentile(per_k, percentile, axis=1)
    return np.maximum(s, eps).astype(np.float32)


def normalize(coeffs: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """sign(c) * sqrt(|c| / s_k), coeffs (..., K, 4, H, W), scales (K,)."""
    c = np.asarray(coeffs, dtype=np.float64)
    s = np.asarray(scales, dtype=np.float64).reshape(-1, 1, 1, 1)
    return (np.sign(c) * np.sqrt(np.abs(c) / s)).astype(np.float32)


def denormalize(z: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalize`: sign(z) * z^2 * s_k."""
    z = np.asarray(z, dtype=np.float64)
    s = np.asarray(scales, dtype=np.float64).reshape(-1, 1, 1, 1)
    return (np.sign(z) * z * z * s).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# The volume object and its .npz file
# ----------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class SpectralVolume:
    """A validated spectral volume. ``coeffs`` (K, 4, H, W) float32 in pixels of this map."""

    coeffs: np.ndarray
    fps: float = DEFAULT_FPS
    num_frames: int = DEFAULT_NUM_FRAMES
    source_size: tuple = (0, 0)  # (W, H) of the photo or clip the motion belongs to
    provenance: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.coeffs = np.ascontiguousarray(self.coeffs, dtype=np.float32)
        if tuple(self.source_size) == (0, 0):
            self.source_size = (self.width, self.height)
        self.source_size = (int(self.source_size[0]), int(self.source_size[1]))
        self.fps = float(self.fps)
        self.num_frames = int(self.num_frames)
        validate_arrays(self.coeffs, self.freqs_hz, self.fps, self.num_frames, self.source_size)

    @property
    def k(self) -> int:
        return self.coeffs.shape[0]

    @property
    def height(self) -> int:
        return self.coeffs.shape[2]

    @property
    def width(self) -> int:
        return self.coeffs.shape[3]

    @property
    def freqs_hz(self) -> np.ndarray:
        return frequencies(self.k, self.fps, self.num_frames)

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    @classmethod
    def from_trajectories(cls, traj: np.ndarray, k: int = DEFAULT_K, fps: float = DEFAULT_FPS, **kw):
        return cls(trajectories_to_spectral(traj, k), fps=fps, num_frames=traj.shape[0], **kw)

    def displacement(self, t_seconds) -> np.ndarray:
        return displacement_at(self.coeffs, self.freqs_hz, t_seconds)

    def displacement_at_frame(self, frame) -> np.ndarray:
        return self.displacement(np.asarray(frame, dtype=np.float64) / self.fps)

    def trajectories(self) -> np.ndarray:
        return spectral_to_trajectories(self.coeffs, self.num_frames)

    def resampled(self, width: int, height: int) -> "SpectralVolume":
        """The volume on a ``width`` x ``height`` map (amplitudes scale with it); itself when it has that size."""
        if (width, height) == (self.width, self.height):
            return self
        return dataclasses.replace(self, coeffs=resample(self.coeffs, width, height))

    def amplitude(self) -> np.ndarray:
        """Per-frequency motion amplitude |A_k| (K, H, W) in pixels (length of the complex 2-vector)."""
        a = to_complex(self.coeffs)
        return np.sqrt((np.abs(a) ** 2).sum(axis=1)).astype(np.float32)

    def save(self, path) -> None:
        save_npz(path, self)


def validate_arrays(coeffs, freqs_hz, fps, num_frames, source_size) -> None:
    if not isinstance(coeffs, np.ndarray) or coeffs.dtype.kind != "f":
        raise SpectralVolumeError("coeffs", "must be a floating-point array")
    if coeffs.ndim != 4 or coeffs.shape[1] != 4:
        raise SpectralVolumeError("coeffs", f"must have shape (K, 4, H, W), got {tuple(coeffs.shape)}")
    k, _, h, w = coeffs.shape
    if k < 1 or h < 1 or w < 1:
        raise SpectralVolumeError("coeffs", f"has an empty axis: {tuple(coeffs.shape)}")
    if not np.all(np.isfinite(coeffs)):
        raise SpectralVolumeError("coeffs", "contains NaN or infinite values")
    if not np.isfinite(fps) or fps <= 0:
        raise SpectralVolumeError("fps", f"must be a positive number, got {fps}")
    if num_frames < 2:
        raise SpectralVolumeError("num_frames", f"must be at least 2, got {num_frames}")
    if k > max_bins(num_frames):
        raise SpectralVolumeError("coeffs", f"K={k} bins exceed what {num_frames} frames can hold")
    freqs_hz = np.asarray(freqs_hz)
    if freqs_hz.shape != (k,):
        raise SpectralVolumeError("freqs_hz", f"must have shape ({k},), got {freqs_hz.shape}")
    expected = frequencies(k, fps, num_frames)
    if not np.allclose(freqs_hz, expected, rtol=1e-4, atol=1e-5):
        raise SpectralVolumeError("freqs_hz", "must be k * fps / num_frames (the loop's harmonics)")
    if len(source_size) != 2 or min(source_size) < 1:
        raise SpectralVolumeError("source_size", f"must be (W, H) with positive sizes, got {source_size}")


def save_npz(path, volume: SpectralVolume) -> None:
    """Write a volume to ``path`` (.npz, compressed, no pickled objects; complete or not at all)."""
    arrays = {
        "coeffs": volume.coeffs.astype(np.float32),
        "freqs_hz": volume.freqs_hz.astype(np.float32),
        "fps": np.float32(volume.fps),
        "num_frames": np.int32(volume.num_frames),
        "source_size": np.asarray(volume.source_size, dtype=np.int32),
        "schema_version": np.int32(SCHEMA_VERSION),
    }
    for key, value in volume.provenance.items():
        if key in PROVENANCE_STR:
            arrays[key] = np.str_(str(value))
        elif key in PROVENANCE_INT:
            arrays[key] = np.int64(value)
        elif key in PROVENANCE_FLOAT:
            arrays[key] = np.float64(value)
        else:
            known = PROVENANCE_STR + PROVENANCE_INT + PROVENANCE_FLOAT
            raise SpectralVolumeError(key, f"unknown provenance field (known: {known})")
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)


def _scalar(data: Mapping, field: str, kind: str):
    if field not in data:
        raise SpectralVolumeError(field, "is missing")
    arr = data[field]
    if arr.shape != () or arr.dtype.kind not in kind:
        raise SpectralVolumeError(field, f"must be a scalar of kind '{kind}', got dtype {arr.dtype} shape {arr.shape}")
    return arr[()]


def load_npz(path) -> SpectralVolume:
    """Read and validate a volume. Any wrong, missing or corrupt field raises :class:`SpectralVolumeError`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SpectralVolumeError("file", f"'{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {}
            for name in npz.files:
                try:
                    data[name] = npz[name]
                except ValueError as exc:  # object arrays need pickle: refused
                    raise SpectralVolumeError(name, f"cannot be read without pickle ({exc})") from None
                except (OSError, EOFError, zipfile.BadZipFile) as exc:
                    raise SpectralVolumeError(name, f"is corrupt ({exc})") from None
    except SpectralVolumeError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SpectralVolumeError("file", f"'{path}' is not a readable .npz spectral volume ({exc})") from None
    return volume_from_arrays(data)


def volume_from_arrays(data: Mapping) -> SpectralVolume:
    version = int(_scalar(data, "schema_version", "iu"))
    if version != SCHEMA_VERSION:
        raise SpectralVolumeError("schema_version", f"is {version}; this version reads {SCHEMA_VERSION}")
    if "coeffs" not in data:
        raise SpectralVolumeError("coeffs", "is missing")
    coeffs = data["coeffs"]
    if coeffs.dtype != np.float32:
        raise SpectralVolumeError("coeffs", f"must be float32, got {coeffs.dtype}")
    if "freqs_hz" not in data:
        raise SpectralVolumeError("freqs_hz", "is missing")
    fps = float(_scalar(data, "fps", "fiu"))
    num_frames = int(_scalar(data, "num_frames", "iu"))
    if "source_size" not in data:
        raise SpectralVolumeError("source_size", "is missing")
    size = data["source_size"]
    if size.shape != (2,) or size.dtype.kind not in "iu":
        raise SpectralVolumeError("source_size", f"must be two integers (W, H), got {size.dtype} {size.shape}")
    validate_arrays(coeffs, data["freqs_hz"], fps, num_frames, tuple(int(v) for v in size))
    provenance = {}
    for key in PROVENANCE_STR:
        if key in data:
            provenance[key] = str(_scalar(data, key, "U"))
    for key in PROVENANCE_INT:
        if key in data:
            provenance[key] = int(_scalar(data, key, "iu"))
    for key in PROVENANCE_FLOAT:
        if key in data:
            provenance[key] = float(_scalar(data, key, "fiu"))
    return SpectralVolume(coeffs, fps=fps, num_frames=num_frames, source_size=tuple(int(v) for v in size),
                          provenance=provenance)
