"""Object builders for the training scenes: grass, stems with leaves, flowers, bushes, trees, candles, cloth.

Each builder returns a list of drawable objects (``Strip``/``Sprite`` from ``scene_objects``, ``Cloth``) in
back-to-front order. Sizes are pixels of the render; ``zoom`` is the scene's magnification at the object's depth,
so the *physical* length is ``length_px / zoom``. Frequencies follow the physical length and stiffness (long,
soft things sway slowly), amplitudes in pixels grow with the drawn length and fall with stiffness: what an object
looks like tells how it moves. Static things (trunks, candles, wicks) get no modes.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .scene_cloth import Cloth
from .scene_motion import Timing, flutter, natural_frequency, sway
from .scene_objects import STATIC, Modes, Sprite, Strip, concat_modes

LAYER_BACKGROUND, LAYER_FAR, LAYER_NEAR, LAYER_TOP = 0, 1, 2, 3
PETALS = [((0.96, 0.95, 0.9), (0.95, 0.75, 0.1)), ((0.98, 0.8, 0.15), (0.45, 0.25, 0.05)),
          ((0.9, 0.15, 0.1), (0.08, 0.06, 0.05)), ((0.62, 0.38, 0.88), (0.95, 0.85, 0.3)),
          ((0.96, 0.55, 0.72), (0.98, 0.9, 0.4)), ((0.35, 0.5, 0.95), (0.2, 0.15, 0.4)),
          ((0.98, 0.5, 0.1), (0.3, 0.15, 0.05)), ((0.95, 0.95, 0.3), (0.9, 0.6, 0.1))]
LEAF_GREENS = [(0.2, 0.45, 0.12), (0.3, 0.55, 0.18), (0.15, 0.35, 0.1), (0.4, 0.55, 0.2), (0.25, 0.4, 0.25)]
AUTUMN = [(0.8, 0.45, 0.1), (0.7, 0.25, 0.08), (0.85, 0.7, 0.2), (0.55, 0.35, 0.12)]


@dataclasses.dataclass
class Ctx:
    rng: np.random.Generator
    width: int
    height: int
    timing: Timing
    amplitude: float = 4.0     # tip sway (px) of a blade half the image tall at zoom 1 and unit stiffness
    wind: float = 1.0          # scene wind strength (multiplies amplitudes)
    wave_px: float = 230.0     # wavelength of the wind wave crossing the scene (px)

    @property
    def ref(self) -> float:
        return 0.5 * self.height

    def phase(self, x: float) -> float:
        """Phase of the wind wave at column x (neighbours sway together, as in a field)."""
        return self.rng.uniform(0, 0.8 * np.pi) - 2 * np.pi * x / self.wave_px

    def jitter(self, c, s=0.06):
        return np.clip(np.asarray(c, float) + self.rng.uniform(-s, s, 3), 0, 1)

    def tex(self):
        return tuple(self.rng.uniform(0, 128, 2))

    @property
    def drop(self) -> bool:
        """Bending strips also shorten (not linear in the modes): natural clips only, never in an exact loop."""
        return not self.timing.exact


def _strip_modes(ctx: Ctx, x, length_px, zoom, stiffness, slow=1.0, turbulence=0.12):
    phys = length_px / max(zoom, 1e-3)
    f0 = np.clip(slow * natural_frequency(phys, ctx.ref, stiffness), 0.2, 2.8)
    a = ctx.amplitude * ctx.wind * (phys / ctx.ref) * zoom / stiffness ** 1.5 * ctx.rng.uniform(0.8, 1.2)
    a = float(np.clip(a, 0.3 * zoom, 2.2 * ctx.amplitude * zoom))
    return sway(ctx.rng, ctx.timing, f0, (a, a * ctx.rng.uniform(-0.2, 0.2), 0.0), ctx.phase(x),
                turbulence=turbulence)


def blade(ctx: Ctx, x, base_y, zoom, layer=LAYER_NEAR, colours=None):
    r = ctx.rng
    length = r.uniform(0.35, 0.95) * ctx.height * zoom
    half = r.uniform(0.012, 0.022) * ctx.height * zoom
    stiff = r.uniform(0.8, 1.4)
    base, tip = colours or ((0.1, 0.3, 0.07), (0.45, 0.7, 0.2))
    b = Strip("blade", layer, x, base_y, length, max(half, 0.6), lean=r.uniform(-0.25, 0.25),
              curve=r.uniform(-0.12, 0.12) * length, modes=_strip_modes(ctx, x, length, zoom, stiff),
              colour=ctx.jitter(base), tip_colour=ctx.jitter(tip), tex=ctx.tex(), drop=ctx.drop)
    b.physical_length, b.stiffness = length / zoom, stiff  # what sets its motion (for checks and analysis)
    return [b]


def _leaf(ctx, parent, ha, angle, size, colour, amp=(0.05, 0.12), freq=(1.5, 3.0)):
    r = ctx.rng
    return Sprite("leaf", LAYER_NEAR, parent, ha, angle, size, size, flutter(r, ctx.timing, *freq, r.uniform(*amp)),
                  1.0, ctx.jitter(colour, 0.05), (0, 0, 0), tex=ctx.tex())


def stem_with_leaves(ctx: Ctx, x, base_y, zoom, n_leaves=None, stiffness=None, length=None, leaf_colour=None):
    r = ctx.rng
    length = length or r.uniform(0.3, 0.8) * ctx.height * zoom
    stiff = stiffness or r.uniform(1.0, 2.0)
    stem = Strip("stem", LAYER_NEAR, x, base_y, length, max(0.6, 0.007 * ctx.height * zoom),
                 lean=r.uniform(-0.2, 0.2), curve=r.uniform(-0.08, 0.08) * length,
                 modes=_strip_modes(ctx, x, length, zoom, stiff), colour=ctx.jitter((0.22, 0.45, 0.15)),
                 tip_colour=ctx.jitter((0.3, 0.55, 0.2)), tex=ctx.tex(), drop=ctx.drop)
    parts = [stem]
    n = n_leaves if n_leaves is not None else int(r.integers(2, 7))
    colour = leaf_colour or LEAF_GREENS[r.integers(len(LEAF_GREENS))]
    for j in range(n):
        side = 1.0 if j % 2 else -1.0
        size = r.uniform(0.06, 0.12) * ctx.height * zoom
        parts.append(_leaf(ctx, stem, r.uniform(0.25, 0.95) * length, -np.pi / 2 + side * r.uniform(0.5, 1.2),
                           max(size, 2.0), colour))
    return parts


def flower(ctx: Ctx, x, base_y, zoom, n_leaves=None):
    r = ctx.rng
    parts = stem_with_leaves(ctx, x, base_y, zoom, n_leaves if n_leaves is not None else int(r.integers(0, 3)),
                             stiffness=r.uniform(0.8, 1.5))
    stem = parts[0]
    stem.modes = _strip_modes(ctx, x, stem.L, zoom, 1.0, slow=0.8)  # the head weighs: slower
    petal, centre = PETALS[r.integers(len(PETALS))]
    rad = max(r.uniform(0.04, 0.08) * ctx.height * zoom, 2.0)
    head = Sprite("flower", LAYER_TOP, stem, stem.L, r.uniform(-0.3, 0.3), rad, rad * r.uniform(0.55, 0.95),
                  flutter(r, ctx.timing, 0.8, 2.2, r.uniform(0.03, 0.08)), 0.8, ctx.jitter(petal, 0.04), centre,
                  petals=int(r.choice([5, 6, 8, 10, 12])), tex=ctx.tex())
    return parts + [head]


def bush(ctx: Ctx, x, base_y, zoom):
    """Short stiff stems fanning out of one root, crowded with leaves: fast, small motion."""
    r = ctx.rng
    parts, heads = [], []
    colour = LEAF_GREENS[r.integers(len(LEAF_GREENS))] if r.uniform() < 0.8 else AUTUMN[r.integers(len(AUTUMN))]
    blossom = PETALS[r.integers(len(PETALS))] if r.uniform() < 0.35 else None
    size = r.uniform(0.35, 0.7) * ctx.height * zoom
    for _ in range(int(r.integers(8, 20))):
        length = size * r.uniform(0.5, 1.0)
        stiff = r.uniform(1.6, 2.6)
        stem = Strip("stem", LAYER_NEAR, x + r.uniform(-0.1, 0.1) * size, base_y, length,
                     max(0.6, 0.008 * ctx.height * zoom), lean=r.uniform(-0.9, 0.9),
                     curve=r.uniform(-0.1, 0.1) * length, modes=_strip_modes(ctx, x, length, zoom, stiff),
                     colour=(0.3, 0.25, 0.15), tip_colour=(0.3, 0.4, 0.15), tex=ctx.tex(), drop=ctx.drop)
        parts.append(stem)
        for _ in range(int(r.integers(5, 12))):
            leaf_size = max(r.uniform(0.04, 0.08) * ctx.height * zoom, 2.0)
            parts.append(_leaf(ctx, stem, r.uniform(0.35, 1.0) * length, r.uniform(-np.pi, np.pi) * 0.9 - np.pi / 2,
                               leaf_size, colour, amp=(0.04, 0.1), freq=(1.8, 3.0)))
        if blossom is not None and r.uniform() < 0.6:
            rad = max(r.uniform(0.025, 0.045) * ctx.height * zoom, 1.5)
            heads.append(Sprite("flower", LAYER_TOP, stem, length, r.uniform(-0.5, 0.5), rad, rad,
                                flutter(r, ctx.timing, 1.5, 2.8, 0.05), 0.8, ctx.jitter(blossom[0], 0.04),
                                blossom[1], petals=int(r.choice([5, 6])), tex=ctx.tex()))
    return parts + heads


def tree(ctx: Ctx, x, base_y, zoom):
    """A static trunk and slowly swaying branches carrying clusters of fluttering leaves (the canopy)."""
    r = ctx.rng
    h = ctx.height
    trunk_len = r.uniform(0.5, 1.0) * h * zoom
    trunk_w = max(r.uniform(0.015, 0.035) * h * zoom, 1.0)
    lean = r.uniform(-0.1, 0.1)
    bark = ctx.jitter((0.3, 0.22, 0.15), 0.05)
    trunk = Strip("stem", LAYER_NEAR, x, base_y, trunk_len, trunk_w, lean=lean, modes=STATIC, colour=bark,
                  tip_colour=bark * 0.8, tex=ctx.tex())
    parts = [trunk]
    autumn = r.uniform() < 0.2
    palette = AUTUMN if autumn else LEAF_GREENS
    leaf_size = r.uniform(0.03, 0.06) * h * zoom
    for _ in range(int(r.integers(4, 10))):
        hb = r.uniform(0.45, 1.0) * trunk_len
        bx, by = x + lean * hb, base_y - hb
        length = r.uniform(0.25, 0.55) * h * zoom
        side = r.choice([-1.0, 1.0])
        branch = Strip("stem", LAYER_NEAR, bx, by, length, max(0.6, 0.35 * trunk_w), lean=side * r.uniform(0.2, 0.9),
                       curve=r.uniform(-0.1, 0.1) * length,
                       modes=_strip_modes(ctx, bx, length * 2.0, zoom, r.uniform(0.7, 1.1), turbulence=0.15),
                       colour=bark, tip_colour=bark, tex=ctx.tex(), drop=ctx.drop)
        parts.append(branch)
        colour = palette[r.integers(len(palette))]
        for _ in range(int(r.integers(20, 45))):
            parts.append(_leaf(ctx, branch, r.uniform(0.25, 1.05) * length, r.uniform(-np.pi, np.pi),
                               max(leaf_size * r.uniform(0.7, 1.3), 2.0), colour, amp=(0.06, 0.15),
                               freq=(2.0, 3.0)))
    return parts


def candle(ctx: Ctx, x, base_y, zoom, draught: float = 1.0):
    """Static candle and wick, a flame swaying sideways and flickering (stretching) at higher bands."""
    r = ctx.rng
    h = ctx.height
    cw, ch = r.uniform(0.1, 0.2) * h * zoom, r.uniform(0.2, 0.55) * h * zoom
    top = base_y - ch
    wax = ctx.jitter(r.choice([(0.92, 0.86, 0.72), (0.85, 0.2, 0.15), (0.95, 0.95, 0.92), (0.3, 0.4, 0.7)]), 0.04)
    parts = [Strip("candle", LAYER_NEAR, x, base_y, ch, cw / 2, colour=wax),
             Strip("wick", LAYER_NEAR, x, top + 1, 0.05 * h * zoom, 0.5, lean=r.uniform(-0.2, 0.2),
                   colour=(0.08, 0.06, 0.05))]
    lf = float(np.clip(cw * r.uniform(1.3, 1.7), 0.08 * h * zoom, 0.3 * h * zoom))
    f0 = float(np.clip(2.0 * (0.22 * h * zoom / lf) ** 0.6, 0.8, 2.8))
    a = ctx.amplitude * 0.7 * lf / (0.22 * h) * draught * r.uniform(0.6, 1.4)
    side = sway(r, ctx.timing, f0, (a, 0.0, 0.0), r.uniform(0, 2 * np.pi), turbulence=0.2, slope=0.8)
    flick = sway(r, ctx.timing, r.uniform(2.0, 3.0), (0.0, 0.0, r.uniform(0.05, 0.1)), r.uniform(0, 2 * np.pi),
                 second=0.0, turbulence=0.25, slope=0.5, cross=0.0, push=0.0)
    parts.append(Strip("flame", LAYER_TOP, x, top - 0.01 * h * zoom, lf, 0.2 * lf, power=1.5,
                       modes=concat_modes(side, flick), colour=(1.0, 0.5, 0.12), tip_colour=(1.0, 0.96, 0.8),
                       tex=ctx.tex()))
    return parts


def cloth(ctx: Ctx, x0, y0, zoom):
    """A cloth hanging from a rod: pendulum-like sway (slow for long cloths) with ripples running down it."""
    r = ctx.rng
    h = ctx.height
    length = r.uniform(0.3, 0.75) * h * zoom
    width = r.uniform(0.15, 0.45) * h * zoom
    phys = length / zoom
    f0 = float(np.clip(0.55 * np.sqrt(ctx.ref / phys) * r.uniform(0.8, 1.2), 0.2, 1.6))
    a = ctx.amplitude * ctx.wind * 0.9 * (phys / ctx.ref) * zoom * r.uniform(0.6, 1.3)
    modes = sway(r, ctx.timing, f0, (a, 0.0, r.uniform(0.003, 0.012)), r.uniform(0, 2 * np.pi), second=0.35,
                 turbulence=0.18, slope=1.1, cross=0.0)
    kappa = 2 * np.pi * r.uniform(0.0, 1.2, len(modes.freq)) / length * np.sqrt(modes.freq / modes.freq[0])
    kappa[0] = 2 * np.pi * r.uniform(0.0, 0.3) / length
    c0 = ctx.jitter(r.choice([(0.75, 0.15, 0.15), (0.9, 0.88, 0.8), (0.2, 0.3, 0.6), (0.85, 0.7, 0.2),
                              (0.3, 0.55, 0.35), (0.6, 0.4, 0.6)]), 0.08)
    c1 = ctx.jitter(r.choice([(0.95, 0.95, 0.9), (0.1, 0.1, 0.15), (0.9, 0.75, 0.3)]), 0.05)
    rod = Strip("wick", LAYER_NEAR, x0, y0 + 1, 2.0, width * 0.6 + 2, colour=(0.25, 0.2, 0.15))
    body = Cloth(LAYER_NEAR, x0, y0, width, length, modes, kappa, power=r.uniform(1.0, 1.6), colour=c0, colour2=c1,
                 pattern=int(r.integers(4)), period=r.uniform(3, 10) * zoom, tex=ctx.tex())
    return [rod, body]


def is_moving(obj) -> bool:
    return bool(getattr(obj, "moving", False))


__all__ = ["Ctx", "blade", "stem_with_leaves", "flower", "bush", "tree", "candle", "cloth", "is_moving", "Modes"]
