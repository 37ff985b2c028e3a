"""Render docs/img/poke_strip.png: a photo plane with the ambient loop off, poked once (a drag to the left on the
ladybird's stem), five frames of the response in Cycles (top row; the first frame shows the poke arrow) and where
the pixels changed against the frame before the poke (bottom row, brightened).

    .venv/bin/python scripts/render_poke_strip.py \
        --photo /work/shared/data/photos/mate_ladybird_forgetmenot.jpg -o docs/img/poke_strip.png

The motion is the made-up sway volume of scripts/render_backdrop_strip.py (no trained model is needed to show how
pokes behave). Needs bpy and Pillow (both in the project's .venv); about 10 s on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
_HOME = ROOT / "build" / "bench-home"
for _var, _sub in (("BLENDER_USER_RESOURCES", "blender"), ("XDG_CONFIG_HOME", "config"),
                   ("XDG_CACHE_HOME", "cache")):
    os.environ.setdefault(_var, str(_HOME / _sub))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402

POKE_FRAME = 4
FRAMES = (3, 4, 25, 60, 110)  # the frame before the poke, its release, the swing back and the ringing-out
POKE_UV = (0.70, 0.47)  # on the stem just left of the ladybird (u right, v up)
DRAG = (-0.04, 0.0)  # photo widths / heights: a drag to the left


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", default="/work/shared/data/photos/mate_ladybird_forgetmenot.jpg")
    parser.add_argument("-o", "--output", type=pathlib.Path, default=ROOT / "docs" / "img" / "poke_strip.png")
    parser.add_argument("--width", type=int, default=200, help="width of one frame in the strip (pixels)")
    parser.add_argument("--samples", type=int, default=8, help="Cycles samples per frame")
    args = parser.parse_args(argv)

    import bpy
    from PIL import Image, ImageDraw

    import addon
    from addon import plane, pokes, shapekeys
    from addon.core import spectral
    from render_backdrop_strip import sway_volume

    t_start = time.perf_counter()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon.register()
    scene = bpy.context.scene
    scene.render.fps = 30
    image = plane.load_image(args.photo)
    w = args.width
    h = int(round(w * image.size[1] / image.size[0] / 2)) * 2
    bpy.ops.imagedyn.create_plane(filepath=args.photo, columns=128)
    obj = bpy.context.active_object
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "sway.npz")
        spectral.save_npz(npz, sway_volume())
        bpy.ops.imagedyn.load_volume(filepath=npz)
        scene.frame_start, scene.frame_end = 1, 120
        obj.imagedyn.loop_strength = 0.0  # still until poked
        bpy.ops.imagedyn.add_anchor()  # pin the photo's border (weight 0 -> 1 over 12% of the size) so it stays put
        uv = shapekeys.vertex_uvs(obj.data)
        ramp = np.clip(np.minimum(np.minimum(uv[:, 0], 1 - uv[:, 0]), np.minimum(uv[:, 1], 1 - uv[:, 1])) / 0.12,
                       0.0, 1.0)
        group = obj.vertex_groups["IDyn_anchor"]
        for weight in np.unique(np.round(ramp, 2)):
            group.add(np.flatnonzero(np.isclose(np.round(ramp, 2), weight)).tolist(), float(weight), "REPLACE")
        _uv, _rest, origin, eu, ev, _flat = shapekeys.plane_frame(obj)
        base = origin + POKE_UV[0] * eu + POKE_UV[1] * ev
        tip = base + DRAG[0] * eu + DRAG[1] * ev
        pokes.add_poke(obj, base, tip, POKE_FRAME)
        for warning in pokes.simulate(obj, scene):
            print("warning:", warning)

        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = args.samples
        scene.cycles.use_denoising = False
        scene.render.resolution_x, scene.render.resolution_y = w, h
        scene.render.resolution_percentage = 100
        scene.render.image_settings.file_format = "PNG"
        cam_data = bpy.data.cameras.new("cam")
        cam_data.type = "ORTHO"
        cam_data.ortho_scale = obj.dimensions.x * 0.96  # crop a little so the moving border stays in frame
        cam = bpy.data.objects.new("cam", cam_data)
        cam.location = (0.0, 0.0, 5.0)
        scene.collection.objects.link(cam)
        scene.camera = cam
        shots = []
        for frame in FRAMES:
            scene.frame_set(frame)
            scene.render.filepath = os.path.join(tmp, f"f{frame:04d}.png")
            bpy.ops.render.render(write_still=True)
            shots.append(np.asarray(Image.open(scene.render.filepath).convert("RGB"), dtype=np.float32))

    def to_pixel(point):  # plane at the origin facing the orthographic camera: object units -> render pixels
        scale = cam_data.ortho_scale
        return ((point[0] / scale + 0.5) * w, (0.5 - point[1] / (scale * h / w)) * h)

    diffs = [np.clip(np.abs(s - shots[0]).mean(axis=2, keepdims=True) * 3, 0, 255).repeat(3, axis=2)
             for s in shots]
    strip = Image.fromarray(np.concatenate([np.concatenate(shots, axis=1), np.concatenate(diffs, axis=1)],
                                           axis=0).astype(np.uint8))
    draw = ImageDraw.Draw(strip)
    (x0, y0), (x1, y1) = to_pixel(base), to_pixel(tip)
    draw.line([(x0, y0), (x1, y1)], fill=(255, 255, 255), width=2)
    ux, uy = (x1 - x0) / np.hypot(x1 - x0, y1 - y0), (y1 - y0) / np.hypot(x1 - x0, y1 - y0)
    draw.polygon([(x1, y1), (x1 - 6 * ux + 4 * uy, y1 - 6 * uy - 4 * ux), (x1 - 6 * ux - 4 * uy, y1 - 6 * uy + 4 * ux)],
                 fill=(255, 255, 255))
    for i, frame in enumerate(FRAMES):
        label = f"frame {frame}" + (" (drag)" if frame < POKE_FRAME else " release" if frame == POKE_FRAME else "")
        draw.text((i * w + 4, 2), label, fill=(255, 255, 255))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    strip.quantize(colors=192, dither=Image.Dither.NONE).save(args.output, optimize=True)
    print(f"frames {list(FRAMES)} (poke at {POKE_FRAME}) -> {args.output} "
          f"({args.output.stat().st_size / 1024:.0f} KiB) in {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
