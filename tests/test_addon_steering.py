"""Steering the motion in headless Blender (no backend): wind arrows re-bake the keys live and undoably, Pin Edges
keeps the border on the photo's edges in loops and pokes (and a camera framed on the plane never sees past it in
Cycles), Show Motion colours the plane in the viewport only, Paint Motion makes the brush group."""
import math

import numpy as np
import pytest

from bpy_helpers import fresh_scene, make_baked_plane, pinned, positions_at

pytestmark = pytest.mark.bpy
W, H = 64, 40  # photo and volume map
COLS = 33  # grid: 33 x 21 vertices, one every 2 map pixels


@pytest.fixture
def bpy():
    return fresh_scene(fps=30)


def _volume(k=4, num_frames=40, seed=0, x_scale=1.0, y_scale=0.2):
    from addon.core import spectral

    rng = np.random.default_rng(seed)
    coeffs = spectral.resize_bilinear(rng.normal(size=(k, 4, 4, 6)), H, W).astype(np.float32)
    coeffs[:, 0:2] *= x_scale
    coeffs[:, 2:4] *= y_scale
    return spectral.SpectralVolume(coeffs, fps=30.0, num_frames=num_frames)


def _key_positions(obj) -> np.ndarray:
    """(K, 2, N, 3) positions the modal keys hold."""
    from addon import shapekeys

    bands = shapekeys.modal_keys(obj)
    n = len(obj.data.vertices)
    out = np.empty((len(bands), 2, n, 3), dtype=np.float32)
    for i, (_k, re_block, im_block) in enumerate(bands):
        for part, block in enumerate((re_block, im_block)):
            co = np.empty(n * 3, dtype=np.float32)
            block.data.foreach_get("co", co)
            out[i, part] = co.reshape(n, 3)
    return out


def _reference_keys(obj, volume, arrows) -> np.ndarray:
    """Independent numpy reference: the volume turned by ``arrows`` (map pixels), sampled at the vertices, pinned
    in object space (bpy_helpers.pinned) - what the keys must hold."""
    from addon import shapekeys
    from addon.core import mesh, wind

    uv, rest, _origin, eu, ev, _flat = shapekeys.plane_frame(obj)
    coeffs = wind.apply_arrows(volume.coeffs, arrows)
    return rest + pinned(mesh.modal_offsets(coeffs, uv, eu, ev), obj)


def _axis_deg(offsets_xy) -> np.ndarray:
    """Dominant axis (degrees, photo up = +90) of per-vertex key offsets (K, 2, N, 2) over bands k >= 1."""
    c = offsets_xy[1:].astype(np.float64)
    xx = (c[..., 0] ** 2).sum(axis=(0, 1))
    xy = (c[..., 0] * c[..., 1]).sum(axis=(0, 1))
    yy = (c[..., 1] ** 2).sum(axis=(0, 1))
    return np.degrees(0.5 * np.arctan2(2 * xy, xx - yy))


def _axis_error(angle, target):
    return np.abs((np.asarray(angle) - target + 90.0) % 180.0 - 90.0)


# ----------------------------------------------------------------------------------------------------------------
# Wind arrows
# ----------------------------------------------------------------------------------------------------------------

def test_wind_arrow_turns_the_baked_motion_near_it_and_leaves_far_vertices_bit_for_bit(bpy, tmp_path):
    from addon import shapekeys, wind
    from addon.core import wind as core_wind

    volume = _volume()  # sways mostly left-right
    obj = make_baked_plane(tmp_path, volume, columns=COLS, image_size=(W, H))
    uv, rest, _origin, _eu, _ev, _flat = shapekeys.plane_frame(obj)
    before = _key_positions(obj)
    near_axis = _axis_deg((before - rest)[..., :2])
    assert np.median(_axis_error(near_axis, 0.0)) < 20  # the volume's own motion: horizontal
    assert bpy.ops.imagedyn.wind_add(u=0.3, v=0.5, angle=math.radians(90), length=0.5) == {"FINISHED"}
    (empty,) = wind.plane_winds(obj)
    expected_arrow = core_wind.WindArrow(x=0.3 * W, y=0.5 * H, dx=0.0, dy=-1.0, radius=0.5 * W)  # up = -y on the map
    (got_arrow,) = wind.wind_arrows(obj, W, H)
    assert np.allclose([got_arrow.x, got_arrow.y, got_arrow.radius], [expected_arrow.x, expected_arrow.y,
                                                                       expected_arrow.radius], atol=1e-4)
    assert math.degrees(math.atan2(got_arrow.dy, got_arrow.dx)) == pytest.approx(-90.0, abs=1e-3)
    after = _key_positions(obj)
    assert np.abs(after - _reference_keys(obj, volume, [expected_arrow])).max() < 1e-5
    px = np.stack([uv[:, 0] * W, (1 - uv[:, 1]) * H], axis=1)
    r = np.hypot(px[:, 0] - expected_arrow.x, px[:, 1] - expected_arrow.y)
    near, far = r <= 0.5 * expected_arrow.radius, r >= expected_arrow.radius + 2.0
    axis = _axis_deg((after - rest)[..., :2])
    assert np.all(_axis_error(axis[near], 90.0) < 10.0), _axis_error(axis[near], 90.0).max()
    assert np.array_equal(after[:, :, far], before[:, :, far])  # far from the arrow: not a bit changed
    assert not np.array_equal(after[:, :, near], before[:, :, near])


def test_moving_an_arrow_rebakes_live_like_a_full_bake_and_undo_restores_the_keys(bpy, tmp_path):
    import time

    from addon import bake, live, shapekeys, wind

    volume = _volume()
    obj = make_baked_plane(tmp_path, volume, columns=COLS, image_size=(W, H))
    bpy.ops.ed.undo_push(message="start")
    bpy.ops.ed.undo_push(message="baked")
    baked = _key_positions(obj)
    assert bpy.ops.imagedyn.wind_add(u=0.3, v=0.5, angle=0.0, length=0.4) == {"FINISHED"}
    bpy.ops.ed.undo_push(message="Add Wind Arrow")  # what Blender does after an operator with UNDO
    with_arrow = _key_positions(obj)
    (empty,) = wind.plane_winds(obj)
    # move, turn and scale it as G, R and S would: the handler starts the countdown, the timer re-bakes
    empty.location.x += 0.3
    empty.rotation_euler.x += 0.4
    empty.scale = (1.3, 1.3, 1.3)
    bpy.context.view_layer.update()
    assert bpy.app.timers.is_registered(live._check_timer)
    t0 = time.perf_counter()
    assert live.refresh(bpy.context.scene) == [obj]
    print(f"live re-bake after moving one arrow ({len(obj.data.vertices)} vertices): "
          f"{time.perf_counter() - t0:.3f} s")
    assert live.refresh(bpy.context.scene) == []  # nothing changed since: no re-bake (no feedback loop)
    moved = _key_positions(obj)
    (arrow,) = wind.wind_arrows(obj, W, H)
    assert np.abs(moved - _reference_keys(obj, volume, [arrow])).max() < 1e-5
    # the incremental re-bake wrote exactly what a full bake of the same arrows writes
    full = shapekeys.plane_frame(obj)[1] + shapekeys.key_offsets(
        obj, wind.effective_coeffs(obj, volume), bake.pin_rows(obj))
    assert np.array_equal(moved, full)
    bpy.ops.ed.undo_push(message="Move")
    bpy.ops.ed.undo()  # back to the arrow as added
    obj = bpy.data.objects["photo"]
    assert np.array_equal(_key_positions(obj), with_arrow)
    bpy.ops.ed.undo()  # back to before the arrow
    obj = bpy.data.objects["photo"]
    assert not wind.plane_winds(obj) and np.array_equal(_key_positions(obj), baked)
    assert live.refresh(bpy.context.scene) == []  # the restored keys match their restored signature
    assert np.array_equal(_key_positions(obj), baked)
    bpy.ops.ed.redo()
    obj = bpy.data.objects["photo"]
    assert len(wind.plane_winds(obj)) == 1 and np.array_equal(_key_positions(obj), with_arrow)


def test_removing_arrows_and_disabling_one_give_the_volume_back(bpy, tmp_path):
    import io

    from addon import live, neural_ops, wind
    from addon.core import spectral

    volume = _volume()
    obj = make_baked_plane(tmp_path, volume, columns=COLS, image_size=(W, H))
    baked = _key_positions(obj)
    assert bpy.ops.imagedyn.wind_add(u=0.7, v=0.4, angle=1.0, length=0.3) == {"FINISHED"}
    (empty,) = wind.plane_winds(obj)
    empty.imagedyn_wind.enabled = False
    live.update_plane(obj)
    assert np.array_equal(_key_positions(obj), baked)
    path = bpy.path.abspath(obj.imagedyn.volume_path)
    assert neural_ops.volume_bytes(obj, path) == open(path, "rb").read()  # no arrow: the file as it is
    empty.imagedyn_wind.enabled = True
    empty.imagedyn_wind.strength = 0.5
    live.update_plane(obj)
    assert not np.array_equal(_key_positions(obj), baked)
    with np.load(io.BytesIO(neural_ops.volume_bytes(obj, path)), allow_pickle=False) as npz:
        turned = spectral.volume_from_arrays(dict(npz))  # neural frames get the motion the keys hold
    assert np.array_equal(turned.coeffs, wind.effective_coeffs(obj, volume))
    assert (turned.fps, turned.num_frames) == (volume.fps, volume.num_frames)
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.imagedyn.wind_clear() == {"FINISHED"}
    assert not [c for c in obj.children if wind.is_wind(c)] and np.array_equal(_key_positions(obj), baked)


# ----------------------------------------------------------------------------------------------------------------
# Pin Edges
# ----------------------------------------------------------------------------------------------------------------

def _border_volume(num_frames=40):
    """Everything sways, the border too: 3 px x and 2 px y at 1 band, a constant offset, some noise."""
    volume = _volume(k=4, num_frames=num_frames, x_scale=0.5, y_scale=0.5)
    volume.coeffs[1, 0] += 3.0
    volume.coeffs[1, 3] += 2.0
    volume.coeffs[0, 0] += 1.0  # k = 0: a constant push to the right
    return volume


def _border_motion(obj, frames) -> tuple:
    """Per frame, the largest motion across the edges (x at left/right, y at bottom/top) and along them."""
    from addon import shapekeys

    uv, rest, _origin, _eu, _ev, _flat = shapekeys.plane_frame(obj)
    sides = (uv[:, 0] == uv[:, 0].min()) | (uv[:, 0] == uv[:, 0].max())
    ends = (uv[:, 1] == uv[:, 1].min()) | (uv[:, 1] == uv[:, 1].max())
    across, along = [], []
    for frame in frames:
        d = positions_at(obj, frame) - rest
        across.append(max(np.abs(d[sides, 0]).max(), np.abs(d[ends, 1]).max()))
        along.append(max(np.abs(d[sides, 1]).max(), np.abs(d[ends, 0]).max()))
    return np.array(across), np.array(along)


def test_pinned_border_never_moves_across_its_edge_in_the_loop_or_a_poke_simulation(bpy, tmp_path):
    from mathutils import Vector

    from addon import arrows, pokes, shapekeys
    from addon.core import mesh

    volume = _border_volume()
    obj = make_baked_plane(tmp_path, volume, columns=COLS, image_size=(W, H))
    assert obj.imagedyn.pin_edges  # on by default
    size = max(obj.dimensions.x, obj.dimensions.y)
    loop = range(1, 41)
    across, along = _border_motion(obj, loop)
    assert across.max() <= 1e-6 * size, across.max()
    assert along.max() > 0.01 * size  # the border still slides along itself
    # a poke near the left edge, simulated over the scene range
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 60
    base = arrows.photo_point(obj, 0.05, 0.5)
    pokes.add_poke(obj, base, base + Vector((0.2, 0.1, 0.0)), 5)
    pokes.simulate(obj, scene)
    across, along = _border_motion(obj, range(1, 61))
    assert across.max() <= 1e-6 * size, across.max()
    # off: today's behaviour, the border follows the photo (the edge opens)
    pokes.remove_pokes(obj)
    obj.imagedyn.pin_edges = False
    pokes.write_motion(obj)
    across, _along = _border_motion(obj, loop)
    assert across.max() > 0.02 * size
    uv, rest, _origin, eu, ev, _flat = shapekeys.plane_frame(obj)
    expected = rest + mesh.predicted_offsets(volume.coeffs, volume.freqs_hz, 10 / 30.0, uv, eu, ev)
    assert np.abs(positions_at(obj, 11) - expected).max() < 1e-4  # exactly the unpinned bake


def _cycles_scene(bpy):
    from test_addon_render import _setup_scene

    _setup_scene(bpy)  # Cycles CPU, 64 x 40, orthographic camera framed exactly on the 1.6 x 1 plane
    scene = bpy.context.scene
    scene.cycles.samples = 2
    scene.cycles.pixel_filter_type = "BOX"  # one pixel wide: a pixel sees only its own square
    scene.cycles.filter_width = 1.0
    world = bpy.data.worlds.new("magenta")
    if bpy.app.version < (5, 0, 0):
        world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (1.0, 0.0, 1.0, 1.0)
    scene.world = world


def _background_pixels(image) -> int:
    """Pixels that show any of the magenta world: the photo is grey, so its red never exceeds its green."""
    return int(np.count_nonzero((image[..., 0] - image[..., 1] > 0.02) | (image[..., 2] - image[..., 1] > 0.02)))


def test_cycles_camera_framed_on_a_pinned_plane_sees_no_background_at_any_frame(bpy, tmp_path):
    from mathutils import Vector

    from addon import arrows, pokes
    from bpy_helpers import stripes
    from test_addon_render import _render

    volume = _border_volume(num_frames=8)  # an 8-frame loop: every frame is rendered
    obj = make_baked_plane(tmp_path, volume, columns=COLS, image_size=(W, H))
    image = obj.active_material.node_tree.nodes["Image Texture"].image
    grey = 0.2 + 0.6 * stripes(W, H)  # grey stripes: never magenta
    rgba = np.ones((H, W, 4), np.float32)
    rgba[..., :3] = grey[::-1]
    image.pixels.foreach_set(rgba.reshape(-1))
    _cycles_scene(bpy)
    scene = bpy.context.scene
    for frame in range(1, 9):
        scene.frame_set(frame)
        shot = _render(bpy, tmp_path / f"pinned_{frame}.png")
        assert _background_pixels(shot) == 0, frame
    scene.frame_end = 24
    base = arrows.photo_point(obj, 0.95, 0.9)
    pokes.add_poke(obj, base, base + Vector((0.3, 0.2, 0.0)), 3)
    pokes.simulate(obj, scene)
    for frame in (4, 6, 10):
        scene.frame_set(frame)
        assert _background_pixels(_render(bpy, tmp_path / f"poked_{frame}.png")) == 0, frame
    pokes.remove_pokes(obj)
    obj.imagedyn.pin_edges = False  # today's plane: the edge opens and the camera sees the world behind it
    pokes.write_motion(obj)
    opened = []
    for frame in range(1, 9):
        scene.frame_set(frame)
        opened.append(_background_pixels(_render(bpy, tmp_path / f"free_{frame}.png")))
    assert max(opened) >= W // 4, opened


# ----------------------------------------------------------------------------------------------------------------
# Show Motion
# ----------------------------------------------------------------------------------------------------------------

def _colours(obj) -> np.ndarray:
    from addon import overlay

    attr = obj.data.color_attributes[overlay.ATTRIBUTE]
    out = np.empty(len(obj.data.vertices) * 4, dtype=np.float32)
    attr.data.foreach_get("color", out)
    return out.reshape(-1, 4)


def _node_graph(mat):
    tree = mat.node_tree
    return (sorted(n.name for n in tree.nodes),
            sorted((link.from_node.name, link.from_socket.identifier, link.to_node.name, link.to_socket.identifier)
                   for link in tree.links))


def test_show_motion_colours_the_viewport_only_and_follows_amplitude_arrows_and_painting(bpy, tmp_path):
    from addon import brush, live, overlay, shapekeys
    from addon.core import heat
    from test_addon_render import _render, _setup_scene

    volume = _volume(x_scale=2.0)
    obj = make_baked_plane(tmp_path, volume, columns=COLS, image_size=(W, H))
    mat = obj.active_material
    graph = _node_graph(mat)
    _setup_scene(bpy)
    bpy.context.scene.frame_set(5)
    plain = _render(bpy, tmp_path / "plain.png")
    obj.imagedyn.show_motion = True
    mod = obj.modifiers[overlay.MODIFIER]
    assert mod.show_viewport and not mod.show_render
    assert obj.data.color_attributes.active_color.name == overlay.ATTRIBUTE
    depsgraph = bpy.context.evaluated_depsgraph_get()
    assert overlay.FLAG in obj.evaluated_get(depsgraph).data.attributes  # the viewport sees the flag
    assert overlay.FLAG not in obj.data.attributes
    assert np.array_equal(_render(bpy, tmp_path / "shown.png"), plain)  # a render never shows it
    mod.show_render = True  # what the viewport draws: the heat over the photo
    assert np.abs(_render(bpy, tmp_path / "viewport.png") - plain).max() > 0.1
    mod.show_render = False
    colours = _colours(obj)
    relative = overlay.vertex_motion(obj)
    assert np.allclose(colours, heat.heat_colours(relative), atol=1e-6)
    peak = obj.imagedyn.motion_peak
    assert peak == pytest.approx(relative.max()) and peak > 0
    obj.imagedyn.amplitude = 2.0  # Amplitude: twice the motion
    assert obj.imagedyn.motion_peak == pytest.approx(2 * peak, rel=1e-5)
    assert not np.array_equal(_colours(obj), colours)
    obj.imagedyn.amplitude = 1.0
    shown = _colours(obj)
    assert bpy.ops.imagedyn.wind_add(u=0.3, v=0.5, angle=1.2, length=0.5) == {"FINISHED"}
    assert not np.array_equal(_colours(obj), shown)  # the re-bake recoloured it
    shown = _colours(obj)
    # painting the brush (Weight Paint mode): the overlay previews it once the countdown runs
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.imagedyn.paint_motion() == {"FINISHED"}
    assert obj.mode == "WEIGHT_PAINT"
    uv = shapekeys.vertex_uvs(obj.data)[:, 0]
    obj.vertex_groups[brush.GROUP].add(np.flatnonzero(uv > 0.5).tolist(), 1.0, "REPLACE")
    obj.data.update()
    bpy.context.view_layer.update()
    assert bpy.app.timers.is_registered(live._check_timer)
    live.refresh(bpy.context.scene)
    painted = _colours(obj)
    left = uv < 0.45
    assert np.allclose(painted[left], heat.heat_colours(np.zeros(1))[0], atol=1e-6)  # painted still: no motion
    assert np.array_equal(painted[uv > 0.5], shown[uv > 0.5])
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.imagedyn.show_motion = False
    assert _node_graph(mat) == graph  # the material is as it was
    assert overlay.MODIFIER not in obj.modifiers and overlay.ATTRIBUTE not in obj.data.color_attributes
    assert bpy.data.node_groups.get(overlay.GROUP) is None


def test_paint_motion_makes_an_empty_brush_group_and_remove_brush_deletes_it(bpy, tmp_path):
    from addon import brush

    obj = make_baked_plane(tmp_path, _volume(), columns=COLS, image_size=(W, H))
    assert bpy.ops.imagedyn.paint_motion() == {"FINISHED"}
    group = obj.vertex_groups[brush.GROUP]
    assert obj.vertex_groups.active_index == group.index and obj.mode == "WEIGHT_PAINT"
    assert brush.painted_weights(obj) is None  # empty = automatic: nothing would be sent
    assert bpy.ops.imagedyn.paint_motion() == {"FINISHED"}  # again, in Weight Paint mode: same group
    assert [g.name for g in obj.vertex_groups] == [brush.GROUP]
    assert bpy.ops.imagedyn.remove_brush() == {"FINISHED"}
    assert brush.GROUP not in obj.vertex_groups
    bpy.ops.object.mode_set(mode="OBJECT")


def test_planes_baked_before_the_signature_and_planes_whose_volume_went_missing(bpy, tmp_path):
    import os

    from addon import live, shapekeys, ui, wind

    volume = _border_volume()
    obj = make_baked_plane(tmp_path, volume, columns=COLS, image_size=(W, H))
    del obj[shapekeys.BAKED_SIGNATURE]  # as baked by an earlier version of the add-on
    keys = _key_positions(obj)
    assert live.refresh(bpy.context.scene) == [] and np.array_equal(_key_positions(obj), keys)  # kept as they are
    obj.imagedyn.pin_edges = False  # pressing Pin Edges always re-bakes
    free = _key_positions(obj)
    assert not np.array_equal(free, keys) and obj.get(shapekeys.BAKED_SIGNATURE)
    # the volume file went missing: a plane without arrows keeps its keys and shows no error
    os.remove(bpy.path.abspath(obj.imagedyn.volume_path))
    assert live.refresh(bpy.context.scene) == [] and not wind.last_error(obj)
    with pytest.raises(RuntimeError, match="added but the plane was not re-baked: .* is missing: wind arrows and Pin "
                                           "Edges re-bake from it; load it again"):
        bpy.ops.imagedyn.wind_add(u=0.5, v=0.5)
    assert "is missing" in wind.last_error(obj) and np.array_equal(_key_positions(obj), free)
    (empty,) = wind.plane_winds(obj)
    bpy.context.view_layer.objects.active = empty
    assert ui.IMAGEDYN_PT_wind.poll(bpy.context)
    assert not ui.IMAGEDYN_PT_wind.poll(type("C", (), {"active_object": obj})())
