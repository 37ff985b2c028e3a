"""Show Motion's colours: how much each vertex moves -> a heat colour with opacity (numpy only; no bpy).

The measure is the vertex's root-mean-square displacement over the loop as the plane plays it (modal keys times
Amplitude, Loop Strength, Anchor; ``core.mesh.rms_motion``), as a fraction of the photo's height. :data:`FULL_SCALE`
of the height is full red; still vertices get a light blue tint so the photo stays readable under the overlay.
"""
from __future__ import annotations

import numpy as np

from .spectral import mean_square_displacement

FULL_SCALE = 0.02  # RMS motion (fraction of the photo's height) drawn full red
STOPS = np.array([0.0, 0.35, 0.65, 1.0])
COLOURS = np.array([[0.02, 0.08, 0.55], [0.0, 0.65, 0.75], [0.95, 0.85, 0.08], [0.9, 0.06, 0.03]])
ALPHA_STILL, ALPHA_MOVING = 0.25, 0.75
GENTLE = 0.0025  # a volume whose moving parts stay under this fraction of the photo's height reads as still
SUGGESTED = 0.01  # the RMS motion (fraction of the height) the suggested Amplitude gives its moving parts


def heat_colours(relative_rms: np.ndarray, full_scale: float = FULL_SCALE) -> np.ndarray:
    """(N, 4) float32 RGBA (linear) for RMS motion given as a fraction of the photo's height."""
    t = np.clip(np.asarray(relative_rms, dtype=np.float64) / full_scale, 0.0, 1.0)
    rgb = np.stack([np.interp(t, STOPS, COLOURS[:, c]) for c in range(3)], axis=-1)
    alpha = ALPHA_STILL + (ALPHA_MOVING - ALPHA_STILL) * np.minimum(1.0, 4.0 * t)
    return np.concatenate([rgb, alpha[:, None]], axis=1).astype(np.float32)


def moving_parts(coeffs: np.ndarray, mask: np.ndarray | None = None) -> float:
    """How far a volume's (K, 4, H, W) moving parts move: the 99th percentile of per-pixel RMS displacement over the
    loop, in px of its map, over all pixels or those of ``mask`` (H, W) (0 when the mask is empty)."""
    rms = np.sqrt(mean_square_displacement(np.asarray(coeffs)))
    values = rms if mask is None else rms[np.asarray(mask, bool)]
    return float(np.percentile(values, 99)) if values.size else 0.0


def gentle_motion_note(coeffs: np.ndarray, max_amplitude: float = 10.0) -> str:
    """A note for the artist when a predicted volume (K, 4, H, W) barely moves: its moving parts (the 99th
    percentile of per-pixel RMS motion over the loop) stay under :data:`GENTLE` of the photo's height. The note
    suggests the Amplitude that brings them to :data:`SUGGESTED`; '' when the motion is visible as it is."""
    coeffs = np.asarray(coeffs)
    peak = moving_parts(coeffs) / coeffs.shape[-2]
    if peak >= GENTLE:
        return ""
    if peak <= 0.0:
        return "The predicted motion is zero everywhere: paint where the photo moves (Paint Motion) and animate again"
    amplitude = min(max_amplitude, max(2.0, round(SUGGESTED / peak)))
    return (f"The model predicts little motion for this photo (its moving parts by {100 * peak:.2f}% of the "
            f"photo's height): raise Amplitude in the Loop panel, e.g. to {amplitude:g}")
