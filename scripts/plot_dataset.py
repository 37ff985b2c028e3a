"""Fig. 2 of the paper for a built dataset: the average motion power spectrum per frequency, and the histograms of
coefficient amplitudes before and after frequency-adaptive normalisation (sign(c) sqrt(|c| / s_k)).

    .venv/bin/python scripts/plot_dataset.py /work/datasets/gid_v1 [-o fig2.png]

Reads ``stats.npz`` (and ``card.json`` for the title when present); prints the spectrum's decay.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from backend.data.dataset import load_stats


def _hist_after(counts_k, edges_log10, scale, bins):
    """Histogram of |z| = sqrt(|c| / s) from the |c| histogram (mass of each |c| bin moved to its z centre)."""
    centres = 10 ** (0.5 * (edges_log10[:-1] + edges_log10[1:]))
    z = np.sqrt(centres / scale)
    h, _ = np.histogram(z, bins=bins, weights=counts_k[1:].astype(np.float64))
    return h


def plot(root, out, show_bins=(1, 3, 6, 10, 15), card=None) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = load_stats(root)
    card_path = os.path.join(root, "card.json")
    title = os.path.basename(os.path.normpath(root))
    if card is None and os.path.isfile(card_path):
        with open(card_path) as f:
            card = json.load(f)
    if card is not None:
        c = card["counts"]["motion"]
        title += f" ({c['synthetic']} synthetic + {c['real']} real windows)"
    else:
        title += f" ({int(st['num_windows'])} train windows)"
    freqs, k = st["freqs_hz"], len(st["scales"])
    edges = st["hist_edges_log10"]
    counts = st["hist_counts"]
    show = [b for b in show_bins if b < k]
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4), dpi=90)
    for key, label, style in (("mean_power", "all", "k-o"), ("mean_power_synthetic", "synthetic", "g--"),
                              ("mean_power_real", "real", "b--")):
        p = st[key]
        if np.any(p[1:] > 0):
            ax[0].semilogy(freqs[1:], p[1:], style, ms=3, label=label)
    ax[0].set_xlabel("frequency (Hz)")
    ax[0].set_ylabel("mean |A_k|^2 (px^2)")
    ax[0].set_title("average power spectrum")
    ax[0].legend(fontsize=8)
    centres = 0.5 * (edges[:-1] + edges[1:])
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(show)))
    zbins = np.linspace(0, 3, 61)
    merge = 10  # 1/20 decade per plotted bin
    nb = (len(centres) // merge) * merge
    coarse = centres[:nb].reshape(-1, merge).mean(1)
    for b, col in zip(show, colours):
        n = counts[b, 1:nb + 1].astype(np.float64).reshape(-1, merge).sum(1)
        ax[1].plot(10 ** coarse, n / max(n.sum(), 1), color=col, label=f"{freqs[b]:.1f} Hz")
        hz = _hist_after(counts[b], edges, float(st["scales"][b]), zbins)
        ax[2].plot(0.5 * (zbins[1:] + zbins[:-1]), hz / max(hz.sum(), 1), color=col, label=f"{freqs[b]:.1f} Hz")
    ax[1].set_xscale("log")
    ax[1].set_xlim(1e-4, 1e2)
    ax[1].set_xlabel("|coefficient| (px)")
    ax[1].set_title("amplitudes before normalisation")
    ax[1].legend(fontsize=7)
    ax[2].set_xlabel("|normalised coefficient|")
    ax[2].set_title("after: sqrt(|c| / s_k), s_k = 95th pct")
    ax[2].axvline(1.0, color="grey", lw=0.8, ls=":")
    ax[2].legend(fontsize=7)
    for a in ax[1:]:
        a.set_ylabel("share of non-zero coefficients")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", help="dataset folder (with stats.npz)")
    p.add_argument("-o", "--output", help="PNG path (default ROOT/fig2.png)")
    a = p.parse_args(argv)
    out = plot(a.root, a.output or os.path.join(a.root, "fig2.png"))
    st = load_stats(a.root)
    p = st["mean_power"]
    print(f"wrote {out} ({os.path.getsize(out) / 1024:.0f} KB)")
    print("mean power per frequency (px^2): " + " ".join(f"{v:.3g}" for v in p))
    lo, hi = p[1:6].mean(), p[-5:].mean()
    print(f"power 0.2-1.0 Hz / 2.2-3.0 Hz: {lo / max(hi, 1e-12):.1f}x (decays with frequency: {lo > hi})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
