"""How accurately does `image-dynamics extract` recover motion? Procedural scenes with exact ground truth.

Natural clips of the scene generator (``backend.data.scenes``, ``exact=False``: frequencies off the loop's bins,
decaying gusts, bending strips that shorten). For each scene kind and flow method: mean end-point error (EPE) over
all frames 1..T-1 and all moving pixels of the start frame, the same after projecting onto the K kept bins (what the
volume stores), and the per-frequency amplitude spectrum (mean |A_k| over moving pixels) of the extracted volume
against the truth.

    .venv/bin/python scripts/eval_extract.py                 # default: every moving kind, both methods, in memory
    .venv/bin/python scripts/eval_extract.py --video         # through an mp4 file and the CLI's reader
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from addon.core.spectral import SpectralVolume
from backend.data.scene_render import render_scene
from backend.data.scenes import KINDS, SceneConfig
from backend.flow import FlowConfig, compute_trajectories
from backend.video import write_video
from backend.video import read_clip

MOVING_KINDS = [k for k in KINDS if k != "static"]


def epe(est: np.ndarray, gt: np.ndarray, mask: np.ndarray, visible: np.ndarray | None = None) -> float:
    """Mean end-point error over frames 1..T-1 and pixels in mask (and, if given, visible (T, H, W) at frame t).
    est, gt (T, 2, H, W)."""
    err = np.sqrt(((est[1:] - gt[1:]) ** 2).sum(axis=1))  # (T-1, H, W)
    sel = np.broadcast_to(mask, err.shape)
    if visible is not None:
        sel = sel & visible[1:]
    return float(err[sel].mean())


def spectrum(vol: SpectralVolume, mask: np.ndarray) -> np.ndarray:
    return vol.amplitude()[:, mask].mean(axis=1)


def evaluate(kind: str, methods, seed: int, k: int, through_video: bool):
    clip = render_scene(SceneConfig(kind=kind, seed=seed, exact=False))
    frames = clip.frames
    if through_video:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"{kind}.mp4")
            write_video(path, clip.frames, clip.fps, crf=16, preset="slow")
            frames = read_clip(path, size=(frames.shape[2], frames.shape[1])).frames[: frames.shape[0]]
    gt = clip.trajectories
    mask = clip.moving_mask
    gt_vol = SpectralVolume.from_trajectories(gt, k=k, fps=clip.fps)
    gt_band = gt_vol.trajectories()
    gt_spec = spectrum(gt_vol, mask)
    rows = []
    for method in methods:
        t0 = time.perf_counter()
        est = compute_trajectories(frames, FlowConfig(method=method))
        seconds = time.perf_counter() - t0
        vol = SpectralVolume.from_trajectories(est, k=k, fps=clip.fps)
        spec = spectrum(vol, mask)
        spec_err = np.abs(spec[1:] - gt_spec[1:]).sum() / gt_spec[1:].sum()
        rows.append(dict(kind=kind, method=method, epe=epe(est, gt, mask), epe_vis=epe(est, gt, mask, clip.visibility),
                         epe_k=epe(vol.trajectories(), gt_band, mask),
                         spec_err=spec_err, fps=(frames.shape[0] - 1) / seconds, spec=spec, gt_spec=gt_spec,
                         moving=float(mask.mean())))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", nargs="+", default=MOVING_KINDS, choices=KINDS)
    p.add_argument("--methods", nargs="+", default=["dis", "farneback"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--video", action="store_true", help="encode each scene to mp4 and read it back first")
    p.add_argument("--spectrum", action="store_true", help="print the per-frequency amplitude spectra")
    args = p.parse_args(argv)
    print("EPE: mean end-point error (px) over frames 1..T-1 and the start frame's moving pixels; 'visible' leaves "
          "out pixels hidden at frame t;\n'K-band' compares the volume's band-limited motion with the truth's; "
          "spectrum err: sum_k ||A_k|est - |A_k|true| / sum_k |A_k|true, k >= 1")
    print(f"{'scene':8s} {'method':10s} {'moving':>7s} {'EPE px':>7s} {'visible':>7s} {'K-band':>7s} "
          f"{'spectrum err':>12s} {'flow fps':>8s}")
    for kind in args.kinds:
        for r in evaluate(kind, args.methods, args.seed, args.k, args.video):
            print(f"{r['kind']:8s} {r['method']:10s} {100 * r['moving']:6.1f}% {r['epe']:7.3f} {r['epe_vis']:7.3f} "
                  f"{r['epe_k']:7.3f} "
                  f"{100 * r['spec_err']:11.1f}% {r['fps']:8.1f}")
            if args.spectrum:
                print("   true |A_k| " + " ".join(f"{v:5.2f}" for v in r["gt_spec"]))
                print("   est  |A_k| " + " ".join(f"{v:5.2f}" for v in r["spec"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
