"""Render docs/img/poke_strip.png: a photo plane with the ambient loop off, poked once (a drag to the left on the
ladybird's stem), five frames of the response in Cycles (top row; the first frame shows the poke arrow) and where
the pixels changed against the frame before the poke (bottom row, brightened).

    .venv/bin/python scripts/render_poke_strip.py \
        --photo /work/shared/data/photos/mate_ladybird_forgetmenot.jpg -o docs/img/poke_strip.png

The motion is the backdrop strip's made-up sway volume (``sway_volume`` in scripts/blender_scene.py: no trained
model is needed to show how pokes behave). Needs bpy and Pillow (both in the project's .venv); about 10 s on 2 CPU
cores.
"""
from __future__ import annotations

import sys
import tempfile
import time

import blender_scene  # first: bpy's config and cache go to build/bench-home
import numpy as np

POKE_FRAME = 4
FRAMES = (3, 4, 25, 60, 110)  # the frame before the poke, its release, the swing back and the ringing-out
POKE_UV = (0.70, 0.47)  # on the stem just left of the ladybird (u right, v up)
DRAG = (-0.04, 0.0)  # photo widths / heights: a drag to the left


def main(argv=None) -> int:
    args = blender_scene.strip_arguments(__doc__, "poke_strip.png", width=200).parse_args(argv)

    from PIL import Image, ImageDraw

    from addon import pokes, shapekeys

    t_start = time.perf_counter()
    scene = blender_scene.start_blender(fps=30)
    w = args.width
    obj, h = blender_scene.photo_plane(args.photo, w)
    with tempfile.TemporaryDirectory() as tmp:
        blender_scene.load_sway_volume(tmp)
        scene.frame_start, scene.frame_end = 1, 120
        obj.imagedyn.loop_strength = 0.0  # still until poked
        # pin the photo's border (weight 0 -> 1 over 12% of the size) so it stays put
        uv = shapekeys.vertex_uvs(obj.data)
        blender_scene.anchor_weights(obj, np.clip(np.minimum(np.minimum(uv[:, 0], 1 - uv[:, 0]),
                                                             np.minimum(uv[:, 1], 1 - uv[:, 1])) / 0.12, 0.0, 1.0))
        _uv, _rest, origin, eu, ev, _flat = shapekeys.plane_frame(obj)
        base = origin + POKE_UV[0] * eu + POKE_UV[1] * ev
        tip = base + DRAG[0] * eu + DRAG[1] * ev
        pokes.add_poke(obj, base, tip, POKE_FRAME)
        for warning in pokes.simulate(obj, scene):
            print("warning:", warning)
        # crop a little so the moving border stays in frame
        cam_data = blender_scene.setup_cycles(scene, w, h, args.samples, ortho_scale=obj.dimensions.x * 0.96)
        shots = blender_scene.render_frames(scene, FRAMES, tmp)

    def to_pixel(point):  # plane at the origin facing the orthographic camera: object units -> render pixels
        scale = cam_data.ortho_scale
        return ((point[0] / scale + 0.5) * w, (0.5 - point[1] / (scale * h / w)) * h)

    strip = Image.fromarray(blender_scene.strip_with_differences(shots, gain=3))
    draw = ImageDraw.Draw(strip)
    (x0, y0), (x1, y1) = to_pixel(base), to_pixel(tip)
    draw.line([(x0, y0), (x1, y1)], fill=(255, 255, 255), width=2)
    ux, uy = (x1 - x0) / np.hypot(x1 - x0, y1 - y0), (y1 - y0) / np.hypot(x1 - x0, y1 - y0)
    draw.polygon([(x1, y1), (x1 - 6 * ux + 4 * uy, y1 - 6 * uy - 4 * ux), (x1 - 6 * ux - 4 * uy, y1 - 6 * uy + 4 * ux)],
                 fill=(255, 255, 255))
    for i, frame in enumerate(FRAMES):
        label = f"frame {frame}" + (" (drag)" if frame < POKE_FRAME else " release" if frame == POKE_FRAME else "")
        draw.text((i * w + 4, 2), label, fill=(255, 255, 255))
    blender_scene.save_strip(strip, args.output)
    print(f"frames {list(FRAMES)} (poke at {POKE_FRAME}) -> {args.output} "
          f"({args.output.stat().st_size / 1024:.0f} KiB) in {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
