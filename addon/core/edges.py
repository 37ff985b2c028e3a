"""Pin Edges: a photo plane's border keeps only the motion along its edge (numpy only; no bpy, no torch).

A backdrop plane is framed by the camera; when its border vertices move with the photo's motion, the edge pulls
inward and the camera sees past it. With the plane written as ``origin + u * eu + v * ev`` (``core.mesh``), a
vertex's motion is ``a * eu + b * ev`` (+ a part along the normal, e.g. depth from motion, kept as it is):

* ``a`` (across the left and right edges) is multiplied by ``f(distance to the nearer of those edges)``,
* ``b`` (across the bottom and top edges) by ``f(distance to the nearer of those)``,

with f(0) = 0 and f rising smoothly (smoothstep) to 1 at ``rows`` grid rows from the edge. So a vertex on the left
edge keeps only its motion along ev (it slides along the edge and the edge stays a straight line on the photo's
border), a corner vertex is still, and the motion returns to full within a few rows without a crease. Distances
are counted in grid steps per direction (the spacing of the plane's distinct U and V values), so ``rows`` means
rows of vertices whatever the grid's density or aspect. Applied to the modal keys' offsets, it holds for every
frame of a loop and of a poke simulation alike (they only weight those keys). The factors are applied where the
volume is sampled at the vertices (``core.mesh.modal_offsets(..., factors=edge_factors(uv))``): the motion along eu
and ev is the sampled x and y displacement.
"""
from __future__ import annotations

import numpy as np

PIN_ROWS = 4  # grid rows over which the pinned motion blends back to full


def smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _grid_step(values: np.ndarray) -> float:
    """Spacing of a grid direction: span / (number of distinct values - 1) (values rounded to 1e-5)."""
    distinct = np.unique(np.round(values, 5))
    if distinct.size < 2:
        return 0.0
    return float(distinct[-1] - distinct[0]) / (distinct.size - 1)


def edge_factors(uv: np.ndarray, rows: int = PIN_ROWS) -> np.ndarray:
    """(N, 2) float64: the factors for each vertex's motion across the left/right edges (column 0, along eu) and
    across the bottom/top edges (column 1, along ev). 0 on the border, 1 from ``rows`` grid steps inward; all 1
    when ``rows`` is 0 (pinning off)."""
    uv = np.asarray(uv, dtype=np.float64)
    out = np.ones((uv.shape[0], 2))
    if rows <= 0 or uv.shape[0] == 0:
        return out
    for axis in (0, 1):
        values = uv[:, axis]
        lo, hi = values.min(), values.max()
        step = _grid_step(values)
        if step <= 0.0:
            continue
        distance = np.minimum(values - lo, hi - values)
        distance[distance < 1e-6 * max(hi - lo, 1e-12)] = 0.0  # exactly on the border
        out[:, axis] = smoothstep(distance / (rows * step))
    return out
