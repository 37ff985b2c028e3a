"""Hanging cloth (curtain, banner, laundry) with closed-form motion, drawable by ``scene_objects.composite``.

A cloth hangs from a fixed rod at (x0, y0). Material coordinates: u across the cloth (centre 0, |u| <= width/2),
v down from the rod (0 <= v <= L). A material point sits at::

    x = x0 + u + e(v)**p * Dx(t, v),   y = y0 + v * (1 + S(t)),   e = v / L

with ``Dx(t, v) = sum_m a_m cos(2 pi f_m t + phi_m - kappa_m v)`` (a sway whose ripples run down the cloth) and a
small vertical stretch ``S(t)``. Every row of the image therefore shows one material row v and the map is inverted
exactly at each pixel centre: ownership and ground truth are exact, like the strips and sprites.
"""
from __future__ import annotations

import numpy as np

from .scene_objects import Modes, Textures, photo_arrays, photo_shade, sample_tile


class Cloth:
    """One hanging cloth; ``modes`` drive Dx (channel 0) and S (channel 2); ``kappa`` (M,) rad/px per mode."""

    def __init__(self, layer, x0, y0, width, length, modes: Modes, kappa, power=1.2, colour=(0.7, 0.2, 0.2),
                 colour2=(0.9, 0.85, 0.7), pattern=0, period=8.0, tex=(0.0, 0.0)):
        self.kind, self.layer, self.x0, self.y0, self.W, self.L = "cloth", layer, x0, y0, width, length
        self.modes, self.kappa, self.p = modes, np.asarray(kappa, float), power
        self.c0, self.c1, self.pattern, self.period, self.tex = colour, colour2, pattern, period, tex
        self.moving, self.oid = len(modes.freq) > 0, -1


class ClothSet:
    """Cloths as arrays; same interface as ``StripSet``/``SpriteSet`` (raster, colour, displacement)."""

    def __init__(self, cloths, t):
        self.cloths = list(cloths)
        self.t = np.asarray(t, float)
        self.oid = np.array([c.oid for c in cloths], np.int64)
        self.tex = np.array([c.tex for c in cloths], float).reshape(-1, 2)
        photo_arrays(self, self.cloths)
        self.stretch = np.stack([c.modes.evaluate(self.t)[:, 2] for c in cloths], 1) if cloths else None

    def _dx(self, i, ti, v):
        """Dx(t, v) for cloth indices i (N,) and material rows v (N,) at frame index ti (scalar or (T, 1))."""
        t = self.t[ti]
        out = np.zeros(np.broadcast(t, v).shape)
        for c in np.unique(i):
            m, sel = self.cloths[c].modes, i == c
            arg = (2 * np.pi * m.freq * np.asarray(t)[..., None] + m.phase
                   - self.cloths[c].kappa * v[sel][..., None])
            out[..., sel] = (np.cos(arg) * m.amp[:, 0]).sum(-1)
        return out

    def raster(self, ti, width, height):
        rows, idx = [], []
        for c, cl in enumerate(self.cloths):
            s = self.stretch[ti, c]
            r = np.arange(max(int(np.floor(cl.y0)), 0), min(int(np.ceil(cl.y0 + cl.L * (1 + s))) + 2, height))
            rows.append(r)
            idx.append(np.full(len(r), c))
        if not rows:
            e = np.zeros(0)
            return e.astype(np.int64), e.astype(np.int64), e.astype(np.int64), e, e, e
        rr, i = np.concatenate(rows), np.concatenate(idx)
        x0, y0, wd, L, p = (np.array([getattr(self.cloths[c], f) for c in i], float)
                            for f in ("x0", "y0", "W", "L", "p"))
        v = (rr - y0) / (1 + self.stretch[ti, i])
        e = np.clip(v / L, 0, 1)
        cx = x0 + e ** p * self._dx(i, ti, v)
        span = int(np.ceil(max(c.W for c in self.cloths))) + 5
        cols = np.floor(cx - wd / 2 - 2).astype(np.int64)[:, None] + np.arange(span)
        u = cols - cx[:, None]
        sd = np.maximum(np.abs(u) - wd[:, None] / 2, np.maximum(-v, v - L)[:, None])
        keep = (cols >= 0) & (cols < width) & (sd < 0.5)
        b = lambda a: np.broadcast_to(a[:, None], cols.shape)[keep]  # noqa: E731
        return b(i), b(rr), cols[keep], sd[keep], u[keep], b(v)

    def displacement(self, i, u, v):
        """(T, 2, N) displacement of material points (u, v) of cloths i relative to frame 0."""
        L = np.array([self.cloths[c].L for c in i], float)
        p = np.array([self.cloths[c].p for c in i], float)
        ep = np.clip(v / L, 0, 1) ** p
        n_t = len(self.t)
        dx = ep * self._dx(i, np.arange(n_t)[:, None], v)  # (T, N)
        s = self.stretch[:, i]  # (T, N)
        return np.stack([dx - dx[:1], v * (s - s[:1])], 1)

    def colour(self, i, u, v, textures: Textures):
        c0 = np.array([self.cloths[c].c0 for c in i], float)
        c1 = np.array([self.cloths[c].c1 for c in i], float)
        pat = np.array([self.cloths[c].pattern for c in i])
        per = np.array([self.cloths[c].period for c in i], float)
        wd = np.array([self.cloths[c].W for c in i], float)
        L = np.array([self.cloths[c].L for c in i], float)
        tex = np.array([self.cloths[c].tex for c in i], float).reshape(-1, 2)
        stripe_v = (np.floor(u / per) % 2 == 0)
        stripe_h = (np.floor(v / per) % 2 == 0)
        mix = np.select([pat == 1, pat == 2, pat == 3], [stripe_v, stripe_h, stripe_v ^ stripe_h], 0.0)
        base = c0 * (1 - mix[:, None]) + c1 * mix[:, None]
        n = sample_tile(textures.noise, v * 0.7 + tex[:, 0], u * 0.7 + tex[:, 1])
        folds = np.cos(2 * np.pi * u / np.maximum(wd / 3.5, 2.0) + 0.05 * v)
        hem = np.clip((L - v) / 2.0, 0, 1) * 0.25 + 0.75
        edge = 0.85 + 0.15 * np.clip((wd / 2 - np.abs(u)) / 2.0, 0, 1)
        shade = (1 + 0.18 * folds + 0.05 * n) * hem * edge
        return np.clip(photo_shade(base * shade[:, None], shade, i, v, u, self, textures), 0, 1)
