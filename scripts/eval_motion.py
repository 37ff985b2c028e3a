#!/usr/bin/env python
"""Evaluate motion models on held-out windows (split "val": synthetic by scene seed, real by clip) against baselines.

    python scripts/eval_motion.py --data /work/datasets/gid_v1 --model runs/motion/freq/model.pt \
        --stage1 runs/motion/unet/model.pt --samples 3 --steps 25 --json eval.json

Metrics per window (then averaged, separately for synthetic and real):
  (a) Spearman rank correlation of predicted vs true motion-amplitude maps (does it know *what* moves; higher better)
  (b) per-frequency log10 power-spectrum error, paper Fig. 2 (lower better)
  (c) best-of-N trajectory end-point error in pixels of the 256x160 map (lower better)
Baselines: zero motion (Repeat I0) and the mean training spectrum everywhere (mean complex coefficient per frequency
for (c), mean power per frequency for (b); both are spatially constant, so their (a) is 0 by definition).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from backend.motion.evaluation import log_spectrum_error, window_metrics
from backend.motion.predictor import PredictParams, load_predictor


def mean_training_spectrum(ds, n=64):
    idx = np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int)
    acc = None
    power = None
    for i in idx:
        c = np.asarray(ds[int(i)]["coeffs"]).astype(np.float64)
        m = c.mean(axis=(2, 3))
        p = (c ** 2).mean(axis=(2, 3))
        acc = m if acc is None else acc + m
        power = p if power is None else power + p
    return acc / len(idx), power / len(idx)  # (K, 4) each


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--real-data", help="another dataset root whose windows (all splits) are scored as held-out real "
                                       "windows, for a model that never saw it")
    p.add_argument("--model", default=None, help="motion checkpoint (default: the shipped one)")
    p.add_argument("--stage1", help="stage-1 checkpoint for the independent-prediction ablation")
    p.add_argument("--samples", type=int, default=3, help="N for best-of-N (default 3)")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=1.5)
    p.add_argument("--max-synthetic", type=int, default=48)
    p.add_argument("--max-real", type=int, default=48)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int)
    p.add_argument("--json", help="write the table as JSON here")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from tqdm import tqdm

    from backend.data.dataset import MotionDataset

    val = MotionDataset(a.data, split="val")
    train = MotionDataset(a.data, split="train")
    groups = val.groups()
    sets = {"synthetic": [(val, i) for i, g in enumerate(groups) if g.startswith("syn:")][:a.max_synthetic],
            "real": [(val, i) for i, g in enumerate(groups) if g.startswith("real:")]}
    if a.real_data:
        extra = MotionDataset(a.real_data, split="all")
        sets["real"] += [(extra, i) for i, g in enumerate(extra.groups()) if g.startswith("real:")]
    if len(sets["real"]) > a.max_real:
        keep = np.linspace(0, len(sets["real"]) - 1, a.max_real).round().astype(int)
        sets["real"] = [sets["real"][j] for j in keep]
    mean_c, mean_p = mean_training_spectrum(train)
    models = {"model": load_predictor(a.model, device="auto")}
    if a.stage1:
        models["stage 1 only"] = load_predictor(a.stage1, device="auto")
    params = PredictParams(steps=a.steps, guidance=a.guidance)
    table = {}
    t0 = time.perf_counter()
    for split, idx in sets.items():
        if not idx:
            continue
        rows = {name: [] for name in ["zero motion", "mean spectrum", *models]}
        items = [{k: v.numpy() if torch.is_tensor(v) else v for k, v in ds[i].items()} for ds, i in idx]
        h, w = items[0]["coeffs"].shape[-2:]
        mean_volume = np.broadcast_to(mean_c[:, :, None, None], (mean_c.shape[0], 4, h, w)).astype(np.float32)
        for it in items:
            true = it["coeffs"]
            rows["zero motion"].append(window_metrics([np.zeros_like(true)], true, it["num_frames"]))
            m = window_metrics([mean_volume], true, it["num_frames"])
            # (b) for the mean spectrum uses the mean *power* (the mean complex coefficient averages phases away)
            amp = np.sqrt(mean_p[:, :, None, None])
            m["log_spectrum_error"] = log_spectrum_error(np.broadcast_to(amp, true.shape), true)
            rows["mean spectrum"].append(m)
        for name, pred in models.items():
            for b in tqdm(range(0, len(items), a.batch), desc=f"{split}: {name}", unit="batch"):
                chunk = items[b:b + a.batch]
                photos = torch.stack([torch.as_tensor(c["photo"]) for c in chunk])
                samples = pred.sample_batch(photos, params, a.samples)
                for it, s in zip(chunk, samples):
                    rows[name].append(window_metrics(s, it["coeffs"], it["num_frames"]))
        table[split] = {name: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} | {"windows": len(rs)}
                        for name, rs in rows.items()}
    print(f"\nheld-out windows of {a.data}; N={a.samples} samples, {a.steps} steps, guidance {a.guidance}; "
          f"{time.perf_counter() - t0:.0f} s")
    print("| split | method | (a) Spearman ↑ | (b) log-spectrum err ↓ | (c) best-of-N EPE px ↓ | windows |")
    print("|---|---|---|---|---|---|")
    for split, rows in table.items():
        for name, m in rows.items():
            print(f"| {split} | {name} | {m['spearman']:.3f} | {m['log_spectrum_error']:.3f} | {m['best_epe']:.3f} "
                  f"| {m['windows']} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"data": a.data, "samples": a.samples, "steps": a.steps, "guidance": a.guidance,
                       "table": table}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
