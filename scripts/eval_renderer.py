"""Neural frames against the baselines on held-out real clips with true flow (RenderPairs split "val").

For every held-out pair (I_0, I_t, flow 0->t, W) whose group starts with "real:", each method renders Î_t from I_0
and the flow, and PSNR / SSIM (11x11 Gaussian, valid region) against the real frame I_t are averaged per method,
overall and per range of t across the window:

* renderer     - the neural renderer (default: the shipped checkpoint)
* baseline     - the ablation's single-scale learned-metric splat (only with --baseline CKPT)
* forward warp - softmax splatting of the photo with the motion-magnitude metric + push-pull hole filling
                 (the preview's warp; the renderer's base image: an engineered baseline, stronger than a plain one)
* mesh warp    - Blender's path: the add-on's vertex grid moved by the flow, rasterised (backend/render/meshwarp.py)
* repeat I_0   - no motion at all
* plain splat  - plain forward warping: average splatting of the photo by the flow, holes left black
* plain splat over I_0 - the same composited over the photo (holes and partly covered pixels show I_0 where it was)
* remap        - OpenCV remap of I_0 at x - F(x): backward warping with the forward flow (the baseline of the open
                 reimplementation the issue cites)

PSNR is per pair (capped at 60 dB: a static synthetic scene renders identically), then averaged. A second table
splits the pairs by *flow fidelity* (``backend.render.pairs.flow_fidelity``: PSNR of I_0 against I_t sampled at
p + F(p), whatever renders the frame): below 20 dB the estimated flow does not explain the real frame, and every
warping method is judged on the flow's error more than on its own; in use the renderer's flow is exact. A third
table splits each method's squared error between the *holes* (target pixels that no source pixel reaches: bilinear
splat coverage below the hole fill's confidence, the same pixels for every method) and the covered pixels, where
an error mostly means that the flow moved the wrong content there. ``--flow-noise F`` adds a smooth error of F times
the local RMS motion to every pair's flow (seeded per pair; the training script's perturbation) and keeps the true
target: on procedural pairs with exact flow it measures how each method's score falls with the flow's error.

    .venv/bin/python scripts/eval_renderer.py --data /work/datasets/gid_v1
    .venv/bin/python scripts/eval_renderer.py --data D --checkpoint runs/renderer/renderer.pt --baseline B.pt --json out.json
    .venv/bin/python scripts/eval_renderer.py --pairs /work/datasets/render_pairs_val.npz   # every window of held-out clips
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from backend.flow import sample_at
from backend.render import checkpoint
from backend.render.losses import psnr, ssim
from backend.render.meshwarp import mesh_warp
from backend.render.pairs import flow_fidelity
from backend.render.training import perturb_flow
from backend.splat import FILL_CONFIDENCE, average_splat, fill_holes, motion_metric, softmax_splat

T_BINS = ((1, 30), (30, 75), (75, 10**6))
FIDELITY_BINS = (("<20 dB", 0.0, 20.0), ("20-25 dB", 20.0, 25.0), (">=25 dB", 25.0, 1e9))
PSNR_CAP = 60.0  # dB, per pair
FLOW_NOISE_SEED = 7


def forward_warp(i0: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) photo, (1, 2, H, W) flow, (1, 1, H, W) W -> (1, 3, H, W): the renderer's non-neural base."""
    metric = motion_metric(weight, 20.0, 1.0)
    out, coverage = softmax_splat(torch.cat([i0, metric], 1), flow, metric, return_coverage=True)
    return fill_holes(out[:, :3], coverage, out[:, 3:4])


def plain_splat(i0: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Average splatting (equal metric for every source), holes black."""
    return average_splat(i0, flow)


def splat_over_photo(i0: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Average splatting composited over the unmoved photo by its coverage (what pasting a warped layer gives)."""
    out, coverage = average_splat(i0, flow, return_coverage=True)
    alpha = coverage.clamp(0.0, 1.0)
    return out * alpha + i0 * (1.0 - alpha)


def remap(i0: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """cv2.remap of I_0 at x - F(x) (bilinear, border replicated)."""
    out = sample_at(i0[0].permute(1, 2, 0).numpy(), -flow[0].numpy())
    return torch.from_numpy(out).permute(2, 0, 1)[None]


def evaluate(pairs, methods: dict, limit: int | None = None, progress: bool = True, source: str = "real",
             flow_noise: float = 0.0) -> dict:
    """{method: [(t, psnr, ssim, group, flow fidelity, hole fraction, MSE in holes, MSE on covered pixels), ...]}
    over the held-out pairs of ``source`` (real, synthetic or all). The two MSE parts are sums over their pixels
    divided by all pixels, so they add up to the frame's MSE."""
    groups = pairs.groups()
    idx = [i for i, g in enumerate(groups)
           if source == "all" or (str(g).startswith("real:") == (source == "real"))]
    if limit:
        idx = idx[:: max(1, len(idx) // limit)][:limit]
    if not idx:
        raise SystemExit(f"no held-out {source} pairs in this dataset's val split (real ones need a dataset "
                         "built with --videos)")
    rows = {name: [] for name in methods}
    start = time.perf_counter()
    with torch.no_grad():
        for n, i in enumerate(idx):
            s = pairs[i]
            if flow_noise > 0:
                s = perturb_flow(s, flow_noise, np.random.default_rng([FLOW_NOISE_SEED, int(i)]))
            i0, it = s["i0"][None].float(), s["it"][None].float()
            flow = s["flow"][None].float()
            weight = s["weight"].reshape(1, 1, *flow.shape[-2:]).float()
            fidelity = flow_fidelity(i0[0].numpy(), it[0].numpy(), flow[0].numpy())
            hole = (average_splat(i0[:, :1], flow, return_coverage=True)[1]
                    < FILL_CONFIDENCE)[:, 0]
            for name, fn in methods.items():
                pred = fn(i0, flow, weight).clamp(0, 1)
                value = min(float(psnr(pred, it)), PSNR_CAP)  # identical frames (static scenes) would be inf
                err = (pred - it).pow(2).mean(dim=1)
                in_holes = float(err[hole].sum()) / err.numel()
                rows[name].append((int(s["t"]), value, float(ssim(pred, it)), str(s["group"]), fidelity,
                                   float(hole.float().mean()), in_holes, float(err.mean()) - in_holes))
            if progress and (n + 1) % 10 == 0:
                rate = (n + 1) / (time.perf_counter() - start)
                print(f"  {n + 1}/{len(idx)} pairs, ETA {(len(idx) - n - 1) / rate:.0f} s", file=sys.stderr,
                      flush=True)
    return rows


def summarise(rows: dict) -> dict:
    out = {}
    for name, r in rows.items():
        t = np.array([x[0] for x in r])
        p = np.array([x[1] for x in r])
        s = np.array([x[2] for x in r])
        fid = np.array([x[4] for x in r])
        entry = {"pairs": len(r), "psnr": float(p.mean()), "ssim": float(s.mean()), "bins": {}, "fidelity": {},
                 "hole_fraction": float(np.mean([x[5] for x in r])),
                 "mse_holes": float(np.mean([x[6] for x in r])), "mse_covered": float(np.mean([x[7] for x in r]))}
        masks = [(entry["bins"], f"{lo}-{min(hi, 150) - 1}", (t >= lo) & (t < hi)) for lo, hi in T_BINS]
        masks += [(entry["fidelity"], label, (fid >= lo) & (fid < hi)) for label, lo, hi in FIDELITY_BINS]
        for where, label, m in masks:
            if m.any():
                where[label] = {"pairs": int(m.sum()), "psnr": float(p[m].mean()), "ssim": float(s[m].mean())}
        out[name] = entry
    return out


def table(summary: dict) -> str:
    bins = [f"{lo}-{min(hi, 150) - 1}" for lo, hi in T_BINS]
    head = "| method | pairs | PSNR dB | SSIM | " + " | ".join(f"PSNR t={b}" for b in bins) + " |"
    lines = [head, "|" + "---|" * (4 + len(bins))]
    for name, e in summary.items():
        cells = [f"{e['bins'][b]['psnr']:.2f}" if b in e["bins"] else "-" for b in bins]
        lines.append(f"| {name} | {e['pairs']} | {e['psnr']:.2f} | {e['ssim']:.4f} | " + " | ".join(cells) + " |")
    first = next(iter(summary.values()))
    counts = [first["fidelity"].get(label, {}).get("pairs", 0) for label, _, _ in FIDELITY_BINS]
    lines += ["", "| method, PSNR dB by flow fidelity | " + " | ".join(
        f"{label} ({n} pairs)" for (label, _, _), n in zip(FIDELITY_BINS, counts)) + " |",
        "|" + "---|" * (1 + len(FIDELITY_BINS))]
    for name, e in summary.items():
        cells = [f"{e['fidelity'][label]['psnr']:.2f}" if label in e["fidelity"] else "-"
                 for label, _, _ in FIDELITY_BINS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"| method, mean squared error x 1000 | holes ({first['hole_fraction']:.1%} of pixels) | covered "
              "pixels | frame |", "|---|---|---|---|"]
    for name, e in summary.items():
        lines.append(f"| {name} | {1e3 * e['mse_holes']:.3f} | {1e3 * e['mse_covered']:.3f} | "
                     f"{1e3 * (e['mse_holes'] + e['mse_covered']):.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="dataset root (its val split's real pairs are used)")
    p.add_argument("--pairs", help="or: .npz of pairs from held-out clips (scripts/real_render_pairs.py), all used")
    p.add_argument("--checkpoint", help="renderer checkpoint (default: the shipped one)")
    p.add_argument("--baseline", help="baseline-splat checkpoint for the ablation row")
    p.add_argument("--limit", type=int, help="evaluate at most this many pairs (evenly spread)")
    p.add_argument("--no-mesh", action="store_true", help="skip the (slower) mesh-warp baseline")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--split", choices=("val", "all"), default="val",
                   help="val = the dataset's held-out groups (default); all = every pair, for a dataset built from "
                        "held-out clips only")
    p.add_argument("--source", choices=("real", "synthetic", "all"), default="real",
                   help="which held-out pairs (default real clips)")
    p.add_argument("--flow-noise", type=float, default=0.0,
                   help="add a smooth flow error of this fraction of the local RMS motion to every pair (e.g. 0.3; "
                        "the target frame stays the true one)")
    p.add_argument("--json", help="also write the numbers here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if bool(args.data) == bool(args.pairs):
        p.error("give --data or --pairs")
    if args.pairs:
        from backend.render.pairs import NpzPairs

        pairs = NpzPairs(args.pairs)
    else:
        from backend.data.dataset import RenderPairs

        pairs = RenderPairs(args.data, args.split)
    model, meta = checkpoint.load(args.checkpoint)
    methods = {f"renderer ({meta['model_id']})": lambda i0, f, w: model(i0, f, w)}
    if args.baseline:
        base, base_meta = checkpoint.load(args.baseline)
        methods[f"baseline splat ({base_meta['model_id']})"] = lambda i0, f, w: base(i0, f, w)
    methods["forward warp"] = forward_warp
    if not args.no_mesh:
        def mesh(i0, f, w):
            img = i0[0].permute(1, 2, 0).numpy()
            out = mesh_warp(img, f[0].numpy(), depth=np.sqrt(w[0, 0].numpy()))
            return torch.from_numpy(out).permute(2, 0, 1)[None]
        methods["mesh warp"] = mesh
    methods["repeat I_0"] = lambda i0, f, w: i0
    methods["plain splat (holes black)"] = plain_splat
    methods["plain splat over I_0"] = splat_over_photo
    methods["remap (x - F)"] = remap
    if not 0 <= args.flow_noise <= 10:
        p.error("--flow-noise must be in [0, 10] (a fraction of the local RMS motion)")
    rows = evaluate(pairs, methods, args.limit, source=args.source, flow_noise=args.flow_noise)
    summary = summarise(rows)
    print(table(summary))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"data": os.path.abspath(args.data or args.pairs), "source": args.source,
                       "flow_noise": args.flow_noise, "summary": summary, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
