"""The motion brush's hint image: vertex weights painted on a photo plane -> a greyscale "moves here" image of the
photo (numpy only; no bpy, no torch).

The backend's motion model takes an optional hint at any size (1 = moves, 0 = still, grey = less; white = moves in
the PNG). The plane shows the photo through its UVs, so the hint is drawn through them too: every triangle of the
mesh is rasterised in UV space with its corners' weights interpolated (as Blender shades them), at pixel centres
``u = (x + 0.5) / W``, ``v = 1 - (y + 0.5) / H`` (row 0 = the top of the photo, v = 1). Edited UVs therefore still
map correctly: a mirrored, rotated, cropped or re-packed UV layout puts each weight on the part of the photo that
vertex shows. What cannot be mapped is reported (:class:`HintReport`): parts of the photo that no face shows get
the nearest painted value, faces outside the photo (UVs beyond 0..1) are cut off, and where UV islands overlap
with different weights the hint takes their mean.
"""
from __future__ import annotations

import dataclasses

import numpy as np

LONG_SIDE = 256  # pixels on the hint's longer side (the motion model works on a 256 x 160 map)
STILL = 0.5 / 255.0  # weights at or below this are black in an 8-bit hint


class HintError(ValueError):
    """The painted weights cannot become a hint; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class HintReport:
    """How well the plane's UVs cover the photo: ``covered`` share of hint pixels some face shows, ``outside``
    share of the faces' UV area beyond the photo, ``overlap`` share of covered pixels shown by faces whose weights
    disagree (> 1/255 apart)."""

    covered: float
    outside: float
    overlap: float

    def warnings(self) -> list:
        out = []
        if self.covered < 0.98:
            out.append(f"The plane shows only {100 * self.covered:.0f}% of the photo (its UVs were edited): the "
                       "motion brush's hint takes the nearest painted weight elsewhere")
        if self.outside > 0.02:
            out.append(f"{100 * self.outside:.0f}% of the plane's UV area lies outside the photo: weights painted "
                       "there are not part of the hint")
        if self.overlap > 0.01:
            out.append(f"UV islands overlap on {100 * self.overlap:.0f}% of the photo with different weights: the "
                       "hint takes their mean there (unwrap without overlaps for an exact hint)")
        return out


def hint_size(photo_width: int, photo_height: int, long_side: int = LONG_SIDE) -> tuple:
    """(W, H) of the hint: the photo's aspect with ``long_side`` pixels on its longer side (never above the
    photo's own size), both >= 2."""
    if photo_width < 1 or photo_height < 1:
        raise HintError(f"the photo has no pixels ({photo_width}x{photo_height}): reload it")
    scale = min(1.0, long_side / max(photo_width, photo_height))
    return max(2, int(round(photo_width * scale))), max(2, int(round(photo_height * scale)))


def is_painted(assigned: np.ndarray) -> bool:
    """A brush group counts as painted once any vertex is in it (an empty group = automatic motion)."""
    return bool(np.any(assigned))


def check_weights(weights: np.ndarray, group: str) -> None:
    """HintError when painted weights would make nothing move."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.size == 0 or float(weights.max()) <= STILL:
        raise HintError(f"The motion brush '{group}' is painted but its weight is 0 everywhere, so nothing would "
                        "move. Paint weight 1 where the photo moves (Paint Motion), or press the brush's X to "
                        "remove the group and let the model decide")


def rasterize(tri_uv: np.ndarray, tri_weights: np.ndarray, width: int, height: int):
    """Draw triangles with per-corner weights into a (height, width) image through their UVs.

    ``tri_uv`` (T, 3, 2) corner UVs, ``tri_weights`` (T, 3). Returns ``(image, count, spread)``: the mean of the
    interpolated weights of the triangles covering each pixel centre (0 where none), how many cover it, and the
    spread (max - min) of their values there."""
    tri_uv = np.asarray(tri_uv, dtype=np.float64)
    tri_w = np.asarray(tri_weights, dtype=np.float64)
    if tri_uv.ndim != 3 or tri_uv.shape[1:] != (3, 2) or tri_w.shape != tri_uv.shape[:2]:
        raise ValueError(f"need (T, 3, 2) UVs and (T, 3) weights, got {tri_uv.shape} and {tri_w.shape}")
    # pixel coordinates of the corners: x = u W, y = (1 - v) H (pixel centres at integer + 0.5)
    px = tri_uv[..., 0] * width
    py = (1.0 - tri_uv[..., 1]) * height
    x0 = np.clip(np.ceil(px.min(axis=1) - 0.5), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(px.max(axis=1) - 0.5), -1, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(py.min(axis=1) - 0.5), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(py.max(axis=1) - 0.5), -1, height - 1).astype(np.int64)
    nx = np.maximum(x1 - x0 + 1, 0)
    ny = np.maximum(y1 - y0 + 1, 0)
    counts = nx * ny
    total = np.zeros(height * width)
    hits = np.zeros(height * width)
    lo = np.full(height * width, np.inf)
    hi = np.full(height * width, -np.inf)
    if counts.sum() == 0:
        return total.reshape(height, width), hits.reshape(height, width), np.zeros((height, width))
    tri = np.repeat(np.arange(len(counts)), counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cx = x0[tri] + offset % nx[tri]
    cy = y0[tri] + offset // nx[tri]
    sx, sy = cx + 0.5, cy + 0.5
    ax, ay = px[tri, 0], py[tri, 0]
    bx, by = px[tri, 1], py[tri, 1]
    qx, qy = px[tri, 2], py[tri, 2]
    det = (by - qy) * (ax - qx) + (qx - bx) * (ay - qy)
    ok = np.abs(det) > 1e-12
    det = np.where(ok, det, 1.0)
    l0 = ((by - qy) * (sx - qx) + (qx - bx) * (sy - qy)) / det
    l1 = ((qy - ay) * (sx - qx) + (ax - qx) * (sy - qy)) / det
    l2 = 1.0 - l0 - l1
    eps = -1e-9
    inside = ok & (l0 >= eps) & (l1 >= eps) & (l2 >= eps)
    value = l0 * tri_w[tri, 0] + l1 * tri_w[tri, 1] + l2 * tri_w[tri, 2]
    flat = (cy * width + cx)[inside]
    value = value[inside]
    np.add.at(total, flat, value)
    np.add.at(hits, flat, 1.0)
    np.minimum.at(lo, flat, value)
    np.maximum.at(hi, flat, value)
    covered = hits > 0
    image = np.where(covered, total / np.maximum(hits, 1.0), 0.0)
    spread = np.where(covered, hi - lo, 0.0)
    return image.reshape(height, width), hits.reshape(height, width), spread.reshape(height, width)


def fill_from_neighbours(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``values`` (h, w) where ``known``; elsewhere, ring by ring, the mean of the already known 8-neighbours (so
    every pixel takes the nearest known values). All zeros when nothing is known."""
    values = np.asarray(values, dtype=np.float64)
    known = np.asarray(known, dtype=bool).copy()
    h, w = values.shape
    out = np.where(known, values, 0.0)
    if not known.any():
        return out
    while not known.all():
        pad_v = np.pad(np.where(known, out, 0.0), 1)
        pad_k = np.pad(known.astype(np.float64), 1)
        sum_v = sum(pad_v[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        sum_k = sum(pad_k[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        grow = ~known & (sum_k > 0)
        out[grow] = sum_v[grow] / sum_k[grow]
        known |= grow
    return out


def _uv_area(tri_uv: np.ndarray) -> np.ndarray:
    a, b, c = tri_uv[:, 0], tri_uv[:, 1], tri_uv[:, 2]
    return 0.5 * np.abs((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1]))


def moves_hint(tri_uv: np.ndarray, tri_weights: np.ndarray, width: int, height: int):
    """The hint (height, width) float32 in [0, 1] (row 0 = top of the photo) and its :class:`HintReport`.

    HintError when the UVs cannot carry one (no face has area in the photo)."""
    tri_uv = np.asarray(tri_uv, dtype=np.float64)
    area = _uv_area(tri_uv)
    if tri_uv.shape[0] == 0 or area.sum() <= 1e-12:
        raise HintError("The plane's UV map is degenerate (no face has any area): unwrap the plane so the photo "
                        "covers it")
    weights = np.clip(np.asarray(tri_weights, dtype=np.float64), 0.0, 1.0)
    image, hits, spread = rasterize(tri_uv, weights, width, height)
    covered = hits > 0
    if not covered.any():
        raise HintError("No face of the plane shows the photo (all its UVs lie outside 0..1): reset the UVs so the "
                        "photo covers the plane")
    clipped = np.clip(tri_uv, 0.0, 1.0)
    inside_area = _uv_area(clipped)  # a cheap estimate: exact for faces entirely in or out along one axis
    report = HintReport(covered=float(covered.mean()),
                        outside=float(max(0.0, 1.0 - inside_area.sum() / area.sum())),
                        overlap=float(((hits > 1) & (spread > 1.0 / 255.0)).sum() / covered.sum()))
    hint = fill_from_neighbours(image, covered)
    return np.clip(hint, 0.0, 1.0).astype(np.float32), report
