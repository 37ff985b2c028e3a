"""Render pairs kept in one .npz (``scripts/real_render_pairs.py``), with the ``RenderPairs`` sample layout, and
the flow fidelity of a pair.

``NpzPairs(path)[i]`` = {i0, it (3, H, W) float32 in [0, 1], flow (2, H, W) px, weight (H, W) px², t, group,
source}; ``groups()`` lists every pair's group. The arrays stay memory-mapped-like (loaded once, uint8/float16).

*Flow fidelity* (:func:`flow_fidelity`): how well a pair's flow explains its frames, whatever renders them: the
PSNR of I_0 against I_t sampled at p + F(p) (bilinear), over the pixels whose p + F(p) lies inside the frame. Real
pairs carry estimated (DIS) flow; where it is wrong (thin blades, changing light, black backgrounds) no renderer
given that flow can reproduce I_t, so the renderer evaluation reports its numbers per fidelity range as well.
"""
from __future__ import annotations

import numpy as np
import torch

from backend.flow import sample_at

FIDELITY_CAP = 60.0  # dB: identical frames and zero flow


def flow_fidelity(i0: np.ndarray, it: np.ndarray, flow: np.ndarray) -> float:
    """PSNR (dB, <= 60) of I_0 vs I_t(p + F(p)). Images (H, W, C) or (C, H, W) in [0, 1]; flow (2, H, W) px."""
    i0, it = (np.asarray(x, dtype=np.float32) for x in (i0, it))
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"flow must have shape (2, H, W), got {flow.shape}")
    h, w = flow.shape[1:]
    if i0.ndim == 3 and i0.shape[0] in (1, 3) and i0.shape[1:] == (h, w):
        i0, it = i0.transpose(1, 2, 0), it.transpose(1, 2, 0)
    if i0.shape != it.shape or i0.shape[:2] != (h, w):
        raise ValueError(f"frames {i0.shape} and {it.shape} do not match the flow's {h}x{w}")
    back = sample_at(it, flow).reshape(i0.shape)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xx + flow[0], yy + flow[1]
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    if not inside.any():
        return 0.0
    mse = float(((back - i0) ** 2).reshape(h, w, -1).mean(-1)[inside].mean())
    return min(FIDELITY_CAP, -10.0 * np.log10(max(mse, 1e-12)))


class NpzPairs(torch.utils.data.Dataset):
    """``min_flow_fidelity`` (dB): keep only the pairs whose flow explains their frames at least this well."""

    def __init__(self, path: str, min_flow_fidelity: float | None = None):
        with np.load(path, allow_pickle=False) as z:
            self.arrays = {k: z[k] for k in ("i0", "it", "flow", "weight", "t", "group")}
        self.path = path
        self.dropped = 0
        if min_flow_fidelity is not None:
            keep = np.array([self.fidelity(i) >= min_flow_fidelity for i in range(len(self))], dtype=bool)
            self.arrays = {k: v[keep] for k, v in self.arrays.items()}
            self.dropped = int((~keep).sum())

    def fidelity(self, i: int) -> float:
        """:func:`flow_fidelity` of pair ``i``."""
        a = self.arrays
        return flow_fidelity(a["i0"][i] / np.float32(255.0), a["it"][i] / np.float32(255.0),
                             a["flow"][i].astype(np.float32))

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
