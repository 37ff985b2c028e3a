"""Shared set-up of the headless-Blender scripts (frame strips and benchmarks): Blender with the add-on registered, a
photo plane, the made-up sway volume, an anchor weight ramp, an orthographic Cycles camera, rendered frames and the
strip image.

``scripts/`` is not a package: a script imports this module from its own folder (``python scripts/x.py`` puts that
folder on ``sys.path``); ``addon`` and ``backend`` come from the installed package. Importing this module first
keeps bpy's config and cache in build/bench-home (bpy reads these variables when it is imported). bpy itself is
imported only inside the functions, so scripts that can run without Blender still can.
"""
from __future__ import annotations

import argparse
import os
import pathlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO_PHOTO = "/work/shared/data/photos/mate_ladybird_forgetmenot.jpg"
for _var, _sub in (("BLENDER_USER_RESOURCES", "blender"), ("XDG_CONFIG_HOME", "config"),
                   ("XDG_CACHE_HOME", "cache")):
    os.environ.setdefault(_var, str(ROOT / "build" / "bench-home" / _sub))


def strip_arguments(doc: str, output_name: str, width: int) -> argparse.ArgumentParser:
    """Command line of a frame-strip script: --photo, -o/--output (default docs/img/``output_name``), --width (of
    one frame, default ``width``) and --samples."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", default=DEMO_PHOTO)
    parser.add_argument("-o", "--output", type=pathlib.Path, default=ROOT / "docs" / "img" / output_name)
    parser.add_argument("--width", type=int, default=width, help="width of one frame in the strip (pixels)")
    parser.add_argument("--samples", type=int, default=8, help="Cycles samples per frame")
    return parser


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


def start_blender(fps: float = 30.0):
    """Factory settings, an empty scene, the add-on registered and the scene at ``fps``. Returns the scene."""
    import bpy

    import addon

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon.register()
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = int(round(fps)), round(fps) / fps
    return scene


def photo_plane(photo: str, frame_width: int, columns: int = 128):
    """Create Photo Plane from ``photo``. Returns (plane, frame height): the height of a ``frame_width``-wide render
    with the photo's aspect ratio (rounded to even)."""
    import bpy

    from addon import plane

    image = plane.load_image(photo)
    frame_height = int(round(frame_width * image.size[1] / image.size[0] / 2)) * 2
    bpy.ops.imagedyn.create_plane(filepath=photo, columns=columns)
    return bpy.context.active_object, frame_height


def blank_plane(folder: str, width: int, height: int, columns: int):
    """A photo plane (``columns`` vertices across) on a blank ``width`` x ``height`` PNG saved in ``folder``."""
    import bpy

    from addon import plane

    image = bpy.data.images.new("bench", width, height)
    image.filepath_raw = os.path.join(folder, "bench.png")
    image.file_format = "PNG"
    image.save()
    return plane.create_plane(bpy.context, image, columns)


def save_volume(folder: str, volume, name: str) -> str:
    """Save ``volume`` as ``folder``/``name`` (.npz) and return the path."""
    from addon.core import spectral

    path = os.path.join(folder, name)
    spectral.save_npz(path, volume)
    return path


def load_sway_volume(folder: str) -> str:
    """Save :func:`sway_volume` in ``folder`` and load it on the active plane with Load Spectral Volume (which
    bakes it). Returns the .npz path."""
    import bpy

    path = save_volume(folder, sway_volume(), "sway.npz")
    bpy.ops.imagedyn.load_volume(filepath=path)
    return path


def anchor_weights(obj, weights: np.ndarray) -> None:
    """Add Anchor Group on the active plane ``obj`` and give vertex i the weight ``weights[i]`` (rounded to 0.01)."""
    import bpy

    from addon.ops import ANCHOR_GROUP

    bpy.ops.imagedyn.add_anchor()
    group = obj.vertex_groups[ANCHOR_GROUP]
    rounded = np.round(weights, 2)
    for weight in np.unique(rounded):
        group.add(np.flatnonzero(np.isclose(rounded, weight)).tolist(), float(weight), "REPLACE")


def setup_cycles(scene, width: int, height: int, samples: int, ortho_scale: float):
    """Cycles on the CPU (``samples`` per pixel, no denoising) rendering ``width`` x ``height`` PNGs through an
    orthographic camera ``ortho_scale`` units wide, 5 units above the origin looking down. Returns the camera data."""
    import bpy

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    cam_data = bpy.data.cameras.new("cam")
    cam_data.type = "ORTHO"
    cam_data.ortho_scale = ortho_scale
    cam = bpy.data.objects.new("cam", cam_data)
    cam.location = (0.0, 0.0, 5.0)
    scene.collection.objects.link(cam)
    scene.camera = cam
    return cam_data


def render_frames(scene, frames, folder: str) -> list:
    """Render each of ``frames`` as a PNG in ``folder``; returns their RGB pixels, float32 (H, W, 3), row 0 = top."""
    import bpy
    from PIL import Image

    shots = []
    for frame in frames:
        scene.frame_set(frame)
        scene.render.filepath = os.path.join(folder, f"f{frame:04d}.png")
        bpy.ops.render.render(write_still=True)
        shots.append(np.asarray(Image.open(scene.render.filepath).convert("RGB"), dtype=np.float32))
    return shots


def strip_with_differences(shots: list, gain: float) -> np.ndarray:
    """uint8 strip: the frames side by side on top; below each, where its pixels differ from the first frame's
    (mean absolute RGB difference times ``gain``, grey)."""
    diffs = [np.clip(np.abs(s - shots[0]).mean(axis=2, keepdims=True) * gain, 0, 255).repeat(3, axis=2)
             for s in shots]
    return np.concatenate([np.concatenate(shots, axis=1), np.concatenate(diffs, axis=1)], axis=0).astype(np.uint8)


def save_strip(image, path: pathlib.Path) -> None:
    """Save a PIL strip image as a 192-colour PNG (small enough for the README)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=192, dither=Image.Dither.NONE).save(path, optimize=True)
