"""Render the README's frame strip: a photo plane baked with a made-up sway volume, four frames of one loop in
Cycles (top row) and where the pixels changed against the first frame (bottom row, brightened).

    .venv/bin/python scripts/render_backdrop_strip.py \
        --photo /work/shared/data/photos/mate_ladybird_forgetmenot.jpg -o docs/img/backdrop_strip.png

The bottom of the photo is pinned with an anchor vertex group (weight ramp 0 -> 1 from bottom to top), the way an
artist keeps the ground still while the stems sway. Needs bpy and Pillow (both in the project's .venv).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
_HOME = ROOT / "build" / "bench-home"
for _var, _sub in (("BLENDER_USER_RESOURCES", "blender"), ("XDG_CONFIG_HOME", "config"),
                   ("XDG_CACHE_HOME", "cache")):
    os.environ.setdefault(_var, str(_HOME / _sub))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def sway_volume(k: int = 16, width: int = 256, height: int = 160, num_frames: int = 150, fps: float = 30.0,
                seed: int = 3):
    """A made-up wind sway: a few low bands, smooth random amplitude and phase fields, mostly horizontal."""
    from addon.core import spectral

    rng = np.random.default_rng(seed)
    coeffs = np.zeros((k, 4, height, width), dtype=np.float32)
    for band, strength in ((1, 2.5), (2, 1.6), (3, 0.8), (5, 0.4)):
        field = spectral.resize_bilinear(rng.normal(size=(2, 3, 5)), height, width)  # smooth complex field
        amp = strength * (0.6 + 0.4 * np.tanh(field[0]))
        phase = 1.5 * field[1]
        coeffs[band, 0] = amp * np.cos(phase)  # Re x
        coeffs[band, 1] = amp * np.sin(phase)  # Im x
        coeffs[band, 2] = 0.25 * amp * np.sin(phase)  # a little vertical bob
        coeffs[band, 3] = -0.25 * amp * np.cos(phase)
    return spectral.SpectralVolume(coeffs, fps=fps, num_frames=num_frames, provenance={"model": "made-up sway"})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", default="/work/shared/data/photos/mate_ladybird_forgetmenot.jpg")
    parser.add_argument("-o", "--output", type=pathlib.Path, default=ROOT / "docs" / "img" / "backdrop_strip.png")
    parser.add_argument("--width", type=int, default=240, help="width of one frame in the strip (pixels)")
    parser.add_argument("--samples", type=int, default=8, help="Cycles samples per frame")
    args = parser.parse_args(argv)

    import bpy
    from PIL import Image

    import addon
    from addon import plane, shapekeys
    from addon.core import spectral

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon.register()
    scene = bpy.context.scene
    scene.render.fps = 30
    image = plane.load_image(args.photo)
    w = args.width
    h = int(round(w * image.size[1] / image.size[0] / 2)) * 2
    bpy.ops.imagedyn.create_plane(filepath=args.photo, columns=128)
    obj = bpy.context.active_object
    uv = shapekeys.vertex_uvs(obj.data)
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "sway.npz")
        spectral.save_npz(npz, sway_volume())
        bpy.ops.imagedyn.load_volume(filepath=npz)
        bpy.ops.imagedyn.add_anchor()
        group = obj.vertex_groups["IDyn_anchor"]
        ramp = np.clip((uv[:, 1] - 0.1) / 0.5, 0.0, 1.0)  # ground (bottom 10%) pinned, full sway above 60%
        for weight in np.unique(np.round(ramp, 2)):
            group.add(np.flatnonzero(np.isclose(np.round(ramp, 2), weight)).tolist(), float(weight), "REPLACE")

        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = args.samples
        scene.cycles.use_denoising = False
        scene.render.resolution_x, scene.render.resolution_y = w, h
        scene.render.resolution_percentage = 100
        scene.render.image_settings.file_format = "PNG"
        cam_data = bpy.data.cameras.new("cam")
        cam_data.type = "ORTHO"
        cam_data.ortho_scale = obj.dimensions.x * 0.96  # crop a little so the swaying border stays in frame
        cam = bpy.data.objects.new("cam", cam_data)
        cam.location = (0.0, 0.0, 5.0)
        scene.collection.objects.link(cam)
        scene.camera = cam
        frames = [scene.frame_start + i * (scene.frame_end - scene.frame_start + 1) // 4 for i in range(4)]
        shots = []
        for frame in frames:
            scene.frame_set(frame)
            scene.render.filepath = os.path.join(tmp, f"f{frame:04d}.png")
            bpy.ops.render.render(write_still=True)
            shots.append(np.asarray(Image.open(scene.render.filepath).convert("RGB"), dtype=np.float32))
    diffs = [np.clip(np.abs(s - shots[0]).mean(axis=2, keepdims=True) * 4, 0, 255).repeat(3, axis=2)
             for s in shots]
    strip = np.concatenate([np.concatenate(shots, axis=1), np.concatenate(diffs, axis=1)], axis=0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(strip.astype(np.uint8)).quantize(colors=192, dither=Image.Dither.NONE).save(
        args.output, optimize=True)
    print(f"frames {frames} -> {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
