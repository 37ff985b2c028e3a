"""Render pairs kept in one .npz (``scripts/real_render_pairs.py``), with the ``RenderPairs`` sample layout.

``NpzPairs(path)[i]`` = {i0, it (3, H, W) float32 in [0, 1], flow (2, H, W) px, weight (H, W) px², t, group,
source}; ``groups()`` lists every pair's group. The arrays stay memory-mapped-like (loaded once, uint8/float16).
"""
from __future__ import annotations

import numpy as np
import torch


class NpzPairs(torch.utils.data.Dataset):
    def __init__(self, path: str):
        with np.load(path, allow_pickle=False) as z:
            self.arrays = {k: z[k] for k in ("i0", "it", "flow", "weight", "t", "group")}
        self.path = path

    def __len__(self) -> int:
        return len(self.arrays["t"])

    def groups(self) -> list:
        return [str(g) for g in self.arrays["group"]]

    def __getitem__(self, i: int) -> dict:
        a = self.arrays
        return {"i0": torch.from_numpy(a["i0"][i].astype(np.float32).transpose(2, 0, 1) / 255.0),
                "it": torch.from_numpy(a["it"][i].astype(np.float32).transpose(2, 0, 1) / 255.0),
                "flow": torch.from_numpy(a["flow"][i].astype(np.float32)),
                "weight": torch.from_numpy(a["weight"][i].astype(np.float32)),
                "t": int(a["t"][i]), "group": str(a["group"][i]), "source": "real"}
