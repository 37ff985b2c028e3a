#!/usr/bin/env python
"""Speed and memory of one prediction (photo -> spectral volume) with the default settings on this machine.

    python scripts/bench_predict.py [--model PATH|tiny] [--runs 3] [--steps 25] [--loop 0] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np
import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="checkpoint (default: the shipped one), or 'tiny'")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=1.5)
    p.add_argument("--loop", type=float, default=0.0)
    p.add_argument("--sampler", default="ddim")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from backend.motion.commands import SAMPLE_PHOTO, read_photo
    from backend.motion.predictor import PredictParams, load_predictor, tiny_predictor

    pred = tiny_predictor(device=a.device) if a.model == "tiny" else load_predictor(a.model, device=a.device)
    photo = read_photo(SAMPLE_PHOTO)
    params = PredictParams(steps=a.steps, guidance=a.guidance, loop=a.loop, sampler=a.sampler)
    cfg = pred.config
    n = pred.model.count_parameters()
    print(f"model {pred.model_id}: map {cfg.width}x{cfg.height}, latent {cfg.latent_size[0]}x{cfg.latent_size[1]}, "
          f"K={cfg.k}; parameters " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in n.items()))
    print(f"device {pred.device}, torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs; "
          f"{a.steps} {a.sampler} steps, guidance {a.guidance}, loop {a.loop}")
    times = []
    for r in range(a.runs):
        t0 = time.perf_counter()
        pred.predict(photo, params)
        times.append(time.perf_counter() - t0)
        print(f"  run {r + 1}: {times[-1]:.2f} s ({times[-1] / a.steps * 1000:.0f} ms/step)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"median {np.median(times):.2f} s per volume, best {min(times):.2f} s; peak RSS {rss:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
