"""Per-frequency amplitude calibration of a trained motion model.

A short-trained VAE and denoiser put motion in the right places but too little of it (the decoder regresses toward
"still"), uniformly enough per frequency that one gain per frequency k fixes the level: the model's ``output_gain``
multiplies the decoded coefficients of frequency k. The gain is fitted on *training* windows: for each k the gain
that minimises the mean |log10 P_pred(k) - log10 P_true(k)| over windows (the log-spectrum error, paper Fig. 2),
searched on a grid of log gains; where several gains tie (e.g. a model that predicts no motion at k), the one
closest to 1 wins. Evaluation then runs on held-out windows, which the fit never saw.

The level depends on the number of DDIM steps (fewer steps regress further toward "still": the shipped model's
motion at 10 steps is about half of that at 25), so a checkpoint can carry gains fitted at several step counts; a
prediction with n steps uses the gains interpolated linearly in log gain over log n between the two nearest fitted
counts (the nearest one outside their range): ``gain_for_steps``.
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


def gain_for_steps(table_steps, table_gains, steps: int) -> np.ndarray:
    """Gains (K,) for ``steps`` DDIM steps from gains (S, K) fitted at ``table_steps`` (S,) increasing counts:
    log gain linear in log steps between the neighbouring counts, the end rows outside the range."""
    counts = np.asarray(table_steps, np.float64)
    log_g = np.log(np.asarray(table_gains, np.float64))
    if counts.ndim != 1 or log_g.shape[:1] != counts.shape or not len(counts) or np.any(np.diff(counts) <= 0):
        raise ValueError(f"need increasing step counts (S,) and gains (S, K); got {counts.shape}, {log_g.shape}")
    x = np.log(float(steps))
    lx = np.log(counts)
    out = np.array([np.interp(x, lx, log_g[:, k]) for k in range(log_g.shape[1])])
    return np.exp(out)


def check_gain_table(table, k: int) -> tuple:
    """A checkpoint's ``output_gain_steps`` {"steps": [S ints], "gains": [S x K]} -> (steps tuple, gains (S, K)
    float32 array); ValueError if the counts are not increasing integers >= 1 or a gain is not positive and finite."""
    try:
        raw = [float(n) for n in table["steps"]]
        steps = [int(n) for n in raw]
        if steps != raw:
            raise ValueError("step counts must be integers")
        gains = np.asarray(table["gains"], np.float64)
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"a step-gain table needs 'steps' and 'gains' ({exc})") from None
    if not steps or steps[0] < 1 or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"its step counts must increase from >= 1, got {steps}")
    if gains.shape != (len(steps), k) or not np.all(np.isfinite(gains)) or not np.all(gains > 0):
        raise ValueError(f"its gains must be {len(steps)} x {k} positive numbers")
    return tuple(steps), gains.astype(np.float32)
