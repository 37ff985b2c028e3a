"""Mesh warping as Blender renders a baked photo plane, reproduced in numpy (the evaluation's baseline).

The add-on's plane is a grid of ``columns x rows`` vertices (``addon.core.mesh.default_grid_size``: one vertex per
2 pixels of a 256-wide map) whose UVs span the photo. A vertex at map pixel position (x, y) = (u W, (1 - v) H) is
moved by the displacement sampled bilinearly there (``addon.core.spectral.sample_bilinear``, pixel centres at
integer + 0.5); each grid quad is two triangles (v0 v1 v2, v0 v2 v3, as Cycles splits quads). Every output pixel
centre covered by a moved triangle takes the photo at the barycentrically interpolated UV (Blender's "Linear"
image interpolation with "Extend"); where triangles overlap the one with more motion is in front (the add-on's
Depth from Motion); pixels no triangle covers (the border a plane moved away from) show ``background``.
"""
from __future__ import annotations

import numpy as np

from addon.core import mesh as core_mesh
from addon.core.spectral import sample_bilinear


def sample_texture(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``image`` (H, W, C) at UVs (N,) with clamped edges (Blender Linear + Extend) -> (N, C)."""
    h, w = image.shape[:2]
    chw = np.moveaxis(image, -1, 0)[None]  # (1, C, H, W)
    return sample_bilinear(chw, u * w, (1.0 - v) * h)[0].T


def mesh_warp(image: np.ndarray, flow: np.ndarray, depth: np.ndarray | None = None, columns: int | None = None,
              background: float = 0.0) -> np.ndarray:
    """Render ``image`` (H, W, 3) float on a grid moved by ``flow`` (2, H, W) (pixels, x right, y down).

    ``depth`` (H, W): larger = in front where triangles overlap (e.g. RMS motion); None = all equal (the last
    triangle in grid order wins). ``columns``: grid vertices across (default: one per 2 pixels of a 256-wide
    map, as the add-on makes planes). Returns (H, W, 3) float32.
    """
    h, w = image.shape[:2]
    cols, rows = core_mesh.default_grid_size(w, h, columns if columns is not None else
                                             core_mesh.WORKING_WIDTH // core_mesh.DEFAULT_PIXELS_PER_VERTEX)
    loop_vertex, _, uv = core_mesh.grid_topology(cols, rows)
    uv = uv.astype(np.float64)
    x, y = core_mesh.uv_to_pixels(uv, w, h)
    disp = sample_bilinear(np.asarray(flow, np.float64)[None], x, y)[0].astype(np.float64)  # (2, N)
    px, py = x + disp[0], y + disp[1]
    z = np.zeros_like(px) if depth is None else sample_bilinear(np.asarray(depth, np.float64)[None, None], x, y)[0, 0]
    quads = loop_vertex.reshape(-1, 4)
    tris = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]], axis=0)  # (T, 3)
    order = np.argsort(np.concatenate([np.arange(len(quads)) * 2, np.arange(len(quads)) * 2 + 1]), kind="stable")
    tris = tris[order]  # grid order: both triangles of a quad together
    ax, ay, bx, by, cx, cy = (px[tris[:, 0]], py[tris[:, 0]], px[tris[:, 1]], py[tris[:, 1]],
                              px[tris[:, 2]], py[tris[:, 2]])
    den = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
    ok = np.abs(den) > 1e-12  # degenerate (zero-area) triangles cover nothing
    # Pixel centres (i + 0.5) inside each triangle's bounding box.
    x0 = np.floor(np.minimum(np.minimum(ax, bx), cx) - 0.5).astype(np.int64) + 1
    x1 = np.floor(np.maximum(np.maximum(ax, bx), cx) - 0.5).astype(np.int64)
    y0 = np.floor(np.minimum(np.minimum(ay, by), cy) - 0.5).astype(np.int64) + 1
    y1 = np.floor(np.maximum(np.maximum(ay, by), cy) - 0.5).astype(np.int64)
    x0, y0 = np.maximum(x0, 0), np.maximum(y0, 0)
    x1, y1 = np.minimum(x1, w - 1), np.minimum(y1, h - 1)
    span_x = int(max(0, (x1 - x0 + 1)[ok].max(initial=0)))
    span_y = int(max(0, (y1 - y0 + 1)[ok].max(initial=0)))
    best_z = np.full(h * w, -np.inf)
    best_key = np.full(h * w, -1, dtype=np.int64)
    best_uv = np.zeros((h * w, 2))
    tri_index = np.arange(len(tris))
    eps = 1e-9
    for dy in range(span_y):
        for dx in range(span_x):
            qx, qy = x0 + dx, y0 + dy
            sel = ok & (qx <= x1) & (qy <= y1)
            if not sel.any():
                continue
            t = tri_index[sel]
            cxq, cyq = qx[sel] + 0.5, qy[sel] + 0.5
            l1 = ((by[t] - cy[t]) * (cxq - cx[t]) + (cx[t] - bx[t]) * (cyq - cy[t])) / den[t]
            l2 = ((cy[t] - ay[t]) * (cxq - cx[t]) + (ax[t] - cx[t]) * (cyq - cy[t])) / den[t]
            l3 = 1.0 - l1 - l2
            inside = (l1 >= -eps) & (l2 >= -eps) & (l3 >= -eps)
            if not inside.any():
                continue
            t, l1, l2, l3 = t[inside], l1[inside], l2[inside], l3[inside]
            pix = (qy[sel][inside] * w + qx[sel][inside])
            vz = l1 * z[tris[t, 0]] + l2 * z[tris[t, 1]] + l3 * z[tris[t, 2]]
            vuv = (l1[:, None] * uv[tris[t, 0]] + l2[:, None] * uv[tris[t, 1]] + l3[:, None] * uv[tris[t, 2]])
            # Resolve: the front-most (then the later triangle in grid order) wins, also among this pass's hits.
            better = (vz > best_z[pix]) | ((vz == best_z[pix]) & (t > best_key[pix]))
            pix, vz, vuv, t = pix[better], vz[better], vuv[better], t[better]
            if pix.size == 0:
                continue
            rank = np.lexsort((t, vz, pix))  # by pixel, then depth, then triangle: the last of each pixel wins
            pix, vz, vuv, t = pix[rank], vz[rank], vuv[rank], t[rank]
            last = np.r_[pix[1:] != pix[:-1], True]
            pix, vz, vuv, t = pix[last], vz[last], vuv[last], t[last]
            best_z[pix], best_key[pix], best_uv[pix] = vz, t, vuv
    out = np.full((h * w, image.shape[2]), background, dtype=np.float64)
    covered = best_key >= 0
    out[covered] = sample_texture(np.asarray(image, np.float64), best_uv[covered, 0], best_uv[covered, 1])
    return out.reshape(h, w, -1).astype(np.float32)
