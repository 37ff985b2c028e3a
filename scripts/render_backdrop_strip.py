"""Render the README's frame strip: a photo plane baked with a made-up sway volume, four frames of one loop in
Cycles (top row) and where the pixels changed against the first frame (bottom row, brightened).

    .venv/bin/python scripts/render_backdrop_strip.py \
        --photo /work/shared/data/photos/mate_ladybird_forgetmenot.jpg -o docs/img/backdrop_strip.png

The bottom of the photo is pinned with an anchor vertex group (weight ramp 0 -> 1 from bottom to top), the way an
artist keeps the ground still while the stems sway. Needs bpy and Pillow (both in the project's .venv).
"""
from __future__ import annotations

import sys
import tempfile

import blender_scene  # first: bpy's config and cache go to build/bench-home
import numpy as np


def main(argv=None) -> int:
    args = blender_scene.strip_arguments(__doc__, "backdrop_strip.png", width=240).parse_args(argv)

    from PIL import Image

    from addon import shapekeys

    scene = blender_scene.start_blender(fps=30)
    obj, h = blender_scene.photo_plane(args.photo, args.width)
    uv = shapekeys.vertex_uvs(obj.data)
    with tempfile.TemporaryDirectory() as tmp:
        blender_scene.load_sway_volume(tmp)
        # ground (bottom 10%) pinned, full sway above 60%
        blender_scene.anchor_weights(obj, np.clip((uv[:, 1] - 0.1) / 0.5, 0.0, 1.0))
        # crop a little so the swaying border stays in frame
        blender_scene.setup_cycles(scene, args.width, h, args.samples, ortho_scale=obj.dimensions.x * 0.96)
        frames = [scene.frame_start + i * (scene.frame_end - scene.frame_start + 1) // 4 for i in range(4)]
        shots = blender_scene.render_frames(scene, frames, tmp)
    blender_scene.save_strip(Image.fromarray(blender_scene.strip_with_differences(shots, gain=4)), args.output)
    print(f"frames {frames} -> {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
