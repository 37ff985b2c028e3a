"""Render pairs (I_0, I_t, flow 0->t, W) from real clips, from every window (no motion-model rejection rules).

The dataset keeps only windows that pass the motion model's rejection rules (no camera motion, enough motion);
for the renderer every window with its true (DIS) flow is a valid example, including a still candle room where
only the flame moves or a handheld shot. Same procedure as the dataset (``backend.data.windows``): clips
centre-cropped and resized to 256x160, windows of T = 150 frames every ``--stride`` frames, DIS trajectories from
the start frame, W = mean_t |F_t|^2, ``--pairs`` frames t per window drawn with the dataset's seed rule. Written to
one .npz (i0, it uint8 (N, H, W, 3); flow float16 (N, 2, H, W); weight float32 (N, H, W); t; group; clip; start).

    .venv/bin/python scripts/real_render_pairs.py -o /work/datasets/render_pairs_val.npz --stride 60 CLIP ...
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from addon.core.files import atomic_path
from backend.data.build import clip_name, hash_name, scene_seed
from backend.data.windows import read_frames, window_starts
from backend.flow import compute_trajectories


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clips", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--stride", type=int, default=60)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="256x160")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    out = {k: [] for k in ("i0", "it", "flow", "weight", "t", "group", "clip", "start")}
    jobs = []
    for path in args.clips:
        clip = read_frames(path, w, h)
        for s in window_starts(len(clip.frames), args.frames, args.stride):
            jobs.append((path, clip, s))
    t0 = time.perf_counter()
    for n, (path, clip, s) in enumerate(jobs):
        name = clip_name(path)
        frames = clip.frames[s:s + args.frames]
        traj = compute_trajectories(frames)  # (T, 2, H, W)
        weight = (traj.astype(np.float64) ** 2).sum(axis=1).mean(axis=0).astype(np.float32)
        rng = np.random.default_rng([scene_seed(args.seed, hash_name(name)), s])
        ts = np.sort(rng.choice(np.arange(1, args.frames), size=min(args.pairs, args.frames - 1), replace=False))
        for t in ts:
            out["i0"].append(frames[0])
            out["it"].append(frames[t])
            out["flow"].append(traj[t].astype(np.float16))
            out["weight"].append(weight)
            out["t"].append(int(t))
            out["group"].append(f"real:{name}")
            out["clip"].append(name)
            out["start"].append(int(s))
        rate = (n + 1) / (time.perf_counter() - t0)
        print(f"{n + 1}/{len(jobs)} windows ({name} @ {s}), ETA {(len(jobs) - n - 1) / rate:.0f} s", flush=True)
    arrays = {k: np.asarray(v) for k, v in out.items()}
    with atomic_path(args.output) as tmp:
        np.savez(tmp, **arrays)
    print(f"wrote {args.output}: {len(out['t'])} pairs from {len(jobs)} windows of {len(args.clips)} clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
