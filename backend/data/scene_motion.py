"""Oscillation modes for the training scenes: every mode sits on a loop bin, so motion is exactly a K-bin series.

With ``T`` frames at ``fps`` the loop's bins are f_k = k * fps / T. A mode whose frequency is such a bin (k <= the
highest kept bin, 15 for K = 16) is a pure harmonic of the loop: the trajectories of every pixel are then exactly
the Fourier series that a spectral volume stores, and the ground-truth coefficients can be taken from a few
samples per loop (see :func:`exact_coefficients`).

Appearance predicts motion, as in nature: an object's primary frequency falls with its length and rises with its
stiffness, its amplitude grows with length and falls with stiffness. On top of the primary mode every moving object
gets a weak broadband "turbulence" (wind is not a single tone): one mode per bin, amplitude peaking at the primary
bin and decaying as a power of frequency above it. This gives the dataset the decaying power spectrum of real
motion (paper Fig. 2) and non-zero coefficients at every bin for the per-frequency normalisation.

Natural clips (``Timing(exact=False)``, for judging motion extraction and the sample clip) keep the same design but
are not a loop: the primary sits on its own frequency, the other modes a random fraction of a bin off theirs, and a
share ``gust_fraction`` of the objects also gets a gust, a push released at a random moment that rings down.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .scene_objects import Modes, concat_modes


@dataclasses.dataclass(frozen=True)
class Timing:
    """The loop: ``num_frames`` frames at ``fps``; modes use bins 1..max_bin. ``exact=False``: a natural clip
    (frequencies off the bins, decaying gusts on a share ``gust_fraction`` of the objects)."""
    fps: float = 30.0
    num_frames: int = 150
    max_bin: int = 15
    exact: bool = True
    gust_fraction: float = 0.0

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def bin_of(self, freq_hz) -> np.ndarray:
        return np.clip(np.rint(np.asarray(freq_hz, float) * self.num_frames / self.fps), 1, self.max_bin).astype(int)

    def freq(self, k) -> np.ndarray:
        return np.asarray(k, float) * self.fps / self.num_frames


def natural_frequency(length_px: float, ref_px: float, stiffness: float = 1.0, f_ref: float = 0.65,
                      exponent: float = 0.9) -> float:
    """Primary frequency (Hz) of a cantilever-like object: longer is slower, stiffer is faster."""
    return float(f_ref * stiffness * (ref_px / max(length_px, 1e-3)) ** exponent)


def sway(rng, timing: Timing, f0: float, amp, phase: float, second: float = 0.2, turbulence: float = 0.12,
         slope: float = 1.4, cross: float = 0.3, push: float = 0.35) -> Modes:
    """Modes of one object: primary at the bin nearest ``f0`` with amplitude vector ``amp`` (3 channels), a weaker
    second mode at 2.3-2.9 x f0, and turbulence on every other bin.

    ``turbulence`` is the relative amplitude at the bins next to the primary; above it falls as (k0/k)^slope, below
    it as sqrt(k/k0). ``cross`` < 1 mixes a part of each turbulence mode into the other direction of ``amp`` (the
    object's motion is not on a line). ``push`` > 0 adds a slow push of that relative amplitude (x 0.5..1.5) on bin
    1 or 2 when the primary is above it: wind bends everything slowly, as in real footage. With a natural
    ``timing`` (not exact) the frequencies leave the bins and some objects get a decaying gust (module docstring)."""
    amp = np.asarray(amp, float)
    k0 = int(timing.bin_of(f0))
    bins, amps, phases = [k0], [amp], [phase]
    k1 = int(timing.bin_of(f0 * rng.uniform(2.3, 2.9)))
    if second > 0 and k1 != k0:
        bins.append(k1)
        amps.append(amp * second * rng.uniform(0.6, 1.4))
        phases.append(rng.uniform(0, 2 * np.pi))
    if push > 0 and k0 >= 2:
        bins.append(int(rng.integers(1, min(k0, 3))))
        amps.append(amp * push * rng.uniform(0.5, 1.5))
        phases.append(rng.uniform(0, 2 * np.pi))
    if turbulence > 0:
        perp = np.array([-amp[1], amp[0], 0.0])  # x <-> y swap of the sway direction
        ks = np.array([k for k in range(1, timing.max_bin + 1) if k not in bins])
        rel = turbulence * np.minimum(np.sqrt(ks / k0), (k0 / ks) ** slope) * rng.rayleigh(0.8, len(ks))
        mix = amp[None] + cross * rng.standard_normal(len(ks))[:, None] * perp[None]
        bins += ks.tolist()
        amps += list(mix * rel[:, None])
        phases += rng.uniform(0, 2 * np.pi, len(ks)).tolist()
    n = len(bins)
    modes = Modes(timing.freq(np.array(bins)), np.stack(amps), np.array(phases), np.zeros(n), np.zeros(n))
    return modes if timing.exact else _natural(rng, timing, modes, f0, amp)


def _natural(rng, timing: Timing, modes: Modes, f0: float, amp: np.ndarray) -> Modes:
    """Take the modes off the loop's bins (primary exactly at ``f0``, the others up to half a bin off) and, for a
    share ``timing.gust_fraction`` of the objects, add a gust at f0: at rest until a random onset, then ringing down
    (5-12% of the frequency per second, relative)."""
    bin_hz = timing.fps / timing.num_frames
    freq = modes.freq + rng.uniform(-0.5, 0.5, len(modes.freq)) * bin_hz
    freq[0] = f0
    modes = Modes(np.maximum(freq, 0.5 * bin_hz), modes.amp, modes.phase, modes.damping, modes.onset)
    if rng.uniform() < timing.gust_fraction:
        onset = rng.uniform(0.1, 0.6) * timing.duration
        modes = concat_modes(modes, Modes(np.array([f0]), amp[None] * rng.uniform(0.5, 0.9), np.array([-np.pi / 2]),
                                          np.array([2 * np.pi * f0 * rng.uniform(0.05, 0.12)]), np.array([onset])))
    return modes


def flutter(rng, timing: Timing, f_lo: float, f_hi: float, angle_rad: float, turbulence: float = 0.15) -> Modes:
    """Own rotation of a sprite (leaf, flower head): theta on channel 2 with a primary in [f_lo, f_hi]."""
    return sway(rng, timing, rng.uniform(f_lo, f_hi), (0.0, 0.0, angle_rad), rng.uniform(0, 2 * np.pi),
                second=0.3, turbulence=turbulence, slope=1.0, cross=0.0, push=0.0)


def sample_times(timing: Timing) -> np.ndarray:
    """Times (s) of ``2 * max_bin + 1`` equally spaced samples of the loop; index 0 is t = 0."""
    n = 2 * timing.max_bin + 1
    return np.arange(n) * (timing.duration / n)


def exact_coefficients(samples: np.ndarray, k: int) -> np.ndarray:
    """Displacements (N_s, 2, P) at :func:`sample_times` -> coeffs (k, 4, P) in the contract's one-sided form.

    Exact for a series with bins 0..max_bin: the N_s = 2 max_bin + 1 point DFT does not alias those bins."""
    n = samples.shape[0]
    if k > (n + 1) // 2:
        raise ValueError(f"{n} samples hold at most {(n + 1) // 2} bins, asked for {k}")
    phase = 2.0 * np.pi * np.outer(np.arange(k), np.arange(n)) / n  # (k, n): DFT rows as a matrix product,
    flat = samples.reshape(n, -1).astype(np.float32)  # much faster than an FFT along the strided first axis
    re = (np.cos(phase).astype(np.float32) @ flat).reshape((k,) + samples.shape[1:])
    im = (-np.sin(phase).astype(np.float32) @ flat).reshape((k,) + samples.shape[1:])
    a = (re + 1j * im) * (2.0 / n)
    a[0] = (re[0] + 1j * im[0]) / n
    out = np.empty((k, 4) + samples.shape[2:], np.float32)
    out[:, 0::2] = a.real
    out[:, 1::2] = a.imag
    return out
