"""The whole path an artist takes, against exact ground truth: a clip with known motion -> `image-dynamics extract`
-> .npz -> Blender photo plane -> modal shape keys -> evaluated mesh. The plane's vertices must move as the clip's
pixels did."""
import cv2
import numpy as np
import pytest
from PIL import Image

from bpy_helpers import fresh_scene, positions_at

pytestmark = pytest.mark.bpy

T = 90  # frames: a short loop keeps the test quick (K = 16 needs at least 31)


def test_clip_motion_reaches_the_blender_plane(tmp_path):
    from addon.core import mesh as core_mesh
    from addon.core.spectral import SpectralVolume, load_npz
    from backend import cli
    from backend.data.scene_render import render_scene
    from backend.data.scenes import SceneConfig
    from backend.video import write_video

    clip = render_scene(SceneConfig(kind="flowers", seed=2, num_frames=T, exact=False))
    h, w = clip.frames.shape[1:3]
    video = tmp_path / "flowers.mp4"
    write_video(video, clip.frames, clip.fps, crf=16, preset="slow")
    volume_path = tmp_path / "flowers.npz"
    assert cli.main(["extract", str(video), "-o", str(volume_path), "--frames", str(T), "--size", f"{w}x{h}",
                     "-q"]) == 0
    assert load_npz(volume_path).provenance["extracted_from"] == "flowers.mp4"
    photo = tmp_path / "flowers.png"
    Image.fromarray(clip.frames[0]).save(photo)

    bpy = fresh_scene(fps=30)
    assert bpy.ops.imagedyn.create_plane(filepath=str(photo), columns=64) == {"FINISHED"}
    obj = bpy.context.active_object
    assert bpy.ops.imagedyn.load_volume(filepath=str(volume_path)) == {"FINISHED"}
    scene = bpy.context.scene
    first = scene.frame_start
    assert scene.frame_end - first + 1 == T  # the scene range is one loop

    rest = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.shape_keys.key_blocks[0].data.foreach_get("co", rest)
    rest = rest.reshape(-1, 3)
    uv = np.empty(len(obj.data.loops) * 2, np.float32)
    obj.data.uv_layers.active.data.foreach_get("uv", uv)
    loop_vertex = np.empty(len(obj.data.loops), np.int64)
    obj.data.loops.foreach_get("vertex_index", loop_vertex)
    vertex_uv = np.zeros((len(obj.data.vertices), 2), np.float32)
    vertex_uv[loop_vertex] = uv.reshape(-1, 2)
    px, py = core_mesh.uv_to_pixels(vertex_uv, w, h)
    col = np.clip(np.floor(px).astype(int), 0, w - 1)
    row = np.clip(np.floor(py).astype(int), 0, h - 1)
    size = rest.max(axis=0) - rest.min(axis=0)  # plane extent in object units (x, y)

    truth = SpectralVolume.from_trajectories(clip.trajectories, k=16, fps=clip.fps).trajectories()
    moving = clip.moving_mask[row, col]
    interior = np.zeros_like(clip.moving_mask)
    interior[2:-2, 2:-2] = True
    still = ~clip.moving_mask & interior
    # background far from any moving object: the flow's halo around moving parts is not what this checks
    near_motion = cv2.dilate(clip.moving_mask.astype(np.uint8), np.ones((13, 13), np.uint8)) > 0
    still = still & ~near_motion
    still = still[row, col]
    assert moving.sum() > 50 and still.sum() > 50

    errors, moved, rested = [], [], []
    for t in (10, 25, 40, 60):
        d = positions_at(obj, first + t) - rest  # object units, Blender y up
        dx = d[:, 0] / size[0] * w
        dy = -d[:, 1] / size[1] * h
        gt = truth[t][:, row, col]  # (2, N) pixels, y down
        errors.append(np.hypot(dx - gt[0], dy - gt[1])[moving].mean())
        moved.append(np.hypot(dx, dy)[moving].mean())
        rested.append(np.hypot(dx, dy)[still].mean())
    assert np.mean(errors) < 0.8, errors  # vertices follow the clip's true motion (sub-pixel on average)
    assert np.mean(moved) > 5 * np.mean(rested), (moved, rested)  # moving parts move, the background stays
    np.testing.assert_allclose(positions_at(obj, first + T), positions_at(obj, first), atol=1e-5)  # seamless
