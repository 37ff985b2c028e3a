"""Benchmark neural frames: frames per second of the renderer at 256x160 and 512x288 (default 2 CPU threads).

Per size: the photo is encoded once, then frames of a seamless loop are rendered in batches (flows from the
spectral volume included); "render" times the network alone, "to PNG" adds writing 8-bit PNG files. Also the
forward-warp preview (no network) for comparison. Prints min and median over repeats; VMs vary 2-8x over time,
so compare ratios and repeat. Target: >= 8 frames/s at 256x160 on 2 cores.

    .venv/bin/python scripts/bench_render.py [--threads 2] [--frames 32] [--repeat 3] [--checkpoint PATH]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import torch

from backend.preview import demo_inputs, warp_frames
from backend.render import checkpoint
from backend.render.frames import LoopSettings
from backend.render.render import RenderSettings, iter_frames, render_sequence


def _time(fn, repeat: int) -> list:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=32, help="frames per timed run")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--checkpoint", help="renderer checkpoint (default: the shipped one)")
    p.add_argument("--sizes", default="256x160,512x288")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, meta = checkpoint.load(args.checkpoint)
    params = sum(p.numel() for p in model.parameters())
    print(f"renderer {meta['model_id']} ({model.config.kind}, {params:,} params), torch {torch.__version__}, "
          f"{args.threads} threads, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print("| size | render fps (min time) | render fps (median) | to PNG fps (median) | forward-warp preview fps |")
    print("|---|---|---|---|---|")
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        photo, volume = demo_inputs(width=w, height=h, amplitude=4.0 * w / 256)
        frames = tuple(range(args.frames))
        q = LoopSettings.for_volume(volume, volume.fps).coordinates(volume.k, frames)

        def render():
            for _ in iter_frames(model, photo, volume, q):
                pass

        def to_png():
            with tempfile.TemporaryDirectory() as tmp:
                render_sequence(model, photo, volume, q, RenderSettings(frames=frames), tmp)

        render()  # warm-up
        t_render = _time(render, args.repeat)
        t_png = _time(to_png, args.repeat)
        t_prev = _time(lambda: warp_frames(photo, volume, frames), args.repeat)
        n = len(frames)
        print(f"| {w}x{h} | {n / min(t_render):.1f} | {n / statistics.median(t_render):.1f} | "
              f"{n / statistics.median(t_png):.1f} | {n / statistics.median(t_prev):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
