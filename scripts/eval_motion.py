#!/usr/bin/env python
"""Evaluate motion models on held-out real clips and held-out procedural scenes, on trusted pixels, against cues.

    python scripts/eval_motion.py --real /work/datasets/real_v2 --synthetic /work/datasets/syn_v2 \
        --model backend/assets/motion_default.pt --json eval.json

Real: the windows of the clips the dataset build held out with --holdout (split "test": no stage trains, validates
or calibrates on them), at most --max-per-clip per clip, spread over each clip. Procedural: the held-out scene
seeds (split "val") of --synthetic. Metrics per window on trusted pixels (real windows carry the flow's trust;
procedural ones are exact), then the mean over windows (geometric mean for ratios):

  Spearman ↑      rank correlation of predicted and true amplitude maps (does it know *what* moves)
  log-spec ↓      mean over k >= 1 of |log10 P_pred(k) - log10 P_true(k)|, P = mean power (paper Fig. 2)
  amp ratio       mean predicted / true amplitude (1 = right; target 0.5..2)
  rough ratio     roughness (mean |grad c| / mean |c|) predicted / true (speckle; target <= 2)
  out/in          with a hint drawn from the truth: mean motion outside the hint / inside (target <= 0.1); the
                  other metrics of that row are taken inside the hint

Rows: zero motion, mean training spectrum, texture cue, ImageNet-class cue, v1 (--v1), the model without hint,
the model with the truth's hint. N = --samples seeds per window (metrics averaged).

--photos DIR: photos without motion truth (e.g. ../shared/data/photos, which nothing trains on): the model's motion
level per photo (90th percentile of the predicted amplitude, px of the map; seed 0) and their median, beside the
typical level of the real training windows (the level the energy head's targets are brought to). A model that
predicts far less on photos it never saw than that level is short of motion on new photos; unlike the held-out
clips, this needs no truth, so candidates can be compared on it without touching the held-out clips.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from addon.core.spectral import resample
from backend.motion.cues import class_cue, cue_volume, texture_cue
from backend.motion.evaluation import clip_interval, power_spectrum, summarise, trusted_metrics, truth_hint
from backend.motion.predictor import V1_CHECKPOINT, PredictParams, load_predictor

COLUMNS = ("spearman", "log_spectrum_error", "amplitude_ratio", "roughness_ratio", "outside_inside")
HEAD = ("Spearman ↑", "log-spec ↓", "amp ratio", "rough ratio", "out/in")


def pick(ds, split: str, per_group: int | None, limit: int | None) -> list:
    """Indices of ``split``: at most ``per_group`` per group, spread over it, and at most ``limit`` in all."""
    groups = ds.groups()
    by = {}
    for i, g in enumerate(groups):
        by.setdefault(g, []).append(i)
    out = []
    for g in sorted(by):
        idx = by[g]
        if per_group and len(idx) > per_group:
            idx = [idx[j] for j in np.linspace(0, len(idx) - 1, per_group).round().astype(int)]
        out += idx
    if limit and len(out) > limit:
        out = [out[j] for j in np.linspace(0, len(out) - 1, limit).round().astype(int)]
    return out


def mean_power(ds, n: int = 96) -> np.ndarray:
    """Mean power per frequency over the trusted pixels of up to ``n`` training windows."""
    idx = np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int)
    acc = []
    for i in idx:
        s = ds[int(i)]
        c, mask = np.asarray(s["coeffs"], np.float32), np.asarray(s["trust"]) > 0.5
        if mask.any():
            acc.append(power_spectrum(c, mask))
    return np.mean(acc, axis=0)


def evaluate(items: list, models: dict, params: PredictParams, samples: int, power: np.ndarray, trunk,
             batch: int) -> dict:
    rows = {name: [] for name in ("zero motion", "mean spectrum", "texture cue", "ImageNet-class cue")}
    for it in items:
        true, trust = it["coeffs"], it["trust"]
        rows["zero motion"].append(trusted_metrics(np.zeros_like(true), true, trust))
        h, w = true.shape[-2:]
        rows["mean spectrum"].append(trusted_metrics(cue_volume(np.ones((h, w), np.float32), power), true, trust))
        rows["texture cue"].append(trusted_metrics(cue_volume(texture_cue(it["photo"]), power), true, trust))
        with torch.no_grad():
            logits = trunk(torch.as_tensor(it["photo"])[None])["logits"][0]
        rows["ImageNet-class cue"].append(trusted_metrics(cue_volume(class_cue(logits, (h, w)), power), true, trust))
    from tqdm import tqdm

    for name, (pred, with_hint) in models.items():
        rows[name] = []
        for b in tqdm(range(0, len(items), batch), desc=name, unit="batch", leave=False):
            chunk = items[b:b + batch]
            photos = torch.stack([torch.as_tensor(c["photo"]) for c in chunk])
            hints = None
            if with_hint:
                hints = torch.stack([torch.as_tensor(c["hint"])[None] for c in chunk])
            h, w = photos.shape[-2:]
            size = pred.map_size  # (W, H): a model of another map size sees the photo at its own size
            if size != (w, h):
                photos = F.interpolate(photos, size=(size[1], size[0]), mode="bilinear", align_corners=False)
                hints = None if hints is None else F.interpolate(hints, size=(size[1], size[0]), mode="bilinear",
                                                                 align_corners=False)
            out = pred.sample_batch(photos, params, samples, hints=hints)
            if size != (w, h):  # back to the truth's map, amplitudes scaled with the size
                out = [[resample(x, w, h) for x in s] for s in out]
            for it, s in zip(chunk, out):
                ms = [trusted_metrics(x, it["coeffs"], it["trust"], it["hint"] if with_hint else None) for x in s]
                rows[name].append({k: float(np.mean([m[k] for m in ms])) for k in ms[0]})
    return {name: summarise(r) | {"windows": len(r)} for name, r in rows.items()}, rows


def per_group(items: list, rows: dict, names: list) -> dict:
    out = {}
    for g in sorted({it["group"] for it in items}):
        sel = [j for j, it in enumerate(items) if it["group"] == g]
        out[g] = {n: summarise([rows[n][j] for j in sel]) for n in names}
    return out


def table(title: str, result: dict) -> str:
    lines = [f"\n{title}", "| method | " + " | ".join(HEAD) + " | windows |", "|---" * (len(HEAD) + 2) + "|"]
    for name, m in result.items():
        cells = [f"{m[c]:.3f}" if c in m and np.isfinite(m[c]) else "—" for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {m['windows']} |")
    return "\n".join(lines)


def photo_levels(folder: str, model, params: PredictParams) -> dict:
    """{photo file name: the model's motion level (px of the map)} for every photo in ``folder``: the level a
    training window's targets are measured by (``training_v2.motion_level``), over every pixel."""
    from backend.motion.commands import read_photo
    from backend.motion.training_v2 import motion_level

    names = sorted(f for f in os.listdir(folder) if os.path.splitext(f)[1].lower() in (".jpg", ".jpeg", ".png"))
    levels = {}
    for f in names:
        coeffs = torch.as_tensor(np.asarray(model.predict(read_photo(os.path.join(folder, f)), params).coeffs))[None]
        levels[f] = motion_level(coeffs, torch.ones(1, 1, *coeffs.shape[-2:]))
    return levels


def load_items(ds, idx) -> list:
    items = []
    for i in idx:
        s = ds[int(i)]
        it = {k: v.numpy() if torch.is_tensor(v) else v for k, v in s.items()}
        it["hint"] = truth_hint(it["coeffs"])
        items.append(it)
    return items


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real", help="dataset whose split 'test' holds the held-out real clips (build --holdout)")
    p.add_argument("--real-split", default="test", choices=("test", "train"),
                   help="score the held-out clips (test, default) or training clips (train: how well the model "
                        "fits what it saw; choose between candidates on this and on the procedural scenes, never on "
                        "the held-out clips)")
    p.add_argument("--real-train", help="dataset whose train split gives the mean real spectrum (default --real)")
    p.add_argument("--synthetic", help="procedural dataset; its split 'val' holds the held-out scenes")
    p.add_argument("--model", default=None, help="the model to evaluate (default: the shipped one)")
    p.add_argument("--v1", default=V1_CHECKPOINT, help="the v1 checkpoint, for its row (default: the shipped "
                   "backend/assets/motion_v1.pt; 'none' leaves the row out)")
    p.add_argument("--samples", type=int, default=2)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=1.5)
    p.add_argument("--max-per-clip", type=int, default=6)
    p.add_argument("--max-synthetic", type=int, default=24)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int)
    p.add_argument("--photos", help="folder of photos without truth: the model's motion level on each (see above)")
    p.add_argument("--json", help="write the tables as JSON here")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if not (a.real or a.synthetic or a.photos):
        p.error("give --real, --synthetic and/or --photos")
    if a.photos and not os.path.isdir(a.photos):
        p.error(f"--photos {a.photos}: not a folder of photos")
    from backend.data.dataset import MotionDataset
    from backend.motion.trunk import load_trunk

    trunk = load_trunk()
    model = load_predictor(a.model, device="auto")
    models = {"model (automatic)": (model, False)}
    if model.architecture == "v2":
        models["model with the truth's hint"] = (model, True)
    if a.v1 and a.v1.lower() != "none":
        models = {"v1": (load_predictor(a.v1, device="auto"), False), **models}
    params = PredictParams(steps=a.steps, guidance=a.guidance)
    report = {"model": model.model_id, "samples": a.samples, "steps": a.steps, "guidance": a.guidance}
    t0 = time.perf_counter()
    text = []
    for split, root, ds_split, per, limit in (("real", a.real, a.real_split, a.max_per_clip, None),
                                              ("procedural", a.synthetic, "val", None, a.max_synthetic)):
        if not root:
            continue
        ds = MotionDataset(root, split=ds_split)
        if not len(ds):
            print(f"error: {root} has no '{ds_split}' windows" + (" (build it with --holdout CLIPS)"
                                                                 if ds_split == "test" else ""), file=sys.stderr)
            return 2
        items = load_items(ds, pick(ds, ds_split, per, limit))
        power = mean_power(MotionDataset(a.real_train or root if split == "real" else root, split="train"))
        result, rows = evaluate(items, models, params, a.samples, power, trunk, a.batch)
        groups = [it["group"] for it in items]
        spread = {name: {key: clip_interval(rows[name], groups, key) for key in ("spearman", "amplitude_ratio")}
                  for name in models}
        report[split] = {"split": ds_split, "table": result, "groups": sorted(set(groups)),
                         "per_group": per_group(items, rows, list(result)), "interval_90": spread}
        kind = "training" if ds_split == "train" else "held-out"
        text.append(table(f"{split}: {len(items)} {kind} windows of {len(report[split]['groups'])} "
                          f"{'clips' if split == 'real' else 'scenes'} ({', '.join(g.split(':', 1)[1] for g in report[split]['groups'][:8])}"
                          f"{' ...' if len(report[split]['groups']) > 8 else ''})", result))
        unit = "clips" if split == "real" else "scenes"
        text.append(f"\n90% interval when the {unit} are drawn again (with replacement): " + "; ".join(
            f"{name}: Spearman {v['spearman'][0]:.2f}..{v['spearman'][1]:.2f}, amp ratio "
            f"{v['amplitude_ratio'][0]:.2f}..{v['amplitude_ratio'][1]:.2f}" for name, v in spread.items()))
        if split == "real":
            text.append("\nper clip, Spearman / amp ratio / rough ratio:")
            for g, r in report[split]["per_group"].items():
                text.append(f"  {g.split(':', 1)[1]:34s} " + "  ".join(
                    f"{n[:18]}: {m['spearman']:.2f}/{m['amplitude_ratio']:.2f}/{m['roughness_ratio']:.2f}"
                    for n, m in r.items() if n not in ("zero motion", "mean spectrum")))
    if a.photos:
        from backend.cli import UserError

        try:
            levels = photo_levels(a.photos, model, params)
        except UserError as exc:  # a file that is not a usable photo: say which, no traceback
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not levels:
            print(f"error: {a.photos} holds no .jpg or .png photos", file=sys.stderr)
            return 2
        report["photos"] = {"folder": a.photos, "level_px": levels, "median_px": float(np.median(list(levels.values())))}
        line = f"\nphotos without truth ({a.photos}): median motion level {report['photos']['median_px']:.2f} px"
        if a.real:
            from backend.motion.training_v2 import typical_level

            report["photos"]["typical_px"] = typical_level(MotionDataset(a.real, split="train"))
            line += f" (typical level of the real training windows {report['photos']['typical_px']:.2f} px)"
        text.append(line + "\n" + "\n".join(f"  {f:42s} {v:7.3f}" for f, v in levels.items()))
    print(f"{model.model_id}; N={a.samples} samples, {a.steps} steps, guidance {a.guidance}; "
          f"{time.perf_counter() - t0:.0f} s")
    print("\n".join(text))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
