"""Quality of predicted motion against held-out truth (DESIGN.md, "Measuring quality without downloadable metric
networks"): does the model know *what* moves, does its spectrum look like nature's, how close are its trajectories.

All metrics take coefficients (K, 4, H, W) in pixels of the same map.
"""
from __future__ import annotations

import numpy as np

from addon.core.spectral import spectral_to_trajectories

EPS_POWER = 1e-4  # px^2: below any visible motion, keeps log power finite for zero motion


def amplitude_map(coeffs: np.ndarray, pool: int = 4) -> np.ndarray:
    """Per-pixel motion amplitude sqrt(sum_{k>=1} |A_k|^2) (x and y), average-pooled by ``pool`` -> (H/pool, W/pool)."""
    a = np.sqrt((coeffs[1:].astype(np.float64) ** 2).sum(axis=(0, 1)))
    h, w = a.shape
    h2, w2 = h // pool, w // pool
    return a[:h2 * pool, :w2 * pool].reshape(h2, pool, w2, pool).mean(axis=(1, 3))


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(len(x))
    # average ranks of ties
    sx = x[order]
    start = 0
    for i in range(1, len(x) + 1):
        if i == len(x) or sx[i] != sx[start]:
            if i - start > 1:
                ranks[order[start:i]] = (start + i - 1) / 2.0
            start = i
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two maps; 0 when either is constant (a constant map says nothing about what moves)."""
    a, b = np.ravel(a), np.ravel(b)
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / den) if den > 0 else 0.0


def power_spectrum(coeffs: np.ndarray) -> np.ndarray:
    """Mean power per frequency over the map, (K,): mean_p |A_k,x|^2 + |A_k,y|^2."""
    return (coeffs.astype(np.float64) ** 2).sum(axis=1).mean(axis=(1, 2))


def log_spectrum_error(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean over k >= 1 of |log10 P_pred(k) - log10 P_true(k)| (paper Fig. 2's quantity, per window)."""
    p, t = power_spectrum(pred)[1:] + EPS_POWER, power_spectrum(true)[1:] + EPS_POWER
    return float(np.abs(np.log10(p) - np.log10(t)).mean())


def trajectory_epe(pred: np.ndarray, true: np.ndarray, num_frames: int = 150, stride: int = 5) -> float:
    """Mean end-point error (px) between the trajectories of two volumes over every ``stride``-th frame."""
    tp = spectral_to_trajectories(pred.astype(np.float32), num_frames)[::stride]
    tt = spectral_to_trajectories(true.astype(np.float32), num_frames)[::stride]
    return float(np.sqrt(((tp - tt) ** 2).sum(axis=1)).mean())


def window_metrics(samples: list, true: np.ndarray, num_frames: int = 150) -> dict:
    """Metrics of N sampled volumes for one window: (a) and (b) averaged over samples, (c) best of N."""
    amp_true = amplitude_map(true)
    return {
        "spearman": float(np.mean([spearman(amplitude_map(s), amp_true) for s in samples])),
        "log_spectrum_error": float(np.mean([log_spectrum_error(s, true) for s in samples])),
        "best_epe": float(min(trajectory_epe(s, true, num_frames) for s in samples)),
    }
