"""Show Motion's colours: how much each vertex moves -> a heat colour with opacity (numpy only; no bpy).

The measure is the vertex's root-mean-square displacement over the loop as the plane plays it (modal keys times
Amplitude, Loop Strength, Anchor; ``core.mesh.rms_motion``), as a fraction of the photo's height. :data:`FULL_SCALE`
of the height is full red; still vertices get a light blue tint so the photo stays readable under the overlay.
"""
from __future__ import annotations

import numpy as np

FULL_SCALE = 0.02  # RMS motion (fraction of the photo's height) drawn full red
STOPS = np.array([0.0, 0.35, 0.65, 1.0])
COLOURS = np.array([[0.02, 0.08, 0.55], [0.0, 0.65, 0.75], [0.95, 0.85, 0.08], [0.9, 0.06, 0.03]])
ALPHA_STILL, ALPHA_MOVING = 0.25, 0.75


def heat_colours(relative_rms: np.ndarray, full_scale: float = FULL_SCALE) -> np.ndarray:
    """(N, 4) float32 RGBA (linear) for RMS motion given as a fraction of the photo's height."""
    t = np.clip(np.asarray(relative_rms, dtype=np.float64) / full_scale, 0.0, 1.0)
    rgb = np.stack([np.interp(t, STOPS, COLOURS[:, c]) for c in range(3)], axis=-1)
    alpha = ALPHA_STILL + (ALPHA_MOVING - ALPHA_STILL) * np.minimum(1.0, 4.0 * t)
    return np.concatenate([rgb, alpha[:, None]], axis=1).astype(np.float32)
