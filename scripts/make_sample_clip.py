"""Write the project's default demo clip, ``backend/assets/sample_meadow.mp4``: a procedural meadow with flowers
(256x160, 150 frames at 30 fps, H.264) rendered by ``backend.data.synthetic``.

    .venv/bin/python scripts/make_sample_clip.py [-o backend/assets/sample_meadow.mp4] [--seed 0] [--crf 16]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.data.synthetic import SceneConfig, render_scene, write_video  # noqa: E402

MAX_BYTES = 1_000_000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(ROOT / "backend" / "assets" / "sample_meadow.mp4"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--crf", type=int, default=16, help="x264 quality (lower = better, larger file)")
    ap.add_argument("--frames", type=int, default=150)
    args = ap.parse_args(argv)

    config = SceneConfig(kind="meadow", seed=args.seed, num_frames=args.frames, num_flowers=7)
    t0 = time.perf_counter()

    def progress(done, total):
        if done == total or done % 25 == 0:
            print(f"rendering frame {done}/{total}", flush=True)

    clip = render_scene(config, progress=progress)
    t_render = time.perf_counter() - t0
    write_video(clip, args.output, crf=args.crf)
    size = os.path.getsize(args.output)
    print(f"wrote {args.output}: {size} bytes ({size / 1e6:.2f} MB), {config.width}x{config.height}, "
          f"{config.num_frames} frames at {config.fps:g} fps; render {t_render:.2f} s")
    if size >= MAX_BYTES:
        print(f"warning: the demo clip is over {MAX_BYTES} bytes; raise --crf to shrink it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
