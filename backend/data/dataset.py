"""Reading the training dataset (written by ``scripts/build_dataset.py``): motion windows and render pairs.

* :class:`MotionDataset` -- ``ds[i]`` = {photo (3, H, W) float32 in [0, 1] RGB, coeffs (K, 4, H, W) float32 in
  pixels of the map (contract layout), trust (H, W) float32 in [0, 1] (how far the motion can be believed: 1 for
  procedural scenes, ``backend.flow.flow_trust`` for real windows), fps, num_frames, group, source}.
* :class:`RenderPairs` -- ``ds[i]`` = {i0, it (3, H, W) float32 in [0, 1], flow (2, H, W) forward flow 0 -> t in
  pixels, weight (H, W) = mean_t |F_t(p)|^2 over the window (px^2), t, group, source}.
* :func:`load_stats` -- per-frequency normalisation scales etc. from ``stats.npz``; :func:`load_card`.

Shards are memory-mapped ``.npy`` files (``backend/data/shards.py``), so random access reads one sample from disk.
Splits hold out whole groups (a real clip, a synthetic scene seed): :func:`assign_splits` decides val, the build's
``--holdout`` names the real clips of split ``test`` (never trained, validated or calibrated on), the build writes
the decision into ``card.json`` and the readers only follow it. A dataset without ``card.json`` is incomplete.

``augment`` is a callable ``augment(sample, rng) -> sample`` working on the numpy sample (see
``backend/data/augment.py``); ``rng`` is a ``numpy.random.Generator`` seeded by (seed, epoch, index), so a run is
reproducible whatever the number of loader workers. Call :meth:`set_epoch` to draw new augmentations per epoch.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Callable, Iterable, Optional

import numpy as np
import torch

from .shards import open_arrays, read_meta

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "all")
CARD = "card.json"
STATS = "stats.npz"


class DatasetError(ValueError):
    """The dataset folder is missing, incomplete or not a dataset; the message says what to do."""


def load_card(root) -> dict:
    path = os.path.join(os.fspath(root), CARD)
    if not os.path.isfile(path):
        hint = ("the build is still running or was interrupted: rerun scripts/build_dataset.py with the same "
                "arguments to resume") if os.path.isdir(os.path.join(os.fspath(root), "motion")) else \
            "build one with scripts/build_dataset.py"
        raise DatasetError(f"'{root}' has no {CARD}: not a complete dataset ({hint})")
    with open(path) as f:
        card = json.load(f)
    if card.get("format") != "gid-dataset":
        raise DatasetError(f"'{path}' is not a gid-dataset card (format={card.get('format')!r})")
    return card


def load_stats(root) -> dict:
    """``stats.npz`` as a dict of numpy arrays: scales (K,) float32, mean_power (K,), hist_counts (K, B),
    hist_edges_log10 (B + 1,), ... (see docs/dataset.md)."""
    path = os.path.join(os.fspath(root), STATS)
    if not os.path.isfile(path):
        raise DatasetError(f"'{path}' does not exist: rerun the scripts/build_dataset.py command that built "
                           f"'{root}' (finished jobs are skipped; statistics and card are written again)")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def group_hash(group: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{group}".encode()).hexdigest()


def assign_splits(groups: Iterable[str], seed: int = 0, val_fraction: float = 0.05,
                  val_fraction_real: float = 0.15) -> list:
    """Held-out groups: per source (the prefix before ':'), the ``fraction`` of groups with the smallest
    sha1(seed:group); at least one when a source has two groups or more. Returns the sorted val groups."""
    by_source = {}
    for g in sorted(set(groups)):
        by_source.setdefault(g.split(":", 1)[0], []).append(g)
    val = []
    for source, gs in by_source.items():
        frac = val_fraction_real if source == "real" else val_fraction
        n = int(round(frac * len(gs)))
        if len(gs) >= 2 and frac > 0:
            n = max(n, 1)
        val += sorted(gs, key=lambda g: group_hash(g, seed))[:n]
    return sorted(val)


class _ShardIndex:
    """(shard, row) of every sample of one kind in a split, and lazily opened memory maps."""

    def __init__(self, root, kind: str, split: str, card: Optional[dict] = None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got '{split}'")
        self.root, self.kind = os.fspath(root), kind
        self.card = card if card is not None else load_card(root)
        val = set(self.card["splits"]["val_groups"])
        test = set(self.card["splits"].get("test_groups", []))
        self.shards, self.samples, self.rows = [], [], []
        for entry in self.card["shards"][kind]:
            meta = read_meta(self.root, kind, entry["name"])
            si = len(self.shards)
            self.shards.append(entry["name"])
            for row, s in enumerate(meta["samples"]):
                g = s["group"]
                if split == "all" or split == ("test" if g in test else "val" if g in val else "train"):
                    self.rows.append((si, row))
                    self.samples.append(s)
        self._arrays = {}
        self._pid = None

    def arrays(self, si: int) -> dict:
        if self._pid != os.getpid():  # memory maps are per process (loader workers fork)
            self._arrays, self._pid = {}, os.getpid()
        if si not in self._arrays:
            self._arrays[si] = open_arrays(self.root, self.kind, self.shards[si])
        return self._arrays[si]

    def __len__(self):
        return len(self.rows)


class _Base(torch.utils.data.Dataset):
    kind = ""

    def __init__(self, root, split: str = "train", augment: Optional[Callable] = None, seed: int = 0):
        self.index = _ShardIndex(root, self.kind, split)
        self.root, self.split, self.augment, self.seed, self.epoch = os.fspath(root), split, augment, seed, 0
        cfg = self.index.card["config"]
        self.width, self.height, self.k = int(cfg["width"]), int(cfg["height"]), int(cfg["k"])

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def groups(self) -> list:
        """Group of every sample, in index order (for group-aware samplers and checks)."""
        return [s["group"] for s in self.index.samples]

    def _row(self, i: int):
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        si, row = self.index.rows[i % len(self)]
        return self.index.arrays(si), row, self.index.samples[i % len(self)]

    def _finish(self, sample: dict, i: int) -> dict:
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, i % len(self)])
            sample = self.augment(sample, rng)
        return {k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
                for k, v in sample.items()}


class MotionDataset(_Base):
    """(photo, spectral volume) windows; see the module docstring for the sample layout."""
    kind = "motion"

    def __getitem__(self, i: int) -> dict:
        arr, row, meta = self._row(i)
        trust = arr["trust"][row] if "trust" in arr else None
        sample = {"photo": np.array(arr["photo"][row], np.float32).transpose(2, 0, 1) / 255.0,  # (3, H, W)
                  "coeffs": np.array(arr["coeffs"][row], np.float32),  # (K, 4, H, W)
                  "trust": (np.ones((self.height, self.width), np.float32) if trust is None
                            else np.array(trust, np.float32) / 255.0),  # (H, W) in [0, 1]
                  "fps": float(meta["fps"]), "num_frames": int(meta["num_frames"]),
                  "group": meta["group"], "source": meta["source"]}
        return self._finish(sample, i)


class RenderPairs(_Base):
    """(I_0, I_t, flow 0 -> t, W) pairs; see the module docstring for the sample layout."""
    kind = "render"

    def __getitem__(self, i: int) -> dict:
        arr, row, meta = self._row(i)
        sample = {"i0": np.array(arr["i0"][row], np.float32).transpose(2, 0, 1) / 255.0,
                  "it": np.array(arr["it"][row], np.float32).transpose(2, 0, 1) / 255.0,
                  "flow": np.array(arr["flow"][row], np.float32),  # (2, H, W)
                  "weight": np.array(arr["weight"][row], np.float32),  # (H, W)
                  "t": int(meta["t"]), "group": meta["group"], "source": meta["source"]}
        return self._finish(sample, i)
