"""How far a spectral volume pulls a photo plane's edges inward, with a free border and with Pin Edges.

    .venv/bin/image-dynamics extract ../shared/data/videos/palms_storm_wind.mp4 -o out/palms.npz
    .venv/bin/python scripts/edge_opening.py out/palms.npz [--columns 128]

For each edge: the largest inward motion of a border vertex over one loop, as a share of the plane's height (a
camera framed on the plane sees that much past it). The plane is the add-on's default grid for the volume's aspect;
"pinned" samples the volume at its vertices as the bake does with Pin Edges on (``core.edges``). No Blender needed.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from addon.core import edges, mesh, spectral


def inward(offsets_t: np.ndarray, uv: np.ndarray, height: float) -> dict:
    """{edge: largest inward motion / height} of per-frame vertex offsets (T, N, 3) on a plane spanning x, y."""
    sides = {"left": (uv[:, 0] == 0, 0, 1.0), "right": (uv[:, 0] == 1, 0, -1.0),
             "bottom": (uv[:, 1] == 0, 1, 1.0), "top": (uv[:, 1] == 1, 1, -1.0)}
    return {name: max(0.0, float((sign * offsets_t[:, where, axis]).max())) / height
            for name, (where, axis, sign) in sides.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("volume", help="spectral volume (.npz)")
    parser.add_argument("--columns", type=int, default=128, help="grid vertices across (the add-on's default)")
    args = parser.parse_args(argv)
    volume = spectral.load_npz(args.volume)
    width_px, height_px = volume.source_size
    cols, rows = mesh.default_grid_size(width_px, height_px, args.columns)
    _lv, _ls, uv = mesh.grid_topology(cols, rows)
    _origin, eu, ev = mesh.centered_frame(width_px / height_px, 1.0)
    times = np.arange(volume.num_frames) / volume.fps
    q = np.exp(2j * np.pi * np.multiply.outer(volume.freqs_hz, times))  # (K, T): the loop's modal coordinates
    for label, factors in (("free border", None), ("Pin Edges", edges.edge_factors(uv, edges.PIN_ROWS))):
        off = mesh.modal_offsets(volume.coeffs, uv, eu, ev, factors).astype(np.float64)  # (K, 2, N, 3)
        per_frame = np.einsum("kt,knc->tnc", q.real, off[:, 0]) - np.einsum("kt,knc->tnc", q.imag, off[:, 1])
        opening = inward(per_frame, uv, 1.0)
        print(f"{label:12s} " + "  ".join(f"{edge} {100 * share:.1f}%" for edge, share in opening.items())
              + "  of the plane's height")
    return 0


if __name__ == "__main__":
    sys.exit(main())
