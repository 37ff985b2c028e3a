#!/usr/bin/env python
"""Fit a motion model's per-frequency amplitude gain on training windows and write a calibrated checkpoint.

    python scripts/calibrate_motion.py runs/motion/freq/model.pt --data /work/datasets/gid_small \
        -o runs/motion/freq/calibrated.pt          # then: scripts/train_motion.py --ship runs/motion/freq/calibrated.pt

Samples one volume per training window (default prediction settings), compares its power spectrum with the true
one and fits, per frequency, the gain that minimises the log-spectrum error (``backend.motion.calibration``). The
gain multiplies any gain the checkpoint already has. Held-out windows are never used: score the result with
``scripts/eval_motion.py``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="motion checkpoint to calibrate (model.pt of a training stage, or a shipped file)")
    p.add_argument("--data", required=True, help="dataset root (its train split is used)")
    p.add_argument("-o", "--output", required=True, help="calibrated checkpoint to write (not the input file)")
    p.add_argument("--windows", type=int, default=32, help="training windows to sample (spread over the split)")
    p.add_argument("--steps", type=int, default=25)
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

    if a.threads:
        torch.set_num_threads(a.threads)
    if os.path.abspath(a.output) == os.path.abspath(a.model):
        p.error("--output must differ from the input checkpoint (keep the uncalibrated file)")
    if a.windows < 1 or a.batch < 1:
        p.error("--windows and --batch must be >= 1")
    try:
        model, payload = load_checkpoint(a.model, device=resolve_device(a.device))
        train = MotionDataset(a.data, split="train")
    except (FileNotFoundError, CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not len(train):
        print(f"error: {a.data} has no training windows: build one with scripts/build_dataset.py", file=sys.stderr)
        return 2
    idx = np.unique(np.linspace(0, len(train) - 1, min(a.windows, len(train))).round().astype(int))
    predictor = MotionPredictor(model, "calibrating", model.scales.device)
    params = PredictParams(steps=a.steps, guidance=a.guidance, seed=a.seed)
    preds, trues = [], []
    t0 = time.perf_counter()
    for b in tqdm(range(0, len(idx), a.batch), desc="sampling training windows", unit="batch"):
        items = [train[int(i)] for i in idx[b:b + a.batch]]
        photos = torch.stack([torch.as_tensor(it["photo"]) for it in items])
        for it, samples in zip(items, predictor.sample_batch(photos, params)):
            preds.append(samples[0])
            trues.append(np.asarray(it["coeffs"]))
    pred_p, true_p = window_powers(preds), window_powers(trues)
    gain = fit_output_gain(pred_p, true_p)
    before = np.mean([log_spectrum_errors(pred_p[:, k], true_p[:, k], np.zeros(1))[0] for k in range(1, len(gain))])
    after = np.mean([log_spectrum_errors(pred_p[:, k], true_p[:, k], np.log10(gain[k:k + 1]))[0]
                     for k in range(1, len(gain))])
    old = model.output_gain.detach().cpu().numpy().astype(np.float64)
    model.output_gain.copy_(torch.as_tensor(old * gain, dtype=torch.float32))
    half = any(v.dtype == torch.float16 for v in payload["state_dict"].values())
    calib = {"data": os.path.abspath(a.data), "windows": int(len(idx)), "steps": a.steps, "guidance": a.guidance,
             "seed": a.seed, "train_log_spectrum_error_before": float(before),
             "train_log_spectrum_error_after": float(after)}
    save_checkpoint(a.output, model.cpu(), half=half, extra={**payload.get("extra", {}), "calibration": calib})
    print(f"{len(idx)} training windows in {time.perf_counter() - t0:.0f} s; log-spectrum error on them "
          f"{before:.3f} -> {after:.3f}")
    print("gain per frequency k=1..: " + " ".join(f"{g:.2f}" for g in (old * gain)[1:]))
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
