"""Per-frequency amplitude calibration of a trained motion model.

A short-trained VAE and denoiser put motion in the right places but too little of it (the decoder regresses toward
"still"), uniformly enough per frequency that one gain per frequency k fixes the level: the model's ``output_gain``
multiplies the decoded coefficients of frequency k. The gain is fitted on *training* windows: for each k the gain
that minimises the mean |log10 P_pred(k) - log10 P_true(k)| over windows (the log-spectrum error, paper Fig. 2),
searched on a grid of log gains; where several gains tie (e.g. a model that predicts no motion at k), the one
closest to 1 wins. Evaluation then runs on held-out windows, which the fit never saw.
"""
from __future__ import annotations

import numpy as np

from .evaluation import EPS_POWER, power_spectrum

LOG_GAIN_GRID = np.round(np.linspace(-1.0, 2.0, 601), 6)  # log10 of the amplitude gain: 0.1x .. 100x, steps of 0.005


def log_spectrum_errors(pred_power: np.ndarray, true_power: np.ndarray, log_gains: np.ndarray) -> np.ndarray:
    """Mean over windows of |log10(g^2 P_pred + eps) - log10(P_true + eps)| for each log gain: (G,) for (N,) inputs."""
    scaled = pred_power[None, :] * (10.0 ** (2.0 * log_gains))[:, None]
    return np.abs(np.log10(scaled + EPS_POWER) - np.log10(true_power[None, :] + EPS_POWER)).mean(axis=1)


def fit_output_gain(pred_power: np.ndarray, true_power: np.ndarray, grid: np.ndarray = LOG_GAIN_GRID) -> np.ndarray:
    """Per-frequency amplitude gains (K,) from per-window powers (N, K) of predicted and true volumes.

    Frequency 0 (the mean offset, not part of the spectrum error) keeps gain 1."""
    pred_power, true_power = np.asarray(pred_power, np.float64), np.asarray(true_power, np.float64)
    if pred_power.ndim != 2 or pred_power.shape != true_power.shape or not len(pred_power):
        raise ValueError(f"need per-window powers of equal shape (N >= 1, K); got {pred_power.shape} and "
                         f"{true_power.shape}")
    gains = np.ones(pred_power.shape[1])
    for k in range(1, pred_power.shape[1]):
        err = log_spectrum_errors(pred_power[:, k], true_power[:, k], grid)
        ties = np.flatnonzero(err <= err.min() + 1e-12)
        gains[k] = 10.0 ** grid[ties[np.argmin(np.abs(grid[ties]))]]
    return gains


def window_powers(volumes) -> np.ndarray:
    """Coefficient arrays (K, 4, H, W) -> their power spectra stacked (N, K)."""
    return np.stack([power_spectrum(v) for v in volumes])
