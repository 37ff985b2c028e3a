"""Speed and memory of motion extraction and of the warp preview at 256x160 (K=16, T=150), on this machine.

    .venv/bin/python scripts/bench_extract.py [--repeats 3] [--video CLIP]

Prints frames/s of flow + FFT per method, frames/s of the softmax-splatting preview, and peak memory.
Not a test: these VMs vary 2-8x between runs; compare ratios, repeat timings.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

import numpy as np
import torch

from addon.core.spectral import SpectralVolume
from backend.flow import FlowConfig, compute_trajectories
from backend.preview import warp_frames
from backend.sample import sample_clip
from backend.video import read_clip


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", help="clip (default: the procedural sample clip)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--frames", type=int, default=150)
    args = p.parse_args(argv)
    args.video = args.video or sample_clip()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}")
    clip = read_clip(args.video, num_frames=args.frames, size=(256, 160))
    frames = clip.frames
    t = frames.shape[0]
    print(f"clip: {os.path.basename(args.video)}, {t} frames at 256x160")
    volume = None
    for method in ("dis", "farneback"):
        seconds, traj = best_of(lambda: compute_trajectories(frames, FlowConfig(method=method)), args.repeats)
        fft_s, vol = best_of(lambda: SpectralVolume.from_trajectories(traj, k=16, fps=clip.fps), args.repeats)
        print(f"extract [{method:9s}]: flow {(t - 1) / seconds:7.1f} frames/s ({seconds:.2f} s), FFT {fft_s * 1e3:6.1f} "
              f"ms, total {t / (seconds + fft_s):7.1f} frames/s")
        volume = volume if volume is not None else vol
    n = volume.num_frames
    seconds, _ = best_of(lambda: warp_frames(frames[0], volume, np.arange(n)), args.repeats)
    print(f"warp preview: {n / seconds:7.1f} frames/s ({seconds:.2f} s for {n} frames, softmax splatting, CPU)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
