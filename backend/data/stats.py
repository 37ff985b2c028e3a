"""Dataset statistics for frequency-adaptive normalisation (paper section 4 and Fig. 2).

Over the train split, per frequency k: a histogram of |coefficient| on log-spaced bins (all pixels, all four
channels, every window), from which the 95th percentile s_k is read (log-linear interpolation inside a bin, bins
of 1/200 decade: relative error < 1.2%, against ``addon.core.spectral.normalization_scales`` on the same data);
the average power |A_k|^2 = |A_k,x|^2 + |A_k,y|^2 per pixel; and the share of exactly-zero coefficients. Values
below 10^LOG_MIN px count in an underflow bin (they are noise for any purpose here).

``stats.npz`` keys: ``scales`` (K,) float32, ``percentile``, ``mean_power`` (K,), ``mean_power_synthetic``,
``mean_power_real`` (K,), ``hist_counts`` (K, B + 1) int64 (column 0 = underflow), ``hist_edges_log10`` (B + 1,),
``freqs_hz`` (K,) at the default 30 fps / 150 frames, ``num_windows``, ``num_windows_synthetic``,
``num_windows_real``.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from addon.core.files import atomic_path
from addon.core.spectral import NORMALIZATION_PERCENTILE

log = logging.getLogger(__name__)

LOG_MIN, LOG_MAX, BINS_PER_DECADE = -5.0, 3.0, 200
NUM_BINS = int((LOG_MAX - LOG_MIN) * BINS_PER_DECADE)


def edges_log10() -> np.ndarray:
    return np.linspace(LOG_MIN, LOG_MAX, NUM_BINS + 1)


class StatsAccumulator:
    """Add windows' coeffs (K, 4, H, W) one at a time; merge accumulators from several workers with ``+=``."""

    def __init__(self, k: int):
        self.k = k
        self.counts = np.zeros((k, NUM_BINS + 1), np.int64)
        self.power = {"synthetic": np.zeros(k), "real": np.zeros(k)}
        self.windows = {"synthetic": 0, "real": 0}

    def add(self, coeffs: np.ndarray, source: str) -> None:
        c = np.abs(np.asarray(coeffs, np.float32)).reshape(self.k, -1)  # (K, 4 * H * W)
        idx = np.floor((np.log10(np.maximum(c, 1e-30)) - LOG_MIN) * BINS_PER_DECADE).astype(np.int64) + 1
        idx = np.clip(idx, 0, NUM_BINS)  # underflow (incl. zeros) -> 0, overflow -> last bin
        offs = (np.arange(self.k) * (NUM_BINS + 1))[:, None]
        self.counts += np.bincount((idx + offs).ravel(), minlength=self.k * (NUM_BINS + 1)).reshape(self.k, -1)
        hw = c.shape[1] // 4
        key = "real" if source == "real" else "synthetic"
        self.power[key] += (c.astype(np.float64) ** 2).sum(axis=1) / hw
        self.windows[key] += 1

    def __iadd__(self, other: "StatsAccumulator"):
        self.counts += other.counts
        for key in self.power:
            self.power[key] += other.power[key]
            self.windows[key] += other.windows[key]
        return self

    def percentile(self, q: float = NORMALIZATION_PERCENTILE, eps: float = 1e-6) -> np.ndarray:
        edges = edges_log10()
        out = np.empty(self.k, np.float32)
        for k in range(self.k):
            cum = np.cumsum(self.counts[k])
            total = cum[-1]
            if total == 0:
                out[k] = eps
                continue
            target = q / 100.0 * (total - 1) + 1  # rank of the percentile sample (1-based)
            b = int(np.searchsorted(cum, target))
            if b == 0:
                out[k] = eps
                continue
            before = cum[b - 1]
            frac = (target - before) / max(self.counts[k, b], 1)
            out[k] = 10.0 ** (edges[b - 1] + frac * (edges[b] - edges[b - 1]))
        return np.maximum(out, eps).astype(np.float32)

    def result(self, fps: float = 30.0, num_frames: int = 150) -> dict:
        n = sum(self.windows.values())
        if n == 0:
            raise ValueError("no windows in the train split: the statistics need at least one")
        mean = lambda key: (self.power[key] / max(self.windows[key], 1)).astype(np.float32)  # noqa: E731
        total = (self.power["synthetic"] + self.power["real"]) / n
        return {"scales": self.percentile(), "percentile": np.float32(NORMALIZATION_PERCENTILE),
                "mean_power": total.astype(np.float32), "mean_power_synthetic": mean("synthetic"),
                "mean_power_real": mean("real"), "hist_counts": self.counts,
                "hist_edges_log10": edges_log10().astype(np.float32),
                "freqs_hz": (np.arange(self.k) * fps / num_frames).astype(np.float32),
                "num_windows": np.int64(n), "num_windows_synthetic": np.int64(self.windows["synthetic"]),
                "num_windows_real": np.int64(self.windows["real"])}


def save_stats(path, stats: dict) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, **stats)


def update_stats(root, **arrays) -> None:
    """Add or replace arrays in a dataset's ``stats.npz`` (e.g. latent whitening statistics computed by a model
    trained on it, so they travel with the data). The normalisation keys cannot be overwritten."""
    path = os.path.join(os.fspath(root), "stats.npz")
    with np.load(path, allow_pickle=False) as z:
        stats = {k: z[k] for k in z.files}
    fixed = {"scales", "percentile", "hist_counts", "hist_edges_log10", "mean_power"} & set(arrays)
    if fixed:
        raise ValueError(f"stats.npz keys {sorted(fixed)} come from the data and cannot be replaced")
    stats.update({k: np.asarray(v) for k, v in arrays.items()})
    save_stats(path, stats)


def shard_stats(root, name: str, held_out, k: int) -> StatsAccumulator:
    """Statistics of the train-split windows of one motion shard (``held_out``: the val and test groups)."""
    from .shards import open_arrays, read_meta

    acc = StatsAccumulator(k)
    meta = read_meta(root, "motion", name)
    if meta["count"] == 0:
        return acc
    coeffs = open_arrays(root, "motion", name)["coeffs"]
    held_out = set(held_out)
    for row, s in enumerate(meta["samples"]):
        if s["group"] not in held_out:
            acc.add(coeffs[row], s["source"])
    return acc


def dataset_stats(root, card: dict, map_fn=map) -> dict:
    """Stats over the train split of a dataset described by ``card`` (it need not be written yet).
    ``map_fn`` may be a process pool's ``imap_unordered`` to spread the shards over workers."""
    k = int(card["config"]["k"])
    held_out = card["splits"]["val_groups"] + card["splits"].get("test_groups", [])
    acc = StatsAccumulator(k)
    names = [s["name"] for s in card["shards"]["motion"] if s["count"] > 0]
    for part in map_fn(_shard_stats_args, [(os.fspath(root), n, held_out, k) for n in names]):
        acc += part
    return acc.result(float(card["config"]["fps"]), int(card["config"]["num_frames"]))


def _shard_stats_args(args) -> StatsAccumulator:
    return shard_stats(*args)
