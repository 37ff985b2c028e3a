#!/usr/bin/env python
"""Fit a motion model's per-frequency amplitude gain on training windows and write a calibrated checkpoint.

    python scripts/calibrate_motion.py runs/motion/freq/model.pt --data /work/datasets/gid_small \
        -o runs/motion/freq/calibrated.pt          # then: scripts/train_motion.py --ship runs/motion/freq/calibrated.pt

Samples one volume per training window (default prediction settings), compares its power spectrum with the true
one and fits, per frequency, the gain that minimises the log-spectrum error (``backend.motion.calibration``). The
gain multiplies any gain the checkpoint already has. Held-out windows are never used: score the result with
``scripts/eval_motion.py``.

``--steps 10,50,100`` fits the gains at each of those DDIM step counts (one pass each), starting from the gains the
checkpoint already gives that count; the checkpoint then keeps a table of gains per step count (with those it had,
e.g. the 25 steps of an earlier calibration) and predictions interpolate between them. Its ``output_gain`` stays
the gain at the default 25 steps.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="motion checkpoint to calibrate (model.pt of a training stage, or a shipped file)")
    p.add_argument("--data", required=True, help="dataset root (its train split is used)")
    p.add_argument("-o", "--output", required=True, help="calibrated checkpoint to write (not the input file)")
    p.add_argument("--windows", type=int, default=32, help="training windows to sample (spread over the split)")
    p.add_argument("--steps", default="25", help="DDIM step count(s), comma-separated (default 25)")
    p.add_argument("--guidance", type=float, default=1.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    a = p.parse_args(argv)
    from tqdm import tqdm

    from backend.data.dataset import MotionDataset
    from backend.device import resolve_device
    from backend.motion.calibration import fit_output_gain, log_spectrum_errors, window_powers
    from backend.motion.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from backend.motion.predictor import MotionPredictor, PredictParams

    DEFAULT_STEPS = PredictParams().steps

    if a.threads:
        torch.set_num_threads(a.threads)
    if os.path.abspath(a.output) == os.path.abspath(a.model):
        p.error("--output must differ from the input checkpoint (keep the uncalibrated file)")
    if a.windows < 1 or a.batch < 1:
        p.error("--windows and --batch must be >= 1")
    try:
        step_counts = sorted({int(n) for n in a.steps.split(",")})
    except ValueError:
        step_counts = []
    if not step_counts or not all(1 <= n <= 500 for n in step_counts):
        p.error(f"--steps {a.steps!r}: give step counts 1..500, comma-separated (e.g. 10,25,50)")
    try:
        model, payload = load_checkpoint(a.model, device=resolve_device(a.device))
        train = MotionDataset(a.data, split="train")
    except (FileNotFoundError, CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if getattr(model, "architecture", "v1") == "v2":
        print(f"error: {a.model} is a v2 model: its energy head predicts the amplitude, there are no per-step gains "
              f"to fit (docs/motion.md)", file=sys.stderr)
        return 2
    if not len(train):
        print(f"error: {a.data} has no training windows: build one with scripts/build_dataset.py", file=sys.stderr)
        return 2
    idx = np.unique(np.linspace(0, len(train) - 1, min(a.windows, len(train))).round().astype(int))
    predictor = MotionPredictor(model, "calibrating", model.scales.device)
    windows = [train[int(i)] for i in idx]
    trues = [np.asarray(it["coeffs"]) for it in windows]
    # the gains the checkpoint gives each count now: its table, or output_gain at the count it was calibrated at
    prior = payload.get("extra", {}).get("calibration", {})
    errors = ("train_log_spectrum_error_before", "train_log_spectrum_error_after")
    if model.gain_table is not None:
        table = {n: g.astype(np.float64) for n, g in zip(model.gain_steps, model.gain_table.cpu().numpy())}
        earlier = dict(prior.get("step_counts", {}))
    elif isinstance(prior.get("steps"), int):  # calibrated before at one count
        table = {prior["steps"]: model.output_gain.cpu().numpy().astype(np.float64)}
        earlier = {str(prior["steps"]): {k: prior[k] for k in errors if k in prior}}
    else:
        table, earlier = {}, {}
    fits = {}
    t0 = time.perf_counter()
    for n in step_counts:
        params = PredictParams(steps=n, guidance=a.guidance, seed=a.seed)
        preds = []
        for b in tqdm(range(0, len(windows), a.batch), desc=f"sampling training windows, {n} steps", unit="batch"):
            photos = torch.stack([torch.as_tensor(it["photo"]) for it in windows[b:b + a.batch]])
            preds += [samples[0] for samples in predictor.sample_batch(photos, params)]
        pred_p, true_p = window_powers(preds), window_powers(trues)
        gain = fit_output_gain(pred_p, true_p)
        ks = range(1, len(gain))
        before = np.mean([log_spectrum_errors(pred_p[:, k], true_p[:, k], np.zeros(1))[0] for k in ks])
        after = np.mean([log_spectrum_errors(pred_p[:, k], true_p[:, k], np.log10(gain[k:k + 1]))[0] for k in ks])
        table[n] = model.gain_for_steps(n).cpu().numpy().astype(np.float64) * gain
        fits[str(n)] = dict(zip(errors, (float(before), float(after))))
        print(f"{n} steps: log-spectrum error on the {len(idx)} training windows {before:.3f} -> {after:.3f}; "
              "gain per frequency k=1..: " + " ".join(f"{g:.2f}" for g in table[n][1:]))
    counts = sorted(table)
    if len(counts) > 1:
        model.set_step_gains(counts, np.stack([table[n] for n in counts]))
    reference = model.gain_for_steps(DEFAULT_STEPS) if len(counts) > 1 else torch.as_tensor(table[counts[0]])
    model.output_gain.copy_(reference.to(model.output_gain.dtype))
    half = any(v.dtype == torch.float16 for v in payload["state_dict"].values())
    calib = {"data": os.path.abspath(a.data), "windows": int(len(idx)), "guidance": a.guidance, "seed": a.seed}
    if len(counts) == 1:
        calib.update(steps=counts[0], **fits[str(counts[0])])
    else:  # the errors of every count in the table, fitted now or before
        calib.update(steps=counts, step_counts={**earlier, **fits})
    save_checkpoint(a.output, model.cpu(), half=half, extra={**payload.get("extra", {}), "calibration": calib})
    print(f"{len(idx)} training windows x {len(step_counts)} step count(s) in {time.perf_counter() - t0:.0f} s")
    print(f"wrote {a.output}" + (f" (gains for {', '.join(map(str, counts))} steps)" if len(counts) > 1 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
