"""Render Neural Frames in headless Blender against a real backend subprocess (tiny untrained renderer): the plane's
material shows the returned image sequence, scene frame f shows file frame_f in a Cycles render (no stale first
frame), the request carries what the timeline plays (loop and pokes as modal coordinates), cancel leaves the
scene and the frame folder untouched, Use Mesh Warp puts the photo back."""
import os
import time

import numpy as np
import pytest

from addon.core import mesh as core_mesh
from addon.core import neural, spectral
from bpy_helpers import make_baked_plane

W, H = 64, 40


# ---------------------------------------------------------------------------------------------------- pure parts

def test_modal_coordinates_from_key_values_invert_the_sign_convention():
    q = np.exp(1j * np.linspace(0, 3, 12)).reshape(3, 4) * np.array([[1.0], [0.5], [2.0]])  # (K, N)
    value_re, value_im = core_mesh.modal_key_values(q)
    modal = neural.coordinates_from_key_values(value_re, value_im)  # (N, K, 2)
    assert np.array_equal(modal[..., 0] + 1j * modal[..., 1], q.T)


def test_sequence_user_settings_map_scene_frame_to_file_number():
    s = neural.sequence_user_settings(7, 5)
    for f in range(7, 12):  # Blender: file = (f - frame_start + 1) + frame_offset
        assert (f - s["frame_start"] + 1) + s["frame_offset"] == f
    assert s["frame_duration"] == 5
    assert neural.frame_size(3088, 2056, 512) == (512, 341)
    assert neural.frame_size(64, 40, 512) == (64, 40)  # never upscaled
    with pytest.raises(ValueError, match="do not match"):
        neural.render_body(b"x", b"y", [1, 2], np.zeros((3, 4, 2)))


def test_anchor_mask_maps_a_grid_plane_vertex_to_cell_and_fills_gaps():
    cols, rows = 5, 3
    u, v = np.meshgrid(np.linspace(0, 1, cols), np.linspace(0, 1, rows))
    uv = np.stack([u.ravel(), v.ravel()], axis=1)
    weights = (u.ravel() * 0.5 + (v.ravel() > 0.9)).clip(0, 1)  # ramp in U, top row (v = 1) full weight
    mask = neural.anchor_mask(uv, weights)
    assert mask.shape == (rows, cols) and mask.dtype == np.float32
    assert np.allclose(mask[0], 1.0)  # row 0 = top of the photo = v 1
    assert np.allclose(mask[2], np.linspace(0, 0.5, cols))  # bottom row, v 0
    # A missing vertex (a hole in the grid) takes its neighbours' mean.
    keep = np.ones(len(uv), bool)
    keep[7] = False  # row v = 0.5, column u = 0.5
    holed = neural.anchor_mask(uv[keep], weights[keep])
    assert holed.shape == (rows, cols) and np.isclose(holed[1, 2], np.mean(np.delete(mask.ravel(), 7)), atol=0.2)
    assert np.allclose(np.delete(holed.ravel(), 7), np.delete(mask.ravel(), 7))
    # PNG bytes that the backend reads back to the same mask within 8-bit steps.
    from addon.core import png
    from backend.render.render import mask_from_image
    from PIL import Image
    import io

    back = mask_from_image(np.asarray(Image.open(io.BytesIO(png.encode_mask(mask)))))
    assert np.abs(back - mask).max() <= 0.5 / 255 + 1e-6
    body = neural.render_body(b"x", b"y", [1], np.zeros((1, 4, 2)), motion_mask=png.encode_mask(mask))
    assert "motion_mask" in body and "motion_mask" not in neural.render_body(b"x", b"y", [1], np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match="UVs and N weights"):
        neural.anchor_mask(uv, weights[:-1])


# ---------------------------------------------------------------------------------------------------- Blender

@pytest.fixture
def bpy(bpy_backend):
    """Blender with the add-on, talking to a real tiny backend (conftest.py)."""
    return bpy_backend


def _volume(k=3, num_frames=24):
    from addon.core import spectral

    coeffs = np.zeros((k, 4, H, W), dtype=np.float32)
    coeffs[1, 0] = 3.0  # 3 px horizontal sway at band 1
    coeffs[2, 3] = 1.0
    return spectral.SpectralVolume(coeffs, fps=30, num_frames=num_frames)


def _plane(bpy, tmp_path, size=(W, H)):
    from addon import shapekeys  # noqa: F401

    obj = make_baked_plane(tmp_path, _volume(), columns=17, image_size=size)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    assert bpy.context.active_object == obj
    return obj


def _render(bpy, path) -> np.ndarray:
    scene = bpy.context.scene
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    px = np.empty(W * H * 4, dtype=np.float32)
    image.pixels.foreach_get(px)
    bpy.data.images.remove(image)
    return px.reshape(H, W, 4)[::-1, :, :3]


def _setup_cycles(bpy):
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.cycles.pixel_filter_type = "BOX"
    scene.cycles.filter_width = 0.01
    scene.render.resolution_x, scene.render.resolution_y = W, H
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    cam_data = bpy.data.cameras.new("cam")
    cam_data.type = "ORTHO"
    cam_data.ortho_scale = 1.6  # the plane is 1.6 x 1 units: it fills the 64 x 40 frame
    cam = bpy.data.objects.new("cam", cam_data)
    cam.location = (0.0, 0.0, 5.0)
    scene.collection.objects.link(cam)
    scene.camera = cam


def _read_png(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path)).astype(np.float32) / 255.0


def _run(bpy, obj, timeout=120.0, **props):
    from addon import jobs, neural_ops

    assert bpy.ops.imagedyn.render_neural(renderer="tiny", **props) == {"FINISHED"}
    job = jobs.job_for(neural_ops.job_key(obj))
    assert job is not None and job.active
    assert jobs.wait_idle(timeout), f"still running after {timeout} s: {job.text}"
    return job


@pytest.mark.bpy
def test_neural_frames_show_on_the_material_and_cycles_renders_frame_t(bpy, tmp_path):
    from addon import neural_ops

    obj = _plane(bpy, tmp_path)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 6
    job = _run(bpy, obj)
    assert job.state == "done", job.message
    folder = tmp_path / "scene_neural" / "photo"
    names = sorted(os.listdir(folder))
    assert names == [neural.frame_filename(f) for f in range(1, 7)]
    frames = {f: _read_png(folder / neural.frame_filename(f)) for f in range(1, 7)}
    assert np.abs(frames[1] - frames[4]).mean() > 0.05  # the stripes sway between frames
    # The material: the sequence node feeds the emission in place of the photo node; the keys are muted.
    mat = obj.material_slots[0].material
    seq = mat.node_tree.nodes[neural_ops.NODE_NAME]
    assert seq.image.source == "SEQUENCE" and seq.outputs["Color"].is_linked
    photo_node = mat.node_tree.nodes[seq[neural_ops.PHOTO_TAG]]
    assert not photo_node.outputs["Color"].is_linked
    user = seq.image_user
    assert (user.frame_start, user.frame_offset, user.frame_duration) == (1, 0, 6)
    from addon import shapekeys

    assert all(b.mute for _, re_b, im_b in shapekeys.modal_keys(obj) for b in (re_b, im_b))
    # Cycles at frame t shows file frame_t: nearest to its own frame among all six, in any order of frames.
    _setup_cycles(bpy)
    for t in (4, 2, 6, 4):
        scene.frame_set(t)
        img = _render(bpy, tmp_path / f"render_{t}.png")
        errors = {f: float(np.abs(img - frames[f]).mean()) for f in frames}
        assert min(errors, key=errors.get) == t, errors
        assert errors[t] < 0.02, errors
    # A second render replaces the sequence in place (no stale cached frames): amplitude 0 = the photo.
    obj.imagedyn.amplitude = 0.0
    job = _run(bpy, obj)
    assert job.state == "done", job.message
    still = _read_png(folder / neural.frame_filename(4))
    assert np.abs(still - frames[1]).mean() > 0.01
    scene.frame_set(4)
    img = _render(bpy, tmp_path / "render_still.png")
    assert np.abs(img - still).mean() < 0.02
    # Use Mesh Warp: the photo node is linked again, the keys move the mesh again.
    assert bpy.ops.imagedyn.use_mesh_warp() == {"FINISHED"}
    assert neural_ops.NODE_NAME not in mat.node_tree.nodes and photo_node.outputs["Color"].is_linked
    assert not any(b.mute for _, re_b, im_b in shapekeys.modal_keys(obj) for b in (re_b, im_b))


@pytest.mark.bpy
def test_anchor_group_holds_neural_frames_still_where_the_mesh_stays_still(bpy, tmp_path):
    from addon import neural_ops, shapekeys

    obj = _plane(bpy, tmp_path)
    assert neural_ops.anchor_of(obj) is None  # no group: nothing is sent
    assert bpy.ops.imagedyn.add_anchor() == {"FINISHED"}
    assert neural_ops.anchor_of(obj) is None  # all weights 1: nothing would change
    uv = shapekeys.vertex_uvs(obj.data)
    group = obj.vertex_groups[obj.imagedyn.anchor_group]
    group.add([int(i) for i in np.flatnonzero(uv[:, 0] < 0.5)], 0.0, "REPLACE")  # the left half stays still
    uv_sent, weights = neural_ops.anchor_of(obj)
    assert np.array_equal(weights, (uv[:, 0] >= 0.5).astype(float))
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 4
    job = _run(bpy, obj)
    assert job.state == "done", job.message
    folder = tmp_path / "scene_neural" / "photo"
    photo = _read_png(tmp_path / "photo.png")[..., :3]
    for f in range(1, 5):
        frame = _read_png(folder / neural.frame_filename(f))
        assert np.abs(frame[:, :W // 2 - 4] - photo[:, :W // 2 - 4]).max() < 1e-6, f  # anchored: the photo
        assert np.abs(frame[:, W // 2 + 8:] - photo[:, W // 2 + 8:]).mean() > 0.02, f  # free: it sways


@pytest.mark.bpy
def test_request_carries_the_timeline_loop_and_pokes(bpy, tmp_path):
    from addon import neural_ops, shapekeys

    obj = _plane(bpy, tmp_path)
    scene = bpy.context.scene
    frames = list(range(1, 30))
    value_re, value_im = neural_ops.key_values(obj, frames)
    modal = neural.coordinates_from_key_values(value_re, value_im)  # (N, K, 2)
    props = obj.imagedyn
    from addon import animation

    length, start, phase, amplitude = animation.loop_settings(obj)
    q, _ = spectral.loop_coordinates(len(shapekeys.modal_keys(obj)), frames, length, amplitude, phase)  # (N, K)
    assert np.abs(modal[..., 0] + 1j * modal[..., 1] - q).max() < 1e-5  # the baked loop, frame by frame
    props.amplitude = 2.0  # what the timeline plays is what is sent
    value_re2, _ = neural_ops.key_values(obj, frames)
    assert np.allclose(value_re2, 2.0 * value_re, atol=1e-5)
    assert scene.frame_start == 1


@pytest.mark.bpy
def test_cancelled_render_leaves_the_scene_and_the_folder_untouched(bpy, tmp_path):
    from addon import jobs, neural_ops

    obj = _plane(bpy, tmp_path, size=(512, 320))
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 0, 399
    mat = obj.material_slots[0].material
    links_before = sorted((link.from_node.name, link.to_node.name) for link in mat.node_tree.links)
    assert bpy.ops.imagedyn.render_neural(renderer="tiny") == {"FINISHED"}
    job = jobs.job_for(neural_ops.job_key(obj))
    deadline = time.monotonic() + 60
    while not (job.text.startswith("Rendering") and job.progress > 0):
        jobs.process_events()
        assert job.active, job.message
        assert time.monotonic() < deadline, job.text
        time.sleep(0.05)
    assert bpy.ops.imagedyn.cancel_neural() == {"FINISHED"}
    assert jobs.wait_idle(30)
    assert job.state == "cancelled"
    assert not (tmp_path / "scene_neural").exists()
    assert neural_ops.NODE_NAME not in mat.node_tree.nodes
    assert sorted((link.from_node.name, link.to_node.name) for link in mat.node_tree.links) == links_before
    assert not any(img.name.startswith("IDyn_neural_") for img in bpy.data.images)
