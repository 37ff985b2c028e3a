#!/usr/bin/env python
"""Train the motion model: v2 in one stage (energy head + shape diffusion on a frozen ImageNet trunk), or v1 one stage
at a time: vae -> unet (stage 1) -> freq (stage 2, frequency attention).

    python scripts/train_motion.py --stage v2 --data D_SYN,D_REAL --out runs/v2 --steps 4000 --threads 1
    python scripts/train_motion.py --stage vae  --data /work/datasets/gid_v1 --out runs/motion --steps 3000
    python scripts/train_motion.py --stage unet --data ... --out runs/motion --init runs/motion/vae/model.pt
    python scripts/train_motion.py --stage freq --data ... --out runs/motion --init runs/motion/unet/model.pt
    python scripts/train_motion.py --ship runs/motion/freq/model.pt   # -> backend/assets/motion_default.pt (fp16)

Running the same command again resumes from ``<out>/<stage>/state.pt``. The config is saved with every checkpoint
and checked on resume and on ``--init``. CPU by default; on GPUs: ``accelerate launch scripts/train_motion.py ...``
(one process per GPU, DDP).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import torch

from backend.motion.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from backend.motion.config import MotionConfig, MotionV2Config, tiny_config, tiny_v2_config
from backend.motion.predictor import DEFAULT_CHECKPOINT
from backend.motion.training import STAGES, Trainer, TrainOptions

PRESETS = {"default": MotionConfig, "tiny": tiny_config}
PRESETS_V2 = {"default": MotionV2Config, "tiny": tiny_v2_config}


def load_config(spec: str, v2: bool = False):
    presets = PRESETS_V2 if v2 else PRESETS
    if spec in presets:
        return presets[spec]()
    with open(spec) as f:
        return (MotionV2Config if v2 else MotionConfig).from_dict(json.load(f))


class Windows(torch.utils.data.ConcatDataset):
    """The windows of one split of several dataset roots, one after the other."""

    def __init__(self, roots, split):
        from backend.data.dataset import MotionDataset
        from backend.motion.training import dataset_key

        parts = [MotionDataset(r, split=split) for r in roots]
        super().__init__(parts)
        self.split = split
        self.cache_key = "+".join(dataset_key(p) for p in parts)


def ship(src: str, dst: str) -> None:
    model, payload = load_checkpoint(src)
    save_checkpoint(dst, model, half=True, extra=payload.get("extra", {}))
    size = os.path.getsize(dst) / 2 ** 20
    print(f"wrote {dst}: {size:.1f} MB (fp16), {sum(model.count_parameters().values()) / 1e6:.2f}M parameters")
    if size > 25:
        print("warning: over the 25 MB limit for checkpoints committed to the repo", file=sys.stderr)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", choices=("v2",) + STAGES, help="v2 (one stage), or v1's vae, unet, freq")
    p.add_argument("--data", help="dataset root written by scripts/build_dataset.py (several: comma-separated; "
                                  "the first one's stats.npz sets the normalisation)")
    p.add_argument("--out", default="runs/motion", help="run folder (default runs/motion)")
    p.add_argument("--config", default="default", help="'default', 'tiny' or a JSON file of MotionConfig")
    p.add_argument("--init", help="previous stage's model.pt (unet: vae's, freq: unet's)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float)
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--max-windows", type=int, help="cache latents of at most this many training windows")
    p.add_argument("--max-minutes", type=float, help="stop and save after this wall time (resume later)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--real-fraction", type=float, default=0.5, help="v2: share of real windows per batch")
    p.add_argument("--no-level-targets", action="store_true",
                   help="v2: train on each window's own motion level (default: levels brought toward the typical one)")
    p.add_argument("--cache", help="v2: folder of the feature caches (default OUT/cache); share one between runs on "
                                   "the same data and settings, e.g. a fine-tune and its base run")
    p.add_argument("--real-crops", type=int, default=0,
                   help="v2: zoomed crops (1.25-2x) of every real window added to the feature cache")
    p.add_argument("--real-mosaics", type=int, default=0,
                   help="v2: 2x2 mosaics at half size (as if filmed from twice as far) of every real window and three "
                        "others, added to the feature cache")
    p.add_argument("--real-recolours", type=int, default=0,
                   help="v2: strongly recoloured copies (brightness, contrast, saturation, white balance, gamma) of "
                        "every real window, added to the feature cache")
    p.add_argument("--no-still-windows", action="store_true",
                   help="v2: batches skip fully still windows (the procedural build's static scenes)")
    p.add_argument("--energy-loss", choices=("poisson", "l1log"), default="poisson",
                   help="v2: the energy head's loss (poisson: mean amplitude; l1log: median of its log)")
    p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16", help="v2: autocast precision")
    p.add_argument("--ship", metavar="MODEL_PT", help="write MODEL_PT as the shipped fp16 default and exit")
    p.add_argument("--ship-to", default=DEFAULT_CHECKPOINT)
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        if a.ship:
            ship(a.ship, a.ship_to)
            return 0
        if not a.stage or not a.data:
            p.error("--stage and --data are required (or --ship)")
        from backend.data.dataset import load_stats

        roots = [r for r in a.data.split(",") if r]
        if a.stage == "v2":
            from backend.motion.training_v2 import TrainerV2, TrainV2Options

            opts = TrainV2Options(out=a.out, steps=a.steps, batch=a.batch, lr=a.lr or 3e-4, val_every=a.val_every,
                                  seed=a.seed, real_fraction=a.real_fraction, precision=a.precision, init=a.init,
                                  energy_loss=a.energy_loss, level_targets=not a.no_level_targets,
                                  still_windows=not a.no_still_windows, real_crops=a.real_crops,
                                  real_mosaics=a.real_mosaics, real_recolours=a.real_recolours, cache=a.cache,
                                  max_minutes=a.max_minutes, max_windows=a.max_windows)
            trainer = TrainerV2(opts, load_config(a.config, v2=True), Windows(roots, "train"), Windows(roots, "val"),
                                progress=not a.quiet)
            result = trainer.fit()
            print(json.dumps(result))
            return 0 if result["complete"] else 3
        lr = a.lr or {"vae": 1e-3, "unet": 3e-4, "freq": 2e-4}[a.stage]
        opts = TrainOptions(stage=a.stage, out=a.out, steps=a.steps, batch=a.batch, lr=lr, val_every=a.val_every,
                            seed=a.seed, max_windows=a.max_windows, init=a.init, max_minutes=a.max_minutes)
        stats = load_stats(roots[0])
        trainer = Trainer(opts, load_config(a.config), Windows(roots, "train"), Windows(roots, "val"),
                          stats["scales"], progress=not a.quiet)
        result = trainer.fit()
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0 if result["complete"] else 3


if __name__ == "__main__":
    sys.exit(main())
