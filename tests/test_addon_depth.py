"""Depth from motion: the baked plane's vertices are lifted along its front normal by their share of the strongest
motion (RMS over the loop), so that where a moving part folds over a still part the moving part renders in front.
numpy math (no Blender), the IDyn_depth key in headless Blender, and Cycles renders of a fold."""
import numpy as np
import pytest

from addon.core import mesh, spectral

TOL = 1e-4  # object units


def _brute_force_rms(volume, uv, eu, ev, pin=lambda off: off) -> np.ndarray:
    """sqrt(mean_t ||F_t||^2) per vertex over the volume's T frames, from displacements sampled frame by frame
    (``pin``: what the bake does to them, e.g. Pin Edges)."""
    total = np.zeros(uv.shape[0])
    for i in range(volume.num_frames):
        off = pin(mesh.predicted_offsets(volume.coeffs, volume.freqs_hz, i / volume.fps, uv, eu, ev))
        off = off.astype(np.float64)
        total += (off ** 2).sum(axis=1)
    return np.sqrt(total / volume.num_frames)


def _volume(k=4, width=32, height=20, num_frames=60, seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(k, 4, 4, 6)) * scale
    coeffs = spectral.resize_bilinear(coarse, height, width).astype(np.float32)
    return spectral.SpectralVolume(coeffs, fps=30.0, num_frames=num_frames)


def _expected_depth(volume, uv, eu, ev, depth, pin=lambda off: off) -> np.ndarray:
    """Independent prediction of the depth key's offsets (N, 3): brute-force RMS, scaled so the peak is ``depth``."""
    rms = _brute_force_rms(volume, uv, eu, ev, pin)
    return depth * (rms / rms.max())[:, None] * mesh.plane_normal(eu, ev)[None, :]


# ---------------------------------------------------------------------------------------------------------------
# numpy
# ---------------------------------------------------------------------------------------------------------------

def test_rms_motion_is_the_mean_square_displacement_over_the_loop_including_the_constant_band():
    volume = _volume()
    _, _, uv = mesh.grid_topology(9, 6)
    origin, eu, ev = mesh.centered_frame(1.6, 1.0)
    offsets = mesh.modal_offsets(volume.coeffs, uv, eu, ev)
    assert np.allclose(mesh.rms_motion(offsets), _brute_force_rms(volume, uv, eu, ev), rtol=1e-5, atol=1e-9)
    still = volume.coeffs.copy()
    still[1:] = 0.0  # only the constant band (a displaced but still part): rms = |Re A_0|
    off0 = mesh.modal_offsets(still, uv, eu, ev)
    assert np.allclose(mesh.rms_motion(off0), np.linalg.norm(off0[0, 0], axis=-1), atol=1e-9)


def test_depth_offsets_follow_the_front_normal_and_peak_at_depth():
    volume = _volume()
    _, _, uv = mesh.grid_topology(9, 6)
    origin, eu, ev = mesh.centered_frame(1.6, 1.0)
    offsets = mesh.modal_offsets(volume.coeffs, uv, eu, ev)
    lift = mesh.depth_offsets(offsets, eu, ev, 0.002)
    assert lift.shape == (54, 3) and lift.dtype == np.float32
    assert np.array_equal(lift[:, :2], np.zeros((54, 2)))  # along +Z only: x and y untouched
    assert lift[:, 2].max() == pytest.approx(0.002, abs=1e-9) and lift[:, 2].min() > 0.0
    assert np.allclose(lift, _expected_depth(volume, uv, eu, ev, 0.002), atol=1e-7)
    assert np.allclose(mesh.plane_normal(eu, ev), [0.0, 0.0, 1.0])
    assert np.allclose(mesh.plane_normal(-eu, ev), [0.0, 0.0, -1.0])  # mirrored UVs: the photo faces -Z
    assert not mesh.depth_offsets(offsets, eu, ev, 0.0).any()
    assert not mesh.depth_offsets(np.zeros_like(offsets), eu, ev, 0.002).any()  # nothing moves: flat
    with pytest.raises(ValueError, match="degenerate"):
        mesh.plane_normal(eu, 2 * eu)


# ---------------------------------------------------------------------------------------------------------------
# Blender
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture
def bpy():
    from bpy_helpers import fresh_scene

    return fresh_scene(fps=30)


def _frame(obj):
    from bpy_helpers import flat_plane_frame

    return flat_plane_frame(obj)


def _predicted(volume, obj, frame, depth=0.0):
    """Evaluated positions at a scene frame (loop = the volume's T frames, first frame 1), with the depth lift."""
    from bpy_helpers import pinned

    uv, rest, eu, ev = _frame(obj)
    t = (frame - 1) / volume.fps
    out = rest + pinned(mesh.predicted_offsets(volume.coeffs, volume.freqs_hz, t, uv, eu, ev), obj)
    return out + _expected_depth(volume, uv, eu, ev, depth, lambda off: pinned(off, obj)) if depth else out


@pytest.mark.bpy
def test_depth_key_lifts_z_by_the_motion_and_leaves_x_y_alone(bpy, tmp_path):
    from bpy_helpers import make_baked_plane, pinned, positions_at

    from addon import shapekeys

    volume = _volume(num_frames=60)
    obj = make_baked_plane(tmp_path, volume, columns=24)
    assert shapekeys.depth_key(obj) is None  # default 0: off, the plane stays flat
    obj.imagedyn.depth_from_motion = 0.01
    block = shapekeys.depth_key(obj)
    assert block.name == "IDyn_depth" and block.value == 1.0
    assert "IDyn_depth" in obj.data.shape_keys[shapekeys.TAG]
    for frame in (1, 17, 40):
        got = positions_at(obj, frame)
        flat, lifted = _predicted(volume, obj, frame), _predicted(volume, obj, frame, depth=0.01)
        assert np.abs(got[:, :2] - flat[:, :2]).max() < TOL, frame  # x, y: exactly the flat prediction
        assert np.abs(got[:, 2] - lifted[:, 2]).max() < TOL, frame
    rest = _frame(obj)[1]
    lift = np.empty(rest.size, dtype=np.float32)
    block.data.foreach_get("co", lift)
    lift = lift.reshape(-1, 3) - rest
    assert lift[:, 2].max() == pytest.approx(0.01, abs=1e-6) and np.abs(lift[:, :2]).max() == 0.0
    uv, _rest, eu, ev = _frame(obj)
    expected = _expected_depth(volume, uv, eu, ev, 0.01, lambda off: pinned(off, obj))
    assert np.abs(lift - expected).max() < 1e-6  # RMS share, to float precision
    obj.imagedyn.depth_from_motion = 0.004  # a live change rescales the key in place
    assert shapekeys.depth_key(obj) == block and len(obj.data.shape_keys.key_blocks) == 1 + 8 + 1
    assert np.abs(positions_at(obj, 17) - _predicted(volume, obj, 17, depth=0.004)).max() < TOL
    obj.imagedyn.depth_from_motion = 0.0  # 0 removes the key and the lift
    assert shapekeys.depth_key(obj) is None and "IDyn_depth" not in obj.data.shape_keys.key_blocks
    assert "IDyn_depth" not in obj.data.shape_keys[shapekeys.TAG]
    assert np.abs(positions_at(obj, 17) - _predicted(volume, obj, 17)).max() < TOL


@pytest.mark.bpy
def test_depth_survives_rebake_and_clear_keeps_the_users_key(bpy, tmp_path):
    from bpy_helpers import positions_at, stripes, write_image

    from addon import shapekeys
    from addon.core import spectral as spec

    volume = _volume(k=3, num_frames=40)
    img = write_image(tmp_path / "p.png", stripes(64, 40))
    assert bpy.ops.imagedyn.create_plane(filepath=img, columns=20) == {"FINISHED"}
    obj = bpy.context.active_object
    obj.imagedyn.depth_from_motion = 0.004  # set before any bake: nothing to lift yet
    assert obj.data.shape_keys is None
    spec.save_npz(tmp_path / "v.npz", volume)
    assert bpy.ops.imagedyn.load_volume(filepath=str(tmp_path / "v.npz")) == {"FINISHED"}
    user = obj.shape_key_add(name="Bulge", from_mix=False)
    user.value = 0.5
    assert bpy.ops.imagedyn.bake() == {"FINISHED"}
    names = [b.name for b in obj.data.shape_keys.key_blocks]
    assert names.count("IDyn_depth") == 1 and "Bulge" in names and len(names) == 1 + 1 + 6 + 1
    assert np.abs(positions_at(obj, 9) - _predicted(volume, obj, 9, depth=0.004)).max() < TOL
    assert bpy.ops.imagedyn.clear() == {"FINISHED"}
    assert [b.name for b in obj.data.shape_keys.key_blocks] == ["Basis", "Bulge"]
    obj.imagedyn.depth_from_motion = 0.002  # no modal keys: nothing happens
    assert [b.name for b in obj.data.shape_keys.key_blocks] == ["Basis", "Bulge"]
    obj.shape_key_remove(obj.data.shape_keys.key_blocks["Bulge"])
    assert bpy.ops.imagedyn.bake() == {"FINISHED"}
    assert shapekeys.depth_key(obj) is not None
    assert bpy.ops.imagedyn.plane_from_active(columns=12) == {"FINISHED"}  # the depth key counts as the add-on's
    assert obj.data.shape_keys is None and len(obj.data.vertices) == 12 * 8


@pytest.mark.bpy
def test_anchored_vertices_stay_at_the_back_and_reserved_name_is_refused(bpy, tmp_path):
    from bpy_helpers import make_baked_plane, positions_at

    from addon import shapekeys

    volume = _volume(k=3, num_frames=40)
    obj = make_baked_plane(tmp_path, volume)
    obj.imagedyn.depth_from_motion = 0.01
    assert bpy.ops.imagedyn.add_anchor() == {"FINISHED"}
    uv, rest, _eu, _ev = _frame(obj)
    still = np.flatnonzero(uv[:, 0] < 0.5)
    obj.vertex_groups["IDyn_anchor"].add(still.tolist(), 0.0, "REPLACE")
    assert shapekeys.depth_key(obj).vertex_group == "IDyn_anchor"
    got = positions_at(obj, 13)
    assert np.abs(got[still] - rest[still]).max() == 0.0  # pinned: neither moving nor lifted
    moving = np.setdiff1d(np.arange(len(rest)), still)
    assert np.abs(got[moving] - _predicted(volume, obj, 13, depth=0.01)[moving]).max() < TOL
    assert bpy.ops.imagedyn.clear() == {"FINISHED"}
    assert obj.data.shape_keys is None  # depth key and the Basis the add-on made are gone
    obj.shape_key_add(name="Basis")
    obj.shape_key_add(name="IDyn_depth")
    with pytest.raises(RuntimeError, match="rename it"):
        bpy.ops.imagedyn.bake()
    assert [b.name for b in obj.data.shape_keys.key_blocks] == ["Basis", "IDyn_depth"]


# ---------------------------------------------------------------------------------------------------------------
# Cycles: a bright strip swings over a dark still region
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.bpy
def test_cycles_shows_the_moving_strip_in_front_where_it_folds_over_still_photo(bpy, tmp_path):
    from bpy_helpers import write_image
    from test_addon_render import H, W, _render, _setup_scene

    photo = np.full((H, W, 3), 0.1, dtype=np.float32)
    photo[:, 24:32] = 1.0  # bright strip, 8 px wide
    coeffs = np.zeros((2, 4, H, W), dtype=np.float32)
    coeffs[1, 0, :, 20:36] = 14.0  # columns 20..35 sway +-14 px (band 1); the rest of the photo is still
    volume = spectral.SpectralVolume(coeffs, fps=30, num_frames=40)
    assert bpy.ops.imagedyn.create_plane(filepath=write_image(tmp_path / "strip.png", photo), columns=33) == {
        "FINISHED"}
    obj = bpy.context.active_object
    spectral.save_npz(tmp_path / "v.npz", volume)
    assert bpy.ops.imagedyn.load_volume(filepath=str(tmp_path / "v.npz")) == {"FINISHED"}
    _setup_scene(bpy)
    scene = bpy.context.scene
    renders = {}
    for depth in (0.0, 0.002):
        obj.imagedyn.depth_from_motion = depth
        for frame in (1, 11, 21):  # +14 px (folds right), 0 px (unfolded), -14 px (folds left)
            scene.frame_set(frame)
            renders[depth, frame] = _render(bpy, tmp_path / f"d{depth}_f{frame:04d}.png")
    strip = np.s_[:, 38:45]  # where the strip lands at +14 px (photo columns 24..31)
    strip_left = np.s_[:, 10:17]  # ... and at -14 px
    for frame, region in ((1, strip), (21, strip_left)):  # in front: every pixel bright (the pixel filter and
        lit = renders[0.002, frame][region]  # 4 samples blur the 1.0 edges down to about 0.8)
        assert lit.mean() > 0.95 and lit.min() > 0.7, frame
    assert renders[0.002, 1][:, 24:32].max() < 0.15  # the strip really left its place in the photo
    # Without depth the folded triangles are coplanar and Cycles' tie-break decides, pixel by pixel: here the still
    # photo covers the strip in places (seen on Blender 4.2 and 5.0).
    assert min(renders[0.0, 1][strip].min(), renders[0.0, 21][strip_left].min()) < 0.15
    # Front-on (the camera looks along the normal) the lift is invisible where nothing folds.
    assert np.array_equal(renders[0.0, 11], renders[0.002, 11])
    still = np.s_[:, 50:]
    assert np.array_equal(renders[0.0, 1][still], renders[0.002, 1][still])
