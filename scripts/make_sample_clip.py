"""Write the project's sample clip, a procedural meadow with flowers (256x160, 150 frames at 30 fps, H.264)
rendered by the scene generator ``backend.data.scenes`` (``backend/sample.py``). ``image-dynamics extract``
without a VIDEO renders it into the user's cache by itself; this script writes it (or a variant) anywhere.

    .venv/bin/python scripts/make_sample_clip.py -o sample_meadow.mp4 [--seed 14] [--crf 16] [--frames 150]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from backend.sample import CRF, SCENE, write_sample_clip

MAX_BYTES = 1_000_000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", required=True, help="mp4 to write")
    ap.add_argument("--seed", type=int, default=SCENE["seed"])
    ap.add_argument("--crf", type=int, default=CRF, help="x264 quality (lower = better, larger file)")
    ap.add_argument("--frames", type=int, default=SCENE["num_frames"])
    args = ap.parse_args(argv)

    def progress(done, total):
        if done == total or done % 25 == 0:
            print(f"rendering frame {done}/{total}", flush=True)

    t0 = time.perf_counter()
    write_sample_clip(args.output, {"seed": args.seed, "num_frames": args.frames}, crf=args.crf, progress=progress)
    size = os.path.getsize(args.output)
    print(f"wrote {args.output}: {size} bytes ({size / 1e6:.2f} MB), {args.frames} frames; "
          f"{time.perf_counter() - t0:.2f} s")
    if size >= MAX_BYTES:
        print(f"warning: the sample clip is over {MAX_BYTES} bytes; raise --crf to shrink it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
