"""Train the neural renderer on (I_0, I_t, flow) pairs of one or more datasets (``RenderPairs``).

    .venv/bin/python scripts/train_renderer.py --data /work/datasets/gid_v1 --out runs/renderer --minutes 55
    .venv/bin/python scripts/train_renderer.py --data A --data B ...        # pairs of several datasets together
    .venv/bin/python scripts/train_renderer.py ... --kind baseline          # the ablation's baseline splat
    .venv/bin/python scripts/train_renderer.py ... --ship backend/assets/renderer_default.pt

Resumable: run the same command again after an interruption (state in <out>/last.pt, saved every --save-every
seconds). Progress lines show step, loss parts, learning rate, speed and ETA. The finished run writes
<out>/renderer.pt (EMA weights + config + a data summary); --ship also copies it to the given path.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time

import torch

from backend.render.checkpoint import model_id as checkpoint_id
from backend.render.config import RendererConfig
from backend.render.losses import LossWeights
from backend.render.training import TrainConfig, train

log = logging.getLogger("train_renderer")


class Concat(torch.utils.data.Dataset):
    """Several RenderPairs as one; ``groups()`` keeps every item's group."""

    def __init__(self, parts):
        self.parts = list(parts)
        self.offsets = []
        total = 0
        for p in self.parts:
            self.offsets.append(total)
            total += len(p)
        self.total = total

    def __len__(self):
        return self.total

    def groups(self):
        return [g for p in self.parts for g in p.groups()]

    def __getitem__(self, i):
        for p, off in zip(reversed(self.parts), reversed(self.offsets)):
            if i >= off:
                return p[i - off]
        raise IndexError(i)


class FinishedShards(torch.utils.data.Dataset):
    """Render pairs of the shards a dataset build has finished so far (no card.json yet), minus held-out groups.

    For training while a build of real clips is still running. Its final split is not known yet, so every group
    that could end up held out is left out: the ``hold_out`` real clips of the build with the smallest split hash
    (``backend.data.dataset.group_hash``; the build holds out the first 15% of its kept clips in that order).
    """

    def __init__(self, root: str, hold_out: int = 6, seed: int = 0):
        import json

        from backend.data.build import clip_name
        from backend.data.dataset import group_hash
        from backend.data.shards import open_arrays, read_meta

        with open(os.path.join(root, "build.json")) as fh:
            videos = json.load(fh)["videos"]
        groups = sorted((f"real:{clip_name(v)}" for v in videos), key=lambda g: group_hash(g, seed))
        self.held_out = groups[:hold_out]
        self.rows, self.arrays = [], {}
        base = os.path.join(root, "render")
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            if name.endswith(".tmp"):
                continue
            meta = read_meta(root, "render", name)
            for row, sample in enumerate(meta["samples"]):
                if sample["group"] not in self.held_out:
                    self.rows.append((name, row, sample))
        self._open = lambda name: open_arrays(root, "render", name)

    def __len__(self):
        return len(self.rows)

    def groups(self):
        return [s["group"] for _, _, s in self.rows]

    def __getitem__(self, i):
        import numpy as np

        name, row, meta = self.rows[i]
        if name not in self.arrays:
            self.arrays[name] = self._open(name)
        arr = self.arrays[name]
        return {"i0": torch.from_numpy(np.array(arr["i0"][row], np.float32).transpose(2, 0, 1) / 255.0),
                "it": torch.from_numpy(np.array(arr["it"][row], np.float32).transpose(2, 0, 1) / 255.0),
                "flow": torch.from_numpy(np.array(arr["flow"][row], np.float32)),
                "weight": torch.from_numpy(np.array(arr["weight"][row], np.float32)),
                "t": int(meta["t"]), "group": meta["group"], "source": meta["source"]}


def _format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", default=[], help="dataset root with card.json (repeatable)")
    p.add_argument("--data-all", action="append", default=[],
                   help="dataset root whose every pair (train and val split) is used for training, e.g. a build "
                        "of training clips only (repeatable)")
    p.add_argument("--pairs", action="append", default=[],
                   help=".npz of real render pairs from scripts/real_render_pairs.py, all used for training")
    p.add_argument("--min-flow-fidelity", type=float,
                   help="train only on --pairs whose flow explains the frames to at least this PSNR in dB (e.g. 22; "
                        "pairs with wrong flow teach the renderer to hedge, and in use its flow is exact)")
    p.add_argument("--val-pairs", action="append", default=[],
                   help=".npz of pairs from held-out clips (scripts/real_render_pairs.py) for the validation PSNR "
                        "(repeatable; with --data, its val split counts too)")
    p.add_argument("--partial", action="append", default=[],
                   help="root of a real-clip build still running: train on its finished shards, leaving out every "
                        "clip that may end up held out (repeatable)")
    p.add_argument("--partial-hold-out", type=int, default=6,
                   help="clips of a --partial build left out as possible held-out clips (default 6; 0 for a build "
                        "of training clips only)")
    p.add_argument("--out", default="runs/renderer", help="run folder (checkpoints; resumed when it has last.pt)")
    p.add_argument("--kind", choices=("pyramid", "baseline"), default="pyramid")
    p.add_argument("--channels", default="16,32,48", help="encoder channels per level (default 16,32,48)")
    p.add_argument("--source-inputs", action="store_true",
                   help="pyramid: the decoder also sees the unwarped photo, the photo at p - F(p) and the flow "
                        "(can start from a checkpoint without them: --init)")
    p.add_argument("--decoder-blocks", type=int, default=1,
                   help="pyramid: residual blocks per decoder level (default 1; can start from a checkpoint with "
                        "fewer: --init, the new ones start as the identity)")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--minutes", type=float, default=0.0, help="stop and save after this wall time (0 = no limit)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--real-fraction", type=float, default=0.5, help="share of real-clip pairs per batch")
    p.add_argument("--flow-noise", type=float, default=0.3,
                   help="synthetic pairs: smooth flow error as a fraction of the local RMS motion (default 0.3)")
    p.add_argument("--save-every", type=float, default=120.0, help="seconds between resumable checkpoints")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--snapshots", default="", help="steps at which to keep a copy of the EMA weights, e.g. 400,800")
    p.add_argument("--loss", default="",
                   help="loss weights, e.g. mse=1,l1=0.2 (names l1, ssim, gradient, mse; default l1=1,ssim=0.5,"
                        "gradient=0.5,mse=0; mse is x100)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the machine is shared)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", help="start from the weights of a finished renderer checkpoint with the same config "
                                   "(fine-tuning, e.g. backend/assets/renderer_default.pt); ignored on resume")
    p.add_argument("--ship", help="copy the finished renderer.pt here (e.g. backend/assets/renderer_default.pt)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    from backend.data.dataset import DatasetError, RenderPairs, load_card
    from backend.device import resolve_device
    from backend.render.pairs import NpzPairs

    try:
        if not args.data and not args.partial and not args.data_all and not args.pairs:
            raise DatasetError("give at least one --data, --data-all, --partial or --pairs dataset")
        train_parts = ([RenderPairs(root, "train") for root in args.data]
                       + [FinishedShards(r, args.partial_hold_out) for r in args.partial]
                       + [RenderPairs(root, "all") for root in args.data_all]
                       + [NpzPairs(path, args.min_flow_fidelity) for path in args.pairs])
        val_parts = [RenderPairs(root, "val") for root in args.data] + [NpzPairs(path) for path in args.val_pairs]
        cards = [load_card(root) for root in args.data]
        device = resolve_device(args.device)
        loss_weights = LossWeights.parse(args.loss)
        if args.init and not os.path.isfile(args.init):
            raise ValueError(f"--init {args.init}: no such checkpoint file")
    except (DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        model_config = RendererConfig(kind=args.kind, channels=tuple(int(c) for c in args.channels.split(",")),
                                      source_inputs=args.source_inputs, decoder_blocks=args.decoder_blocks)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, crop=args.crop, lr=args.lr, ema=args.ema,
                      real_fraction=args.real_fraction, flow_noise=args.flow_noise, max_minutes=args.minutes,
                      checkpoint_seconds=args.save_every, log_every=args.log_every, seed=args.seed,
                      snapshot_steps=tuple(int(v) for v in args.snapshots.split(",") if v), loss=loss_weights)
    parts = iter(train_parts)
    described = [{"root": os.path.abspath(r), "split": "train", "card_format": c.get("format"),
                  "train_pairs": len(next(parts)), "val_pairs": len(v)} for r, c, v in zip(args.data, cards, val_parts)]
    described += [{"root": os.path.abspath(r), "partial": True, "train_pairs": len(t), "held_out": t.held_out}
                  for r, t in zip(args.partial, parts)]
    described += [{"root": os.path.abspath(r), "split": "all", "train_pairs": len(next(parts))} for r in args.data_all]
    described += [{"pairs": os.path.abspath(path), "train_pairs": len(part), "dropped_low_flow_fidelity": part.dropped,
                   "min_flow_fidelity": args.min_flow_fidelity} for path, part in zip(args.pairs, parts)]
    described += [{"pairs": os.path.abspath(path), "val_pairs": len(v)}
                  for path, v in zip(args.val_pairs, val_parts[len(args.data):])]
    meta = {"datasets": described,
            "torch": str(torch.__version__)}
    if args.init:
        meta["init"] = {"path": os.path.abspath(args.init), "model_id": checkpoint_id(args.init)}
    t0 = time.time()

    def progress(info):
        print(f"step {info['step']:6d}/{info['steps']}  loss {info['loss']:.4f} (l1 {info['l1']:.4f} "
              f"ssim {info['ssim']:.4f} grad {info['gradient']:.4f} mse {info['mse']:.5f})  lr {info['lr']:.2e}  "
              f"{info['steps_per_s']:.2f} step/s  elapsed {_format_eta(time.time() - t0)}  "
              f"ETA {_format_eta(info['eta_s'])}", flush=True)

    try:
        summary = train(model_config, cfg, Concat(train_parts), args.out, val_set=Concat(val_parts), device=device,
                        meta=meta, progress=progress, init=args.init)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"done: {summary}", flush=True)
    final = os.path.join(args.out, "renderer.pt")
    if args.ship:
        shutil.copyfile(final, args.ship)
        print(f"shipped {final} -> {args.ship} ({os.path.getsize(args.ship) / 2**20:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
