"""Quality of predicted motion against held-out truth (DESIGN.md, "Measuring quality without downloadable metric
networks"): does the model know *what* moves, does its spectrum look like nature's, is the amount right, is it
coherent, does it honour a hint. ``scripts/eval_motion.py`` prints them; docs/motion.md defines them.

All metrics take coefficients (K, 4, H, W) in pixels of the same map; real windows are scored on trusted pixels.
"""
from __future__ import annotations

import numpy as np

EPS_POWER = 1e-4  # px^2: below any visible motion, keeps log power finite for zero motion
TRUSTED = 0.5  # real windows carry the flow's trust per pixel (backend.flow.flow_trust): metrics count trust > 0.5


def pooled(a: np.ndarray, pool: int = 4) -> np.ndarray:
    """Average-pool a map (H, W) by ``pool`` -> (H/pool, W/pool) (a partial last cell is dropped)."""
    h, w = a.shape
    h2, w2 = h // pool, w // pool
    return a[:h2 * pool, :w2 * pool].reshape(h2, pool, w2, pool).mean(axis=(1, 3))


def amplitude_map(coeffs: np.ndarray, pool: int = 1) -> np.ndarray:
    """How far each pixel swings: sqrt(sum_{k>=1} |c_k|^2) (x and y, every frequency), (H, W), average-pooled by
    ``pool``."""
    a = np.sqrt((coeffs[1:].astype(np.float64) ** 2).sum(axis=(0, 1)))
    return a if pool == 1 else pooled(a, pool)


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


def power_spectrum(coeffs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Mean power per frequency over the map (or the pixels of ``mask``), (K,): mean_p |A_k,x|^2 + |A_k,y|^2."""
    power = (coeffs.astype(np.float64) ** 2).sum(axis=1)
    return power.mean(axis=(1, 2)) if mask is None else power[:, mask].mean(axis=1)


def log_spectrum_error(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean over k >= 1 of |log10 P_pred(k) - log10 P_true(k)| (paper Fig. 2's quantity), over ``mask``."""
    p = power_spectrum(pred, mask)[1:] + EPS_POWER
    t = power_spectrum(true, mask)[1:] + EPS_POWER
    return float(np.abs(np.log10(p) - np.log10(t)).mean())


# ------------------------------------------------------------------------------------------------ one window
def trusted_spearman(pred: np.ndarray, true: np.ndarray, trust: np.ndarray, pool: int = 4) -> float:
    """Rank correlation of the amplitude maps over trusted 4x4 cells."""
    keep = pooled(trust, pool) > TRUSTED
    if keep.sum() < 3:
        return float("nan")
    return spearman(amplitude_map(pred, pool)[keep], amplitude_map(true, pool)[keep])


def roughness(coeffs: np.ndarray, mask: np.ndarray) -> float:
    """mean |grad c_k| / mean |c_k| over k >= 1 and the pixels of ``mask`` (and their right/lower neighbour): how
    speckled the coefficient fields are (0 for rigid motion, large for noise)."""
    c = coeffs[1:].astype(np.float64)  # (K-1, 4, H, W)
    gx = np.sqrt((np.diff(c, axis=3) ** 2).sum(axis=1))[:, :-1, :]  # (K-1, H-1, W-1)
    gy = np.sqrt((np.diff(c, axis=2) ** 2).sum(axis=1))[:, :, :-1]
    m = mask[:-1, :-1] & mask[1:, :-1] & mask[:-1, 1:]
    grad = np.sqrt(gx ** 2 + gy ** 2)[:, m].mean()
    mag = np.sqrt((c ** 2).sum(axis=1))[:, :-1, :-1][:, m].mean()
    return float(grad / mag) if mag > 0 else float("nan")


def truth_hint(true: np.ndarray, cell: int = 16, share: float = 0.25) -> np.ndarray:
    """The hint a person would paint from the true motion (H, W) in [0, 1]: cells of ``cell`` px whose mean
    amplitude exceeds ``share`` of the 99th percentile of cell amplitudes, grown by one cell, softened."""
    import cv2

    amp = amplitude_map(true)
    h, w = amp.shape
    cells = pooled(amp, cell)
    on = (cells > share * max(np.percentile(cells, 99), 1e-9)).astype(np.float32)
    on = cv2.dilate(on, np.ones((3, 3), np.uint8))
    full = cv2.resize(on, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(cv2.GaussianBlur(full, (0, 0), 2.0), 0.0, 1.0).astype(np.float32)


def trusted_metrics(pred: np.ndarray, true: np.ndarray, trust: np.ndarray, hint: np.ndarray | None = None) -> dict:
    """Metrics of one predicted volume on the trusted pixels of a window (inside the hint, when one was given):
    Spearman of amplitude maps, log10 power-spectrum error, amplitude ratio pred/true, roughness ratio pred/true,
    and with a hint the ratio of mean motion outside (hint < 0.1, every pixel) to inside (hint > 0.5)."""
    mask = trust > TRUSTED
    if hint is not None:
        mask = mask & (hint > 0.5)
    if mask.sum() < 16:
        mask = trust > TRUSTED
    a_pred, a_true = amplitude_map(pred), amplitude_map(true)
    out = {"spearman": trusted_spearman(pred, true, trust),
           "log_spectrum_error": log_spectrum_error(pred, true, mask),
           "amplitude_ratio": float(max(a_pred[mask].mean(), 1e-6) / max(a_true[mask].mean(), 1e-6)),
           "roughness_ratio": float(roughness(pred, mask) / roughness(true, mask)) if a_pred[mask].mean() > 0
           else float("nan")}
    if hint is not None:
        inside, outside = a_pred[hint > 0.5], a_pred[hint < 0.1]
        out["outside_inside"] = float(outside.mean() / max(inside.mean(), 1e-9)) if len(outside) and len(inside) \
            else float("nan")
    return out


GEOMETRIC = ("amplitude_ratio", "roughness_ratio")


def summarise(rows: list) -> dict:
    """Mean of each metric over windows (geometric mean for the ratios), ignoring NaN."""
    out = {}
    for key in rows[0]:
        v = np.asarray([r[key] for r in rows], np.float64)
        v = v[np.isfinite(v)]
        if not len(v):
            out[key] = float("nan")
        elif key in GEOMETRIC:
            out[key] = float(np.exp(np.log(np.maximum(v, 1e-9)).mean()))
        else:
            out[key] = float(v.mean())
    return out


def clip_interval(rows: list, groups: list, key: str, n: int = 2000, level: float = 0.9, seed: int = 0) -> tuple:
    """How far a summary could move with other clips: ``level`` interval of ``summarise(rows)[key]`` when whole
    groups (clips) are drawn with replacement ``n`` times (windows of one clip are not independent: resampling them
    singly would understate the spread). (low, high); (nan, nan) with fewer than 2 groups."""
    names = sorted(set(groups))
    if len(names) < 2:
        return float("nan"), float("nan")
    members = [[j for j, g in enumerate(groups) if g == name] for name in names]
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n):
        pick = [j for c in rng.integers(len(names), size=len(names)) for j in members[c]]
        stats.append(summarise([{key: rows[j][key]} for j in pick])[key])
    stats = np.asarray(stats, np.float64)
    stats = stats[np.isfinite(stats)]
    if not len(stats):
        return float("nan"), float("nan")
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
