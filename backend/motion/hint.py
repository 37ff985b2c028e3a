"""The optional "moves here" hint: an artist's map of where the photo moves (1 = moves, 0 = still, grey = less).

A hint is any 2D map in [0, 1] at any size (the CLI's ``--moves MASK.png``, the service's ``moves`` field, the
Blender add-on's painted ``IDyn_moves`` group). It is stretched over the motion map with corners on corners (as the
plane's UVs put vertices at 0 and 1) and used twice:

* as a **condition** of models trained with hints (v2): the network sees it and predicts how much and how the hinted
  area moves from the photo;
* as a **gate** for every model: each pixel's coefficients are multiplied by the hint there (the contract's
  amplitude control, per pixel), so what is painted still stays still and grey moves less.

and as a **floor**: painted means "moves", so when a model predicts the painted area too still to see (v2 moves
far landscapes by ~0.005 px), the whole volume is scaled until the painted area moves just visibly, by the add-on's
own "too small to see" measure (:func:`floor_inside`). Where and how it moves (the pattern, the spectrum) stay the
photo's; only the amount is raised, never lowered.

Absent = automatic: the model decides alone. A hint that is black everywhere would freeze the whole photo; it is
refused (:class:`HintError`) so that the user paints where it moves instead of getting a silent still loop.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.nn import functional as F

from addon.core.heat import GENTLE, moving_parts

# A hint whose brightest value is below this is "black everywhere".
MIN_PEAK = 1.0 / 255.0
PAINTED = 0.5  # pixels with a hint above this are "painted"
HINT_RULES = 2  # how a hint acts on a prediction (2: gate + floor); part of the service's cache key


class HintError(ValueError):
    """A hint that cannot be used; the message says what to do."""


def check_hint(moves) -> np.ndarray:
    """A usable hint (h, w) float32 in [0, 1]; raises :class:`HintError` naming the problem."""
    m = np.asarray(moves, dtype=np.float32)
    if m.ndim != 2 or min(m.shape) < 2:
        raise HintError(f"the moves hint must be a 2D map of at least 2x2 values, got shape {m.shape}")
    if not np.all(np.isfinite(m)) or m.min() < 0.0 or m.max() > 1.0:
        raise HintError("the moves hint must hold values in [0, 1] (1 = moves, 0 = still)")
    if m.max() < MIN_PEAK:
        raise HintError("the moves hint is black everywhere, so nothing would move: paint white where the photo "
                        "moves, or send no hint to let the model decide")
    return m


def hint_map(moves, width: int, height: int, device=None) -> torch.Tensor:
    """Hint (h, w) -> (1, 1, height, width) float32 on the motion map: area-averaged when shrinking, bilinear with
    corners on corners when enlarging."""
    m = torch.from_numpy(check_hint(moves))[None, None].to(device=device)
    h, w = m.shape[-2:]
    if w >= width and h >= height:
        return F.interpolate(m, size=(height, width), mode="area")
    return F.interpolate(m, size=(height, width), mode="bilinear", align_corners=True).clamp(0.0, 1.0)


def gate(coeffs: torch.Tensor, hint: Optional[torch.Tensor]) -> torch.Tensor:
    """Coefficients (B, K, 4, H, W) times the hint (B or 1, 1, H, W) at the same map size; None = unchanged."""
    if hint is None:
        return coeffs
    return coeffs * hint[:, None]


def floor_inside(coeffs: torch.Tensor, hint: Optional[torch.Tensor]) -> tuple:
    """Make a painted area that the model predicts nearly still move just visibly: coefficients (B, K, 4, H, W)
    (already gated) and the hint (B or 1, 1, H, W) -> (coefficients, gain per photo (B,)). The painted area's
    moving parts (``addon.core.heat.moving_parts`` over pixels with hint > PAINTED) are measured as the add-on's
    "too small to see" note measures a photo; a photo whose painted area stays under GENTLE of the map's height is
    scaled as a whole up to it. Others, and volumes with no motion at all where painted, keep gain 1; no hint:
    unchanged."""
    ones = torch.ones(coeffs.shape[0], device=coeffs.device)
    if hint is None:
        return coeffs, ones
    floor = GENTLE * coeffs.shape[-2]
    painted = (hint[:, 0] > PAINTED).expand(coeffs.shape[0], *coeffs.shape[-2:]).cpu().numpy()
    gains = []
    for c, m in zip(coeffs.detach().cpu().numpy(), painted):
        level = moving_parts(c, m)
        gains.append(floor / level if 1e-9 < level < floor else 1.0)
    gain = torch.tensor(gains, dtype=coeffs.dtype, device=coeffs.device)
    return coeffs * gain[:, None, None, None, None], gain
