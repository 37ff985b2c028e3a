"""On-disk shards of the training dataset: memory-mappable ``.npy`` arrays plus a ``meta.json`` per shard.

Layout under the dataset root (see docs/dataset.md)::

    motion/<shard>/photo.npy    uint8   (N, H, W, 3)     RGB photo (frame 0 of the window)
    motion/<shard>/coeffs.npy   float16 (N, K, 4, H, W)  spectral volume, pixels of the map, y down
    motion/<shard>/trust.npy    uint8   (N, H, W)        how far the motion can be believed (255 = exact; real
                                                         windows: backend.flow.flow_trust); absent in version-1
                                                         datasets (read as 255)
    motion/<shard>/meta.json    {"count": N, "samples": [{group, source, fps, num_frames, ...}, ...]}
    render/<shard>/i0.npy       uint8   (N, H, W, 3)
    render/<shard>/it.npy       uint8   (N, H, W, 3)     frame t
    render/<shard>/flow.npy     float16 (N, 2, H, W)     forward flow 0 -> t in pixels
    render/<shard>/weight.npy   float32 (N, H, W)        W(p) = mean_t |F_t(p)|^2 over the window (px^2)
    render/<shard>/meta.json    {"count": N, "samples": [{group, source, t, fps, num_frames, ...}, ...]}

A shard is written into a temporary folder and renamed into place, so a folder that exists is complete.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np

from addon.core.files import atomic_path

MOTION_ARRAYS = {"photo": np.uint8, "coeffs": np.float16, "trust": np.uint8}
OPTIONAL = {("motion", "trust")}  # arrays a version-1 dataset does not have
RENDER_ARRAYS = {"i0": np.uint8, "it": np.uint8, "flow": np.float16, "weight": np.float32}
KINDS = {"motion": MOTION_ARRAYS, "render": RENDER_ARRAYS}


def write_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=False)


def write_shard(root, kind: str, name: str, arrays: dict, samples: list) -> int:
    """Write one shard atomically; ``arrays`` maps the kind's array names to stacked arrays (or lists of rows)."""
    spec = KINDS[kind]
    if set(arrays) != set(spec):
        raise ValueError(f"{kind} shard needs arrays {sorted(spec)}, got {sorted(arrays)}")
    final = os.path.join(root, kind, name)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    n = len(samples)
    for key, dtype in spec.items():
        a = np.asarray(arrays[key], dtype=dtype)
        if a.shape[0] != n:
            raise ValueError(f"{kind} shard '{name}': {key} has {a.shape[0]} rows for {n} samples")
        np.save(os.path.join(tmp, f"{key}.npy"), a)
    write_json(os.path.join(tmp, "meta.json"), {"count": n, "samples": samples})
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return n


def read_meta(root, kind: str, name: str) -> dict:
    with open(os.path.join(root, kind, name, "meta.json")) as f:
        return json.load(f)


def open_arrays(root, kind: str, name: str) -> dict:
    """Memory-mapped arrays of one shard (read-only); an optional array the shard lacks is missing from the dict."""
    out = {}
    for key in KINDS[kind]:
        path = os.path.join(root, kind, name, f"{key}.npy")
        if (kind, key) in OPTIONAL and not os.path.isfile(path):
            continue
        out[key] = np.load(path, mmap_mode="r")
    return out


def clean_partial(root) -> None:
    """Remove half-written shard folders left by an interrupted build."""
    for kind in KINDS:
        base = os.path.join(root, kind)
        if os.path.isdir(base):
            for entry in os.listdir(base):
                if entry.endswith(".tmp"):
                    shutil.rmtree(os.path.join(base, entry), ignore_errors=True)
