"""Helpers for the add-on's headless-Blender tests: bpy is imported once per process, the add-on is registered from
the source tree once, and every test starts from factory settings with an empty scene."""
from __future__ import annotations

import atexit
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_state = {"registered": False}


def import_bpy():
    """``import bpy`` (skips the test when this Python has no bpy)."""
    return pytest.importorskip("bpy")


def fresh_scene(fps: int = 30):
    """Factory settings, empty scene, the add-on registered, scene at ``fps`` frames per second."""
    bpy = import_bpy()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if not _state["registered"]:
        import addon

        addon.register()
        # Unregister before Blender's own teardown: Blender 4.2 crashes on exit (SIGSEGV) with the add-on's
        # classes still registered, which fails the test run after every test has passed.
        atexit.register(addon.unregister)
        _state["registered"] = True
    bpy.context.scene.render.fps = fps
    bpy.context.scene.render.fps_base = 1.0
    return bpy


def write_image(path, pixels: np.ndarray) -> str:
    """Save ``pixels`` (H, W, 3 or 4) floats in [0, 1], row 0 = top of the photo, as a PNG; returns the path."""
    bpy = import_bpy()
    h, w = pixels.shape[:2]
    rgba = np.ones((h, w, 4), dtype=np.float32)
    rgba[..., : pixels.shape[2]] = pixels
    image = bpy.data.images.new(pathlib.Path(path).stem, w, h)
    image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1]).reshape(-1))  # Blender stores rows bottom-up
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    return str(path)


def stripes(width: int, height: int, period: int = 8) -> np.ndarray:
    """Vertical black/white stripes (H, W, 3): horizontal motion changes pixels everywhere."""
    col = ((np.arange(width) // (period // 2)) % 2).astype(np.float32)
    return np.repeat(np.broadcast_to(col, (height, width))[..., None], 3, axis=2)


def random_volume(k: int = 4, width: int = 32, height: int = 20, num_frames: int = 60, fps: float = 30.0,
                  seed: int = 0, scale: float = 1.0, source_size=None):
    """A smooth random SpectralVolume (coarse noise upsampled) in pixels of a width x height map."""
    from addon.core import spectral

    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(k, 4, 4, 6)) * scale
    coeffs = spectral.resize_bilinear(coarse, height, width).astype(np.float32)
    return spectral.SpectralVolume(coeffs, fps=fps, num_frames=num_frames,
                                   source_size=source_size or (width, height))


def evaluated_positions(obj) -> np.ndarray:
    """(N, 3) vertex positions of the depsgraph-evaluated mesh at the current frame."""
    bpy = import_bpy()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    me = obj.evaluated_get(depsgraph).data
    co = np.empty(len(me.vertices) * 3, dtype=np.float32)
    me.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def flat_plane_frame(obj):
    """(uv, rest, eu, ev) of a flat photo plane: vertex UVs, rest positions and the plane's unit axes per UV."""
    from addon import shapekeys

    uv, rest, _origin, eu, ev, flat = shapekeys.plane_frame(obj)
    assert flat
    return uv, rest, eu, ev


def positions_at(obj, frame: int) -> np.ndarray:
    bpy = import_bpy()
    bpy.context.scene.frame_set(frame)
    return evaluated_positions(obj)


def make_baked_plane(tmp_path, volume, columns: int = 24, image_size=(64, 40), name: str = "photo"):
    """Create a photo plane from a stripes PNG with the operator, then load + bake ``volume`` with the operator."""
    bpy = import_bpy()
    from addon.core import spectral

    img = write_image(tmp_path / f"{name}.png", stripes(*image_size))
    assert bpy.ops.imagedyn.create_plane(filepath=img, columns=columns) == {"FINISHED"}
    obj = bpy.context.active_object
    path = tmp_path / f"{name}_volume.npz"
    spectral.save_npz(path, volume)
    assert bpy.ops.imagedyn.load_volume(filepath=str(path)) == {"FINISHED"}
    return obj


def run_animate(obj, timeout: float = 90.0):
    """Press Animate Photo on the active plane ``obj`` and run the job timer until the job ends; returns the job."""
    bpy = import_bpy()
    from addon import jobs

    assert bpy.ops.imagedyn.animate_photo() == {"FINISHED"}
    job = jobs.job_for(obj.name)
    assert job is not None and job.active
    assert jobs.wait_idle(timeout), f"still running after {timeout} s: {job.text}"
    return job


def pinned(offsets: np.ndarray, obj) -> np.ndarray:
    """numpy offsets (..., N, 3) of ``obj``'s vertices as its keys hold them: with Pin Edges on, each offset split
    into a * eu + b * ev + c * normal and a, b scaled by ``core.edges.edge_factors`` (an object-space reference,
    independent of the bake's pixel-space pinning); unchanged when Pin Edges is off."""
    from addon import bake, shapekeys
    from addon.core import edges

    uv, _rest, _origin, eu, ev, _flat = shapekeys.plane_frame(obj)
    basis = np.stack([eu, ev, np.cross(eu, ev)], axis=1)  # columns eu, ev, n
    coords = np.asarray(offsets, dtype=np.float64) @ np.linalg.inv(basis).T
    coords[..., :2] *= edges.edge_factors(uv, bake.pin_rows(obj))
    return (coords @ basis.T).astype(np.float32)
