"""Render docs/img/brush_strip.png: the motion brush and a wind arrow on a photo plane, against the automatic result.

    .venv/bin/python scripts/render_brush_strip.py                       # shipped motion model, shipped settings
    .venv/bin/python scripts/render_brush_strip.py --model runs/motion/freq/model.pt -o /tmp/brush_strip.png

Panels: the photo; the painted IDyn_moves group as the add-on rasterises it through the plane's UVs (red = moves)
with the wind arrow; two Cycles frames of the loop predicted with that hint and turned by the arrow; and how that
frame differs from the same frame of the automatic prediction (no hint, no arrow; brightened). Both predictions
are scaled by one factor (printed, and on the strip) so the motion shows at strip size: ``--target-rms 0`` keeps
them as predicted. The motion model
runs in this process (``backend.motion.predictor``, the code behind ``image-dynamics predict --moves``), so the
strip follows whatever checkpoint ships: re-run this script when a new motion model lands. Needs bpy, torch and
Pillow (all in the project's .venv); about a minute on 2 CPU cores.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import tempfile
import time

import blender_scene  # first (python puts scripts/ on sys.path): bpy's config and cache in build/
import numpy as np

PHOTO = "/work/shared/data/photos/lomiri_aitzgorri_meadow_trees.jpg"
FRAMES = (38, 113)  # a quarter and three quarters into the 150-frame loop: the slow band at its two extremes
WIND = dict(u=0.3, v=0.2, angle=0.0, length=0.6)  # "the wind blows from the left", over the grass and trees


TREE_LINE = ((0.0, 0.80), (0.5, 0.53), (0.64, 0.36), (0.69, 0.62), (1.0, 0.66))  # (u, top of the trees' v)


def painted_weight(uv: np.ndarray) -> np.ndarray:
    """What the artist paints on this photo: the meadow and the autumn trees move, the mountain and the sky stay
    still (weight 1 below the tree line, fading to 0 over 3% of the height above it)."""
    top = np.interp(uv[:, 0], *zip(*TREE_LINE))
    return np.clip((top - uv[:, 1]) / 0.03, 0.0, 1.0)


def main(argv=None) -> int:
    parser = blender_scene.strip_arguments(__doc__, "brush_strip.png", width=256)
    parser.set_defaults(photo=PHOTO)
    parser.add_argument("--model", default=None, help="motion checkpoint (default: the shipped one)")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps of both predictions")
    parser.add_argument("--seed", type=int, default=0, help="seed of both predictions")
    parser.add_argument("--target-rms", type=float, default=2.0,
                        help="scale both predictions by one factor so that the brush's loop moves this many map "
                             "pixels (RMS) where it is painted; 0 = as predicted (the shipped model's motion is "
                             "gentle: without scaling the frames look like the photo)")
    parser.add_argument("--gain", type=float, default=8.0, help="brightening of the difference panel")
    args = parser.parse_args(argv)

    import bpy
    from PIL import Image, ImageDraw

    from addon import arrows, brush, plane, shapekeys, wind
    from addon.core import spectral
    from backend.motion.predictor import PredictParams, load_predictor

    t_start = time.perf_counter()
    scene = blender_scene.start_blender(fps=30)
    w = args.width
    obj, h = blender_scene.photo_plane(args.photo, w)
    photo = np.asarray(Image.open(args.photo).convert("RGB"))
    # the brush, painted as weights on the plane's vertices, and the hint the add-on would send
    group = brush.ensure_group(obj)
    weights = np.round(painted_weight(shapekeys.vertex_uvs(obj.data)), 2)
    for value in np.unique(weights):
        group.add(np.flatnonzero(weights == value).tolist(), float(value), "REPLACE")
    _png, mask, report, _painted = brush.hint_image(obj, tuple(plane.find_image(obj).size))
    for warning in report.warnings():
        print("warning:", warning)
    predictor = load_predictor(args.model, device="cpu")
    params = PredictParams(steps=args.steps, seed=args.seed)
    print(f"predicting with {predictor.model_id}: automatic, then with the brush")
    volumes = {"auto": predictor.predict(photo, params), "brush": predictor.predict(photo, params, moves=mask)}
    hint_map = spectral.resize_bilinear(mask[None], volumes["brush"].height, volumes["brush"].width)[0]
    rms = {name: np.sqrt((v.amplitude()[1:] ** 2).sum(axis=0) / 2) for name, v in volumes.items()}  # per pixel
    for name, r in rms.items():
        print(f"{name}: RMS motion where painted {r[hint_map > 0.5].mean():.4f} px, elsewhere "
              f"{r[hint_map <= 0.5].mean():.4f} px (map {volumes[name].width}x{volumes[name].height})")
    scale = args.target_rms / rms["brush"][hint_map > 0.5].mean() if args.target_rms > 0 else 1.0
    if scale != 1.0:
        print(f"both predictions scaled x{scale:.1f} for the strip")
        volumes = {name: dataclasses.replace(v, coeffs=v.coeffs * np.float32(scale)) for name, v in volumes.items()}

    cam_data = blender_scene.setup_cycles(scene, w, h, args.samples, ortho_scale=obj.dimensions.x)
    shots = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("auto", "brush"):
            path = blender_scene.save_volume(tmp, volumes[name], f"{name}.npz")
            bpy.context.view_layer.objects.active = obj
            bpy.ops.imagedyn.load_volume(filepath=path)
            if name == "brush":
                bpy.ops.imagedyn.wind_add(**WIND)
            shots[name] = blender_scene.render_frames(scene, FRAMES, f"{tmp}/{name}")
        (arrow,) = wind.plane_winds(obj)
        base, tip = arrows.arrow_in_plane(arrow, obj)  # the plane sits at the origin: local = world

    def to_pixel(point):  # plane at the origin facing the orthographic camera: object units -> render pixels
        scale = cam_data.ortho_scale
        return ((point[0] / scale + 0.5) * w, (0.5 - point[1] / (scale * h / w)) * h)

    small = np.asarray(Image.fromarray(photo).resize((w, h), Image.LANCZOS), dtype=np.float32)
    hint_small = np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR),
                            dtype=np.float32)[..., None] / 255.0
    painted = 0.45 * small + 0.55 * hint_small * np.array([230.0, 40.0, 30.0]) + 0.55 * (1 - hint_small) * 0.5 * small
    diff = np.clip(np.abs(shots["brush"][1] - shots["auto"][1]).mean(axis=2, keepdims=True) * args.gain, 0, 255)
    panels = [small, painted, shots["brush"][0], shots["brush"][1], diff.repeat(3, axis=2)]
    strip = Image.fromarray(np.concatenate(panels, axis=1).astype(np.uint8))
    draw = ImageDraw.Draw(strip)
    (x0, y0), (x1, y1) = to_pixel(base), to_pixel(tip)
    for offset in (w, 2 * w):  # the arrow on the mask and on the first frame
        draw.line([(x0 + offset, y0), (x1 + offset, y1)], fill=(255, 255, 255), width=2)
        ux, uy = (x1 - x0) / math.hypot(x1 - x0, y1 - y0), (y1 - y0) / math.hypot(x1 - x0, y1 - y0)
        draw.polygon([(x1 + offset, y1), (x1 + offset - 8 * ux + 5 * uy, y1 - 8 * uy - 5 * ux),
                      (x1 + offset - 8 * ux - 5 * uy, y1 - 8 * uy + 5 * ux)], fill=(255, 255, 255))
    motion = f" (motion x{scale:.0f})" if scale != 1.0 else ""
    labels = ("photo", "painted IDyn_moves + wind arrow", f"frame {FRAMES[0]}{motion}", f"frame {FRAMES[1]}",
              f"vs automatic, frame {FRAMES[1]} (x{args.gain:g})")
    for i, label in enumerate(labels):
        box = draw.textbbox((i * w + 4, 2), label)
        draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=(0, 0, 0))
        draw.text((i * w + 4, 2), label, fill=(255, 255, 255))
    blender_scene.save_strip(strip, args.output)
    print(f"-> {args.output} ({args.output.stat().st_size / 1024:.0f} KiB) in {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
