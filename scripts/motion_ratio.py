#!/usr/bin/env python
"""Does the right part of a photo move? Mean motion of a spectral volume inside vs outside a rough elliptic mask.

    python scripts/motion_ratio.py out/flower.npz --ellipse 0.68,0.60,0.32,0.42

The ellipse is centre x, centre y, radius x, radius y as fractions of the width and height (y down). Motion per
pixel is the mean over the loop of the displacement length |F_t(p)|, in pixels of the volume's map.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from addon.core.spectral import load_npz


def motion_ratio(volume, ellipse) -> dict:
    cx, cy, rx, ry = ellipse
    traj = volume.trajectories()[::5]  # (T/5, 2, H, W)
    motion = np.sqrt((traj ** 2).sum(axis=1)).mean(axis=0)
    h, w = motion.shape
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (((xx + 0.5) / w - cx) / rx) ** 2 + (((yy + 0.5) / h - cy) / ry) ** 2 <= 1.0
    m_in, m_out = float(motion[inside].mean()), float(motion[~inside].mean())
    return {"inside_px": m_in, "outside_px": m_out, "ratio": m_in / max(m_out, 1e-9),
            "inside_fraction": float(inside.mean())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("volume")
    p.add_argument("--ellipse", default="0.68,0.60,0.32,0.42", help="cx,cy,rx,ry as fractions (default: the "
                   "flower of the shipped sample photo)")
    a = p.parse_args(argv)
    try:
        ellipse = tuple(float(v) for v in a.ellipse.split(","))
        assert len(ellipse) == 4 and ellipse[2] > 0 and ellipse[3] > 0
    except (ValueError, AssertionError):
        p.error("--ellipse needs four numbers cx,cy,rx,ry with positive radii")
    r = motion_ratio(load_npz(a.volume), ellipse)
    print(f"{a.volume}: mean motion inside the mask {r['inside_px']:.3f} px ({100 * r['inside_fraction']:.0f}% of "
          f"the map), outside {r['outside_px']:.3f} px, ratio {r['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
