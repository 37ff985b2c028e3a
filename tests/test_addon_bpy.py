"""The add-on in headless Blender: baked planes match the numpy prediction, loops are seamless, re-baking keeps the
user's work, live settings, planes from "Import Images as Planes", the pokes' key-value writer, and the errors."""
import numpy as np
import pytest

from bpy_helpers import (flat_plane_frame, fresh_scene, make_baked_plane, pinned, positions_at, random_volume,
                         stripes, write_image)

pytestmark = pytest.mark.bpy
TOL = 1e-4  # object units


@pytest.fixture
def bpy():
    return fresh_scene(fps=30)


def _predicted(volume, obj, frame, amplitude=1.0, loop=None, start=1, offset=0):
    """numpy prediction of the evaluated mesh at a scene frame (loop = loop length in scene frames)."""
    from addon.core import mesh

    uv, rest, eu, ev = flat_plane_frame(obj)
    loop = loop or volume.num_frames
    t_seconds = (frame - start + offset) * volume.num_frames / (loop * volume.fps)
    return rest + pinned(mesh.predicted_offsets(volume.coeffs, volume.freqs_hz, t_seconds, uv, eu, ev, amplitude), obj)


def test_evaluated_mesh_matches_numpy_and_loops_seamlessly(bpy, tmp_path):
    volume = random_volume(k=6, num_frames=60, scale=2.0)
    obj = make_baked_plane(tmp_path, volume, columns=24)
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 60)  # one loop, every frame once
    assert len(obj.data.vertices) == 24 * 15
    for frame in (1, 8, 31, 45, 61):
        got = positions_at(obj, frame)
        assert np.abs(got - _predicted(volume, obj, frame)).max() < TOL, frame
    first, closing, middle = positions_at(obj, 1), positions_at(obj, 61), positions_at(obj, 31)
    assert np.abs(first - closing).max() < 1e-6  # frame T identical to frame 0: seamless
    assert np.abs(first - middle).max() > 0.01
    assert np.abs(positions_at(obj, 1 + 3 * 60 + 17) - positions_at(obj, 18)).max() < 1e-5  # cycles forever


def test_keys_are_named_tagged_and_allow_negative_values(bpy, tmp_path):
    from addon import animation, compat, shapekeys

    obj = make_baked_plane(tmp_path, random_volume(k=3, num_frames=40))
    names = [b.name for b in obj.data.shape_keys.key_blocks]
    assert names == ["Basis"] + [f"IDyn_k{k:02d}_{p}" for k in range(3) for p in ("re", "im")]
    assert list(obj.data.shape_keys[shapekeys.TAG]) == names[1:]
    assert all(b.slider_min == -10.0 and b.slider_max == 10.0 for b in obj.data.shape_keys.key_blocks[1:])
    fcurves = compat.find_fcurves(obj.data.shape_keys)
    assert len(fcurves) == 6
    for fc in fcurves:
        assert len(fc.keyframe_points) == 41 and fc.modifiers[0].type == "CYCLES"
    im1 = fcurves.find(animation.data_path(obj.data.shape_keys.key_blocks["IDyn_k01_im"]))
    assert im1.evaluate(11.0) == pytest.approx(-np.sin(2 * np.pi * 10 / 40), abs=1e-6)  # Im key value = -sin
    assert im1.evaluate(11.5) == pytest.approx(-np.sin(2 * np.pi * 10.5 / 40), abs=1e-4)  # sub-frames (blur)


def test_live_settings_amplitude_speed_offset_and_closing_frame(bpy, tmp_path):
    volume = random_volume(k=4, num_frames=60)
    obj = make_baked_plane(tmp_path, volume)
    props, scene = obj.imagedyn, bpy.context.scene
    props.amplitude = 0.5
    props.speed = 0.5  # slow motion: the loop lasts 120 frames
    props.start_offset = 7
    assert (scene.frame_start, scene.frame_end) == (1, 120)
    for frame in (1, 50, 121):
        got = positions_at(obj, frame)
        assert np.abs(got - _predicted(volume, obj, frame, 0.5, loop=120, offset=7)).max() < TOL
    scene.imagedyn.include_closing_frame = True
    props.loop_start = 11
    assert (scene.frame_start, scene.frame_end) == (11, 131)
    got = positions_at(obj, 40)
    assert np.abs(got - _predicted(volume, obj, 40, 0.5, loop=120, start=11, offset=7)).max() < TOL


def test_scene_frame_rate_sets_the_loop_length(bpy, tmp_path):
    bpy.context.scene.render.fps = 24
    volume = random_volume(k=3, num_frames=60, fps=30.0)  # 2 seconds
    obj = make_baked_plane(tmp_path, volume)
    assert obj.imagedyn.loop_frames == 48 and bpy.context.scene.frame_end == 48
    got = positions_at(obj, 13)
    assert np.abs(got - _predicted(volume, obj, 13, loop=48)).max() < TOL


def test_rebake_and_clear_keep_the_users_shape_key_and_animation(bpy, tmp_path):
    from addon import compat

    volume = random_volume(k=3, num_frames=40)
    obj = make_baked_plane(tmp_path, volume)
    user = obj.shape_key_add(name="Bulge", from_mix=False)
    co = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    user.data.foreach_get("co", co)
    co[2::3] += 0.25
    user.data.foreach_set("co", co)
    user.value = 0.4
    user.keyframe_insert("value", frame=5)
    assert bpy.ops.imagedyn.bake() == {"FINISHED"}
    assert bpy.ops.imagedyn.bake() == {"FINISHED"}
    blocks = obj.data.shape_keys.key_blocks
    assert len(blocks) == 1 + 1 + 6 and blocks["Bulge"].value == pytest.approx(0.4)
    got = np.empty_like(co)
    blocks["Bulge"].data.foreach_get("co", got)
    assert np.array_equal(got, co)
    paths = sorted(fc.data_path for fc in compat.find_fcurves(obj.data.shape_keys))
    assert paths.count('key_blocks["Bulge"].value') == 1 and len(paths) == 7
    # the evaluated mesh is the user's key plus the modal motion
    positions = positions_at(obj, 9)
    expected = _predicted(volume, obj, 9)
    expected[:, 2] += 0.25 * 0.4
    assert np.abs(positions - expected).max() < TOL
    assert bpy.ops.imagedyn.clear() == {"FINISHED"}
    assert [b.name for b in obj.data.shape_keys.key_blocks] == ["Basis", "Bulge"]
    assert [fc.data_path for fc in compat.find_fcurves(obj.data.shape_keys)] == ['key_blocks["Bulge"].value']


def test_clear_removes_everything_the_addon_made(bpy, tmp_path):
    obj = make_baked_plane(tmp_path, random_volume(k=2, num_frames=20))
    n_actions = len(bpy.data.actions)
    assert bpy.ops.imagedyn.clear() == {"FINISHED"}
    assert obj.data.shape_keys is None and len(bpy.data.actions) == n_actions - 1


def test_anchor_group_pins_vertices(bpy, tmp_path):
    volume = random_volume(k=3, num_frames=40, scale=2.0)
    obj = make_baked_plane(tmp_path, volume)
    assert bpy.ops.imagedyn.add_anchor() == {"FINISHED"}
    group = obj.vertex_groups["IDyn_anchor"]
    uv, rest, _, _ = flat_plane_frame(obj)
    still = np.flatnonzero(uv[:, 0] < 0.5)
    group.add(still.tolist(), 0.0, "REPLACE")
    assert all(b.vertex_group == "IDyn_anchor" for b in obj.data.shape_keys.key_blocks[1:])
    got = positions_at(obj, 17)
    assert np.abs(got[still] - rest[still]).max() == 0.0
    moving = np.setdiff1d(np.arange(len(rest)), still)
    assert np.abs(got[moving] - _predicted(volume, obj, 17)[moving]).max() < TOL
    obj.imagedyn.anchor_group = ""
    assert all(b.vertex_group == "" for b in obj.data.shape_keys.key_blocks[1:])


def test_pokes_can_write_arbitrary_modal_coordinates(bpy, tmp_path):
    """The writer a poke simulation uses: arbitrary complex q_k per frame, F = Re(sum_k A_k q_k)."""
    from addon import animation
    from addon.core import mesh

    volume = random_volume(k=4, num_frames=40)
    obj = make_baked_plane(tmp_path, volume)
    frames = np.arange(1, 31, dtype=np.float64)
    rng = np.random.default_rng(7)
    q = rng.normal(size=(4, 30)) + 1j * rng.normal(size=(4, 30))
    animation.write_modal_coordinates(obj, q, frames)
    uv, rest, eu, ev = flat_plane_frame(obj)
    offsets = pinned(mesh.modal_offsets(volume.coeffs, uv, eu, ev), obj).astype(np.float64)  # (K, 2, N, 3)
    for i in (0, 12, 29):
        expected = rest + np.einsum("k,knc->nc", q[:, i].real, offsets[:, 0]) - np.einsum(
            "k,knc->nc", q[:, i].imag, offsets[:, 1])
        assert np.abs(positions_at(obj, int(frames[i])) - expected).max() < TOL
    with pytest.raises(ValueError, match="shape"):
        animation.write_modal_coordinates(obj, q[:3], frames)


def test_plane_from_import_images_as_planes(bpy, tmp_path):
    path = write_image(tmp_path / "wide.png", stripes(80, 40))
    if hasattr(bpy.ops.image, "import_as_mesh_planes"):
        assert bpy.ops.image.import_as_mesh_planes(files=[{"name": "wide.png"}], directory=str(tmp_path)) == {
            "FINISHED"}
    else:  # equivalent plane: 2:1 quad with UVs and an image texture node
        from addon import plane

        me = bpy.data.meshes.new("wide")
        me.from_pydata([(-1, -0.5, 0), (1, -0.5, 0), (1, 0.5, 0), (-1, 0.5, 0)], [], [(0, 1, 2, 3)])
        me.uv_layers.new().data.foreach_set("uv", [0, 0, 1, 0, 1, 1, 0, 1])
        me.materials.append(plane.photo_material(bpy.data.images.load(path)))
        obj = bpy.data.objects.new("wide", me)
        bpy.context.collection.objects.link(obj)
        bpy.context.view_layer.objects.active = obj
    obj = bpy.context.active_object
    before = [tuple(v.co) for v in obj.data.vertices]
    material = obj.active_material
    assert bpy.ops.imagedyn.plane_from_active(columns=17) == {"FINISHED"}
    assert len(obj.data.vertices) == 17 * 9 and obj.active_material == material
    co = np.array([tuple(v.co) for v in obj.data.vertices])
    assert np.allclose(co.min(axis=0), np.min(before, axis=0), atol=1e-6)
    assert np.allclose(co.max(axis=0), np.max(before, axis=0), atol=1e-6)
    from addon.core import spectral

    volume = random_volume(k=3, width=40, height=20, num_frames=30)
    spectral.save_npz(tmp_path / "v.npz", volume)
    assert bpy.ops.imagedyn.load_volume(filepath=str(tmp_path / "v.npz")) == {"FINISHED"}
    assert np.abs(positions_at(obj, 12) - _predicted(volume, obj, 12)).max() < TOL


def test_bad_inputs_give_the_documented_errors(bpy, tmp_path):
    from addon import bake
    from addon.core import spectral

    with pytest.raises(RuntimeError, match="does not exist: choose a photo"):
        bpy.ops.imagedyn.create_plane(filepath=str(tmp_path / "missing.png"))
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(RuntimeError, match="as an image"):
        bpy.ops.imagedyn.create_plane(filepath=str(tmp_path / "notes.png"))
    bpy.ops.mesh.primitive_plane_add()
    with pytest.raises(RuntimeError, match="has no image texture: make it with 'Import Images as Planes'"):
        bpy.ops.imagedyn.plane_from_active()
    with pytest.raises(RuntimeError, match="No spectral volume loaded"):
        bpy.ops.imagedyn.bake()
    (tmp_path / "bad.npz").write_text("hello")
    with pytest.raises(RuntimeError, match=r"Not a usable spectral volume: spectral volume field 'file'"):
        bpy.ops.imagedyn.load_volume(filepath=str(tmp_path / "bad.npz"))
    arrays = dict(np.load(_saved(tmp_path, random_volume(k=2, num_frames=20))))
    arrays["coeffs"] = arrays["coeffs"][:, :3]
    np.savez(tmp_path / "wrong_shape.npz", **arrays)
    with pytest.raises(RuntimeError, match=r"field 'coeffs': must have shape \(K, 4, H, W\)"):
        bpy.ops.imagedyn.load_volume(filepath=str(tmp_path / "wrong_shape.npz"))
    # aspect mismatch: warned and resampled (stretched), the bake still succeeds
    obj = make_baked_plane(tmp_path, random_volume(k=2, width=32, height=32, num_frames=20), name="square")
    volume = spectral.load_npz(tmp_path / "square_volume.npz")
    assert "resampled (stretched) to fit" in bake.aspect_warning(volume, obj)
    assert bake.aspect_warning(random_volume(k=2, width=64, height=40), obj) is None
    assert len(obj.data.shape_keys.key_blocks) == 5


def test_user_key_with_reserved_name_is_refused(bpy, tmp_path):
    obj = make_baked_plane(tmp_path, random_volume(k=2, num_frames=20))
    assert bpy.ops.imagedyn.clear() == {"FINISHED"}
    obj.shape_key_add(name="Basis")
    obj.shape_key_add(name="IDyn_k00_re")
    with pytest.raises(RuntimeError, match="rename it"):
        bpy.ops.imagedyn.bake()
    assert [b.name for b in obj.data.shape_keys.key_blocks] == ["Basis", "IDyn_k00_re"]


def _saved(tmp_path, volume):
    from addon.core import spectral

    path = tmp_path / "ok.npz"
    spectral.save_npz(path, volume)
    return path


def test_loop_starts_at_the_scenes_first_frame(bpy, tmp_path):
    bpy.context.scene.frame_start = 1001
    volume = random_volume(k=3, num_frames=30)
    obj = make_baked_plane(tmp_path, volume)
    assert obj.imagedyn.loop_start == 1001
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (1001, 1030)
    got = positions_at(obj, 1012)
    assert np.abs(got - _predicted(volume, obj, 1012, start=1001)).max() < TOL
    assert np.abs(positions_at(obj, 1001) - positions_at(obj, 1031)).max() < 1e-6
