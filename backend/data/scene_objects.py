"""Procedural strips and sprites whose deformation is known in closed form: their motion, rasterisation at pixel
centres, shading and compositing (the drawing layer of the scene generator, ``backend/data/scenes.py``).

* a *strip* (grass blade, stem, flame, candle) has material coordinates (h, u): h = height along the strip above
  its base, u = horizontal offset from its centre line. A material point sits at
  ``x = bx + lean*h + curve*eta**2 + u + eta**p * Dx(t)`` and ``y = by - h*(1 + S(t)) + eta**p * Dy(t)
  + (2/3) eta**3 Dx(t)**2 / L`` (eta = h/L; the last term, the drop of a bending cantilever, is only on for
  natural clips: it is not linear in the modes), so tips move much more than bases;
* a *sprite* (flower head, leaf) is attached to a point of its parent strip and turns with a small linearised
  rotation ``A(theta) = [[1, -theta], [theta, 1]]`` about that point.

``Dx, Dy, S, theta`` are sums of oscillation :class:`Modes` (sustained or decaying). Every frame is rendered by
inverting the deformation at each pixel centre (no mesh, no sampling noise); pixel centres sit at integer
coordinates and anti-aliased edges blend colours over one pixel.

Colours are functions of the material coordinates only (procedural shading, a periodic noise tile and, for objects
given one, a patch of a real photo: :class:`Textures`), so a surface point keeps its colour as it moves and the
ground-truth motion carries frame 0's colours to every frame.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

_DROP = 2.0 / 3.0  # cantilever shortening coefficient


# ------------------------------------------------------------------------------------------------ modes
@dataclasses.dataclass
class Modes:
    """Oscillation modes of one object: ``evaluate(t)`` sums them per channel."""
    freq: np.ndarray     # (M,) Hz
    amp: np.ndarray      # (M, 3) amplitude per channel (strip: Dx px, Dy px, S; sprite: -, -, theta rad)
    phase: np.ndarray    # (M,)
    damping: np.ndarray  # (M,) 1/s, 0 = sustained
    onset: np.ndarray    # (M,) s

    def evaluate(self, t: np.ndarray) -> np.ndarray:  # (T,) seconds -> (T, 3)
        if len(self.freq) == 0:
            return np.zeros((len(t), 3))
        dt = t[:, None] - self.onset[None]
        env = np.where(dt >= 0, np.exp(-self.damping[None] * np.maximum(dt, 0.0)), 0.0)
        return (np.cos(2 * np.pi * self.freq[None] * dt + self.phase[None]) * env) @ self.amp


STATIC = Modes(np.zeros(0), np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0))


def concat_modes(a: Modes, b: Modes) -> Modes:
    """Both objects' modes together (their motions add)."""
    return Modes(*(np.concatenate([getattr(a, f.name), getattr(b, f.name)]) for f in dataclasses.fields(Modes)))


# ------------------------------------------------------------------------------------------------ textures
def noise_tile(rng, n=128, sigma=1.6) -> np.ndarray:
    """Smooth, periodic noise (zero mean, unit std) for texturing objects in material coordinates."""
    f = np.fft.fftfreq(n)
    g = np.exp(-2 * (np.pi * sigma) ** 2 * (f[:, None] ** 2 + f[None] ** 2))
    tile = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * g))
    return ((tile - tile.mean()) / tile.std()).astype(np.float32)


@dataclasses.dataclass
class Textures:
    """What colours the objects: a periodic noise tile (:func:`noise_tile`) and optional photo patches."""
    noise: np.ndarray                      # float32 (n, n), zero mean, unit std
    patches: Optional[np.ndarray] = None   # float32 (N, S, S, 3) RGB in [0, 1], looked up mirror-periodically


def sample_patch(patches, k, a, b):
    """Bilinear lookup of photo patches ``k`` (per element) at coordinates (a, b) in patch pixels; outside the
    patch it is mirrored (period 2S), so any coordinate gives a seamless colour. Returns (N, 3)."""
    n = patches.shape[1]

    def fold(v):
        v = np.mod(v, 2 * n - 2)
        return np.where(v > n - 1, 2 * n - 2 - v, v)

    a, b = fold(a), fold(b)
    a0, b0 = np.minimum(np.floor(a).astype(np.int64), n - 2), np.minimum(np.floor(b).astype(np.int64), n - 2)
    fa, fb = (a - a0)[:, None], (b - b0)[:, None]
    p = patches
    return ((p[k, a0, b0] * (1 - fa) + p[k, a0 + 1, b0] * fa) * (1 - fb)
            + (p[k, a0, b0 + 1] * (1 - fa) + p[k, a0 + 1, b0 + 1] * fa) * fb)


def photo_shade(out, shade, i, a, b, s, textures: Textures):
    """Blend photo-patch colours into fragments of objects that carry a patch (``s.photo[i] >= 0``): the patch
    colour at material coordinates (a, b) (scaled by the object's ``photo_scale``, offset by its ``tex``) times
    the procedural ``shade``, mixed in with the object's ``photo_mix``."""
    if textures.patches is None:
        return out
    sel = np.nonzero(s.photo[i] >= 0)[0]
    if not len(sel):
        return out
    j = i[sel]
    scale = s.photo_scale[j]
    pc = sample_patch(textures.patches, s.photo[j], a[sel] * scale + s.tex[j, 0], b[sel] * scale + s.tex[j, 1])
    w = s.photo_mix[j]
    out[sel] = out[sel] * (1 - w[:, None]) + pc * shade[sel][:, None] * w[:, None]
    return out


def photo_arrays(s, objs):
    """Photo-patch parameters of a set's objects (patch index -1: none)."""
    s.photo = np.array([getattr(o, "photo", -1) for o in objs], np.int64)
    s.photo_mix = np.array([getattr(o, "photo_mix", 0.0) for o in objs], np.float64)
    s.photo_scale = np.array([getattr(o, "photo_scale", 1.0) for o in objs], np.float64)


def sample_tile(tile, a, b):
    """Bilinear lookup of a periodic :func:`noise_tile` at material coordinates (a, b)."""
    n = tile.shape[0]
    a0, b0 = np.floor(a), np.floor(b)
    fa, fb = a - a0, b - b0
    i0, j0 = a0.astype(np.int64) % n, b0.astype(np.int64) % n
    i1, j1 = (i0 + 1) % n, (j0 + 1) % n
    return (tile[i0, j0] * (1 - fa) + tile[i1, j0] * fa) * (1 - fb) + (tile[i0, j1] * (1 - fa) + tile[i1, j1] * fa) * fb


# ------------------------------------------------------------------------------------------------ objects
class Strip:
    """Blade / stem / flame / candle / wick: a band around a bendable centre line (see the module docstring)."""

    def __init__(self, kind, layer, bx, by, length, half_width, lean=0.0, curve=0.0, power=2.0, drop=False,
                 modes=STATIC, colour=(0.3, 0.5, 0.2), tip_colour=None, tex=(0.0, 0.0)):
        self.kind, self.layer, self.bx, self.by, self.L, self.w0 = kind, layer, bx, by, length, half_width
        self.lean, self.curve, self.p, self.drop, self.modes, self.tex = lean, curve, power, float(drop), modes, tex
        self.c0, self.c1 = colour, tip_colour if tip_colour is not None else colour
        self.moving, self.oid = len(modes.freq) > 0, -1


class Sprite:
    """Flower head or leaf: a shape fixed to the point (h_anchor, 0) of a parent strip, turning with theta(t)."""

    def __init__(self, kind, layer, parent, h_anchor, angle, sx, sy, modes, coupling, colour, centre_colour,
                 petals=0, tex=(0.0, 0.0)):
        self.kind, self.layer, self.parent, self.ha, self.angle = kind, layer, parent, h_anchor, angle
        self.sx, self.sy, self.modes, self.coupling, self.petals, self.tex = sx, sy, modes, coupling, petals, tex
        self.c0, self.c1, self.moving, self.L, self.oid = colour, centre_colour, True, max(sx, sy), -1


def _gather(objs, name, dtype=np.float64):
    return np.array([getattr(o, name) for o in objs], dtype)


def _spans(lo, hi):
    """Ragged ranges [lo_i, hi_i) flattened: (object index, value) per element."""
    n = np.maximum(hi - lo, 0)
    i = np.repeat(np.arange(len(n)), n)
    return i, lo[i] + np.arange(int(n.sum())) - (np.cumsum(n) - n)[i]


class StripSet:
    """Many strips as parameter arrays; every method takes per-element strip indices ``i``."""
    CODES = {"blade": 0, "stem": 1, "wick": 1, "candle": 2, "flame": 3}

    def __init__(self, strips, t):
        for f in ("bx", "by", "L", "w0", "lean", "curve", "p", "drop"):
            setattr(self, f, _gather(strips, f))
        self.c0, self.c1, self.tex = (_gather(strips, f).reshape(-1, k) for f, k in (("c0", 3), ("c1", 3), ("tex", 2)))
        self.code = np.array([self.CODES[s.kind] for s in strips], np.int64)
        self.oid = _gather(strips, "oid", np.int64)
        photo_arrays(self, strips)
        self.sig = np.stack([s.modes.evaluate(t) for s in strips], 1) if strips else np.zeros((len(t), 0, 3))

    def _y(self, i, e, dx, dy):  # vertical terms Y(h) and dY/dh (without the -h(1+S) part)
        p, L, dr = self.p[i], self.L[i], self.drop[i] * _DROP
        return e ** p * dy + dr * e ** 3 * dx * dx / L, (p * e ** (p - 1) * dy + 3 * dr * e ** 2 * dx * dx / L) / L

    def point(self, i, h, ti):
        """Centre-line position (x, y) at material height h, frame index ti (broadcasting)."""
        sig = self.sig[ti, i]
        hc = np.clip(h, 0, self.L[i])
        e = hc / self.L[i]
        x = self.bx[i] + self.lean[i] * hc + self.curve[i] * e ** 2 + e ** self.p[i] * sig[..., 0]
        return x, self.by[i] - h * (1 + sig[..., 2]) + self._y(i, e, sig[..., 0], sig[..., 1])[0]

    def invert(self, i, y, ti):
        """Material height h seen at image row y (Newton on by - h(1+S) + Y(h) = y; Y is small and smooth)."""
        dx, dy, s = (self.sig[ti, i, c] for c in range(3))
        h = (self.by[i] - y) / (1 + s)
        for _ in range(4):
            e = np.clip(h, 0, self.L[i]) / self.L[i]
            yv, dyv = self._y(i, e, dx, dy)
            dyv = np.where((h > 0) & (h < self.L[i]), dyv, 0.0)
            h = h - (self.by[i] - h * (1 + s) + yv - y) / (dyv - (1 + s))
        return h

    def width(self, i, h):  # half-width and d/dh at h in [0, L]
        L, w0, code = self.L[i], self.w0[i], self.code[i]
        e = h / L
        ef = np.clip(e, 1e-3, 1 - 1e-3)
        wf = w0 * 2.1 * ef ** 0.5 * (1 - ef) ** 0.8
        w = np.where(code == 0, w0 * (1 - e ** 2.5), np.where(code == 3, wf, w0))
        dw = np.where(code == 0, -2.5 * w0 * e ** 1.5 / L, np.where(code == 3, wf * (0.5 / ef - 0.8 / (1 - ef)) / L, 0))
        # at least one pixel wide: every visibly drawn row then owns a pixel centre (no ground-truth-less slivers)
        return np.maximum(w, 0.5), np.where(w < 0.5, 0.0, dw)

    def raster(self, ti, width, height):
        """Fragments near the strips at frame ti: (strip index, row, col, signed distance px, h, u)."""
        n = len(self.L)
        top = self.point(np.arange(n), self.L, ti)[1]
        i, rows = _spans(np.clip(np.floor(top - 2), 0, height).astype(np.int64),
                         np.clip(np.ceil(self.by + 2) + 1, 0, height).astype(np.int64))
        h = self.invert(i, rows.astype(np.float64), ti)
        hc = np.clip(h, 0, self.L[i])
        e = hc / self.L[i]
        cx = self.point(i, h, ti)[0]
        w, dw = self.width(i, hc)
        bend = self.p[i] * e ** (self.p[i] - 1) * self.sig[ti, i, 0]
        slope = self.lean[i] + (2 * self.curve[i] * e + bend) / self.L[i]  # dx/dh of the centre line
        cols = np.floor(cx - self.w0[i] - 2).astype(np.int64)[:, None] + np.arange(int(np.ceil(2 * self.w0.max() + 5)))
        u = cols - cx[:, None]
        side = slope[:, None] + np.sign(u) * np.clip(dw, -3, 3)[:, None]
        sd = (np.abs(u) - w[:, None]) / np.sqrt(1 + side ** 2)
        sd = np.maximum(sd, np.maximum((h - self.L[i]) * (1 + self.sig[ti, i, 2]), -h)[:, None])
        keep = (cols >= 0) & (cols < width) & (sd < 0.5)
        b = lambda a: np.broadcast_to(a[:, None], cols.shape)[keep]  # noqa: E731
        return b(i), b(rows), cols[keep], sd[keep], b(h), u[keep]

    def displacement(self, i, h, u):
        """(T, 2, N) displacement of material points (h, u) of strips i relative to frame 0."""
        sig = self.sig[:, i]  # (T, N, 3)
        e = np.clip(h, 0, self.L[i]) / self.L[i]
        d = sig - sig[:1]
        ex = e ** self.p[i]
        drop = self.drop[i] * _DROP * e ** 3 * (sig[..., 0] ** 2 - sig[:1, :, 0] ** 2) / self.L[i]
        dy = -h * d[..., 2] + ex * d[..., 1] + drop
        return np.stack([ex * d[..., 0], dy], 1)

    def colour(self, i, h, u, textures: Textures):
        L, code = self.L[i], self.code[i]
        e = np.clip(h, 0, L) / L
        rho = np.clip(u / np.maximum(self.width(i, np.clip(h, 0, L))[0], 0.3), -1.5, 1.5)
        n = sample_tile(textures.noise, h * 0.45 + self.tex[i, 0], u * 1.1 + self.tex[i, 1])
        n = n + 0.5 * sample_tile(textures.noise, h * 0.9, u * 1.2 + 40)
        c0, c1 = self.c0[i], self.c1[i]
        shade = 1 + 0.17 * n + 0.12 * np.exp(-(rho / 0.25) ** 2) - 0.07 * np.cos(rho * 5.0) + 0.12 * rho
        out = (c0 + (c1 - c0) * (e ** 0.8)[:, None]) * shade[:, None]  # blades and stems
        out = photo_shade(out, shade, i, h, u, self, textures)
        f = code == 3
        if f.any():  # flame: white core, orange rim, blue base
            core = np.exp(-(rho[f] / 0.5) ** 2) * np.clip(1.4 - 1.6 * e[f], 0, 1)
            c = c0[f] + (c1[f] - c0[f]) * core[:, None]
            blue = (np.clip(1 - e[f] / 0.14, 0, 1) * np.clip(np.abs(rho[f]), 0, 1))[:, None]
            out[f] = (c * (1 - blue) + np.array([0.35, 0.45, 1.0]) * blue) * (1 + 0.1 * n[f])[:, None]
        f = code == 2
        if f.any():  # candle: lit cylinder, glowing near the flame
            glow = 0.35 * np.exp(-(L[f] - h[f]) / (0.12 * L[f]))
            sh = 0.55 + 0.45 * np.sqrt(np.clip(1 - rho[f] ** 2, 0, 1)) + 0.05 * n[f] + glow
            out[f] = c0[f] * sh[:, None] + glow[:, None] * np.array([0.2, 0.08, 0.0])
        return np.clip(out, 0, 1)


class SpriteSet:
    """Flower heads and leaves as parameter arrays; anchors and angles precomputed for every frame."""

    def __init__(self, sprites, strips: StripSet, strip_index, t):
        self.oid = _gather(sprites, "oid", np.int64)
        photo_arrays(self, sprites)
        self.sx, self.sy, self.petals = _gather(sprites, "sx"), _gather(sprites, "sy"), _gather(sprites, "petals")
        self.c0, self.c1, self.tex = (_gather(sprites, f).reshape(-1, k) for f, k in (("c0", 3), ("c1", 3), ("tex", 2)))
        self.leaf = np.array([s.kind == "leaf" for s in sprites], bool)
        ang = _gather(sprites, "angle")
        rot = np.stack([np.stack([np.cos(ang), -np.sin(ang)], -1), np.stack([np.sin(ang), np.cos(ang)], -1)], 1)
        self.M = rot * np.stack([self.sx, self.sy], -1)[:, None, :]  # (N, 2, 2) = R(angle) @ diag(sx, sy)
        self.Minv = np.linalg.inv(self.M) if len(sprites) else self.M
        pi = np.array([strip_index[id(s.parent)] for s in sprites], np.int64)
        ha = _gather(sprites, "ha")
        tt = np.arange(len(t))[:, None]
        self.anchor = np.stack(strips.point(pi[None], np.broadcast_to(ha, (len(t), len(pi))), tt), -1)  # (T, N, 2)
        own = np.stack([s.modes.evaluate(t)[:, 2] for s in sprites], 1) if sprites else np.zeros((len(t), 0))
        p, e = strips.p[pi], ha / strips.L[pi]
        self.theta = own + _gather(sprites, "coupling") * p * e ** (p - 1) * strips.sig[:, pi, 0] / strips.L[pi]

    def _leaf_half_width(self, i, q1):  # in leaf lengths, at least half a pixel
        return np.maximum(0.26 * np.sin(np.pi * np.clip(q1, 0, 1)) ** 0.8, 0.5 / self.sx[i])

    def _sd(self, i, q1, q2):  # signed distance in units of the sprite scale: leaf (q1 along it) or petals
        hw = self._leaf_half_width(i, q1)
        leaf = np.maximum(np.abs(q2) - hw, np.maximum(-q1, q1 - 1))
        flower = np.hypot(q1, q2) - (0.6 + 0.4 * np.abs(np.cos(self.petals[i] * np.arctan2(q2, q1) / 2)) ** 0.7)
        return np.where(self.leaf[i], leaf, flower)

    def raster(self, ti, width, height):
        ext = 1.2 * np.maximum(self.sx, self.sy) + 2
        ax, ay = self.anchor[ti, :, 0], self.anchor[ti, :, 1]
        lo = lambda v, n: np.clip(np.floor(v - ext), 0, n).astype(np.int64)  # noqa: E731
        hi = lambda v, n: np.clip(np.ceil(v + ext) + 1, 0, n).astype(np.int64)  # noqa: E731
        c0, c1, r0, r1 = lo(ax, width), hi(ax, width), lo(ay, height), hi(ay, height)
        bw = np.maximum(c1 - c0, 1)
        i, k = _spans(np.zeros_like(c0), np.maximum(c1 - c0, 0) * np.maximum(r1 - r0, 0))
        rr, cc = r0[i] + k // bw[i], c0[i] + k % bw[i]
        th = self.theta[ti, i]
        vx, vy = cc - ax[i], rr - ay[i]
        wx, wy = (vx + th * vy) / (1 + th * th), (vy - th * vx) / (1 + th * th)
        m = self.Minv[i]
        q1, q2 = m[:, 0, 0] * wx + m[:, 0, 1] * wy, m[:, 1, 0] * wx + m[:, 1, 1] * wy
        sd = self._sd(i, q1, q2) * np.minimum(self.sx, self.sy)[i]
        keep = sd < 0.5
        return i[keep], rr[keep], cc[keep], sd[keep], q1[keep], q2[keep]

    def displacement(self, i, q1, q2):
        m = self.M[i]
        mx, my = m[:, 0, 0] * q1 + m[:, 0, 1] * q2, m[:, 1, 0] * q1 + m[:, 1, 1] * q2  # rest offsets from the anchor
        da = self.anchor[:, i] - self.anchor[:1, i]  # (T, N, 2)
        dth = self.theta[:, i] - self.theta[:1, i]
        return np.stack([da[..., 0] - dth * my, da[..., 1] + dth * mx], 1)

    def colour(self, i, q1, q2, textures: Textures):
        m = self.M[i]  # textures in pixel units: no detail finer than the pixel grid can carry
        mx, my = m[:, 0, 0] * q1 + m[:, 0, 1] * q2, m[:, 1, 0] * q1 + m[:, 1, 1] * q2
        n = sample_tile(textures.noise, mx * 0.8 + self.tex[i, 0], my * 0.8 + self.tex[i, 1])
        rho, phi = np.hypot(q1, q2), np.arctan2(q2, q1)
        c0, c1, pet = self.c0[i], self.c1[i], self.petals[i]
        radial = 0.7 + 0.3 * np.clip(rho / 0.9, 0, 1) ** 0.5
        petal = 0.85 + 0.15 * np.cos(pet * phi / 2) ** 2 + 0.08 * n
        out = c0 * radial[:, None]
        out *= petal[:, None]
        out = photo_shade(out, radial * petal, i, mx, my, self, textures)  # the disc is drawn over it below
        disc = np.clip((0.3 - rho) * np.minimum(self.sx, self.sy)[i] + 0.5, 0, 1)[:, None]  # 1-px soft rim
        out = out * (1 - disc) + disc * c1 * (1 + 0.3 * n + 0.15 * np.cos(np.hypot(mx, my) * 1.5))[:, None]
        lf = np.nonzero(self.leaf[i])[0]
        if len(lf):
            hw = self._leaf_half_width(i[lf], q1[lf])
            r = np.clip(q2[lf] / hw, -1.2, 1.2)
            size = self.sx[i[lf]]
            vein = np.cos(2 * np.pi * (q1[lf] * size / 5 - np.abs(r) * 0.8))
            sh = 1 + 0.15 * n[lf] + 0.25 * np.exp(-(q2[lf] * size / 0.8) ** 2) + 0.06 * vein + 0.1 * r
            out[lf] = photo_shade(c0[lf] * sh[:, None], sh, i[lf], mx[lf], my[lf], self, textures)
        return np.clip(out, 0, 1)


def composite(img, owner, sets, ti, width, height, textures: Textures, mat=None):
    """Draw every object of ``sets`` at frame ti over img (H*W, 3) in object-id order (= depth order); owner
    (H*W,) gets the id of the front-most object containing each pixel centre, mat (2, H*W) its material coords."""
    parts = []
    for s in sets:
        if len(s.oid):
            i, rr, cc, sd, m1, m2 = s.raster(ti, width, height)
            parts.append((s.oid[i], rr * width + cc, sd, m1, m2, s.colour(i, m1, m2, textures)))
    if not parts:
        return
    oid, pix, sd, m1, m2, col = (np.concatenate(a) for a in zip(*parts))
    order = np.argsort(oid.astype(np.int16), kind="stable")  # radix sorts: draw order, then pixel
    order = order[np.argsort(pix[order].astype(np.uint16 if width * height <= 65536 else np.int64), kind="stable")]
    ps = pix[order]
    idx = np.arange(len(ps))
    rank = idx - np.maximum.accumulate(np.where(np.r_[True, ps[1:] != ps[:-1]], idx, 0))
    by_rank = order[np.argsort(rank.astype(np.uint16), kind="stable")]
    a = np.clip(0.5 - sd, 0, 1)[:, None].astype(np.float32)
    bounds = np.r_[0, np.cumsum(np.bincount(rank))]
    for b0, b1 in zip(bounds[:-1], bounds[1:]):  # fragments of one rank never share a pixel
        sel = by_rank[b0:b1]
        p = pix[sel]
        img[p] = img[p] * (1 - a[sel]) + col[sel] * a[sel]
        ins = sel[sd[sel] < 0]
        owner[pix[ins]] = oid[ins]
        if mat is not None:
            mat[0, pix[ins]], mat[1, pix[ins]] = m1[ins], m2[ins]
