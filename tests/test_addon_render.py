"""Cycles (CPU) renders of a baked photo plane: pixels change where the photo moves and not where it is anchored."""
import numpy as np
import pytest

from bpy_helpers import fresh_scene, make_baked_plane

pytestmark = pytest.mark.bpy
W, H = 64, 40


def _render(bpy, path) -> np.ndarray:
    scene = bpy.context.scene
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    px = np.empty(W * H * 4, dtype=np.float32)
    image.pixels.foreach_get(px)
    bpy.data.images.remove(image)
    return px.reshape(H, W, 4)[::-1, :, :3]  # row 0 = top


def _setup_scene(bpy):
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    scene.cycles.use_denoising = False
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


def test_cycles_render_moves_the_photo_except_where_anchored(tmp_path):
    bpy = fresh_scene(fps=30)
    from addon.core import spectral

    coeffs = np.zeros((2, 4, H, W), dtype=np.float32)
    coeffs[1, 0] = 2.0  # band 1: 2 px horizontal sway, half the stripe period of 8 px
    volume = spectral.SpectralVolume(coeffs, fps=30, num_frames=40)
    obj = make_baked_plane(tmp_path, volume, columns=33, image_size=(W, H))
    assert bpy.context.scene.view_settings.view_transform == "Standard"
    assert bpy.ops.imagedyn.add_anchor() == {"FINISHED"}
    from addon import shapekeys

    uv = shapekeys.vertex_uvs(obj.data)
    obj.vertex_groups["IDyn_anchor"].add(np.flatnonzero(uv[:, 0] <= 0.5).tolist(), 0.0, "REPLACE")
    _setup_scene(bpy)
    bpy.context.scene.frame_set(1)
    a = _render(bpy, tmp_path / "f0001.png")
    bpy.context.scene.frame_set(21)  # half a loop later: +2 px -> -2 px
    b = _render(bpy, tmp_path / "f0021.png")
    bpy.context.scene.frame_set(41)  # closing frame of the loop
    c = _render(bpy, tmp_path / "f0041.png")
    left, right = slice(0, 26), slice(38, 62)
    assert a[:, left].std() > 0.3  # the stripes are visible (not a black frame)
    assert np.array_equal(a[:, left], b[:, left])  # anchored: not a single pixel changes
    assert np.abs(a[:, right] - b[:, right]).mean() > 0.3  # moving: the stripes shift by half a period
    assert np.array_equal(a, c)  # seamless loop: the closing frame renders identically


def test_neural_frames_in_the_compositor_show_frame_t_behind_the_render(tmp_path):
    """The compositor path of neural frames (no backend needed: a sequence of solid colours stands in for them)."""
    bpy = fresh_scene(fps=30)
    from addon import compat, neural_ops
    from addon.core import neural, spectral
    from bpy_helpers import write_image

    obj = make_baked_plane(tmp_path, spectral.SpectralVolume(np.zeros((2, 4, H, W), np.float32), fps=30,
                                                             num_frames=40), image_size=(W, H))
    scene = bpy.context.scene
    with pytest.raises(RuntimeError, match="shows no neural frames: render them first"):
        bpy.ops.imagedyn.neural_to_compositor()  # nothing made
    assert (scene.compositing_node_group is None) if compat.COMPOSITOR_GROUPS else not scene.use_nodes
    colours = {f: np.array([0.1 * f, 0.9 - 0.2 * f, 0.5], np.float32) for f in (1, 2, 3)}
    (tmp_path / "seq").mkdir()
    for f, c in colours.items():
        write_image(tmp_path / "seq" / neural.frame_filename(f), np.broadcast_to(c, (H, W, 3)).copy())
    neural_ops.apply_sequence(obj, str(tmp_path / "seq" / neural.frame_filename(1)), 1, 3)
    assert bpy.ops.imagedyn.neural_to_compositor() == {"FINISHED"}
    assert bpy.ops.imagedyn.neural_to_compositor() == {"FINISHED"}  # again: the same node, updated
    tree, created = compat.compositor_tree(scene)
    assert not created
    name = neural_ops.compositor_node_name(obj)
    assert sum(n.name == name for n in tree.nodes) == 1 and scene.render.film_transparent
    _setup_scene(bpy)
    obj.hide_render = True  # nothing in front: the render is the neural frames
    for t in (3, 1, 2):
        scene.frame_set(t)
        img = _render(bpy, tmp_path / f"comp_{t}.png")
        assert np.abs(img - colours[t]).max() < 2.5 / 255, (t, img.mean(axis=(0, 1)), colours[t])
    # A new render of the plane's frames (here 2..3) moves the compositor's mapping along.
    neural_ops.apply_sequence(obj, str(tmp_path / "seq" / neural.frame_filename(2)), 2, 2)
    node = tree.nodes[name]
    assert (node.frame_start, node.frame_offset, node.frame_duration) == (2, 1, 2)
    # A scene whose compositor the artist made: the node is added but nothing is rewired.
    other = bpy.data.scenes.new("Artist")
    own, _ = compat.compositor_tree(other)
    links = {(link.from_node.name, link.to_node.name) for link in own.links}
    msg = neural_ops.send_to_compositor(other, obj)
    assert "unconnected" in msg and name in own.nodes and not own.nodes[name].outputs["Image"].is_linked
    assert {(link.from_node.name, link.to_node.name) for link in own.links} == links
