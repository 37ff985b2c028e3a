"""The numpy side of steering the motion (no bpy): wind arrows transform the spectral volume, Pin Edges keeps a
plane's border on its edges, and the motion brush's weights become a hint image through the plane's UVs."""
import io
import math

import numpy as np
import pytest

from addon.core import edges, heat, hint, mesh, png, protocol, spectral, wind

H, W = 80, 128


def smooth_volume(k=8, seed=0, x_scale=1.0, y_scale=1.0, height=H, width=W):
    rng = np.random.default_rng(seed)
    coeffs = spectral.resize_bilinear(rng.normal(size=(k, 4, 4, 6)), height, width).astype(np.float32)
    coeffs[:, 0:2] *= x_scale
    coeffs[:, 2:4] *= y_scale
    return coeffs


def axis_deg(cov) -> np.ndarray:
    return np.degrees(wind.dominant_angle(cov))


def axis_error(angle_deg, target_deg):
    return np.abs((np.asarray(angle_deg) - target_deg + 90.0) % 180.0 - 90.0)


def distance(arrow, height=H, width=W, aspect=1.0):
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    return np.hypot((xx - arrow.x) * aspect, yy - arrow.y)


# ----------------------------------------------------------------------------------------------------------------
# Wind arrows
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("direction_deg", [0.0, 30.0, 90.0, -60.0])
def test_wind_turns_the_dominant_axis_to_the_arrow_near_it_and_leaves_far_pixels_bit_for_bit(direction_deg):
    coeffs = smooth_volume(y_scale=0.2)  # mostly horizontal motion
    rad = math.radians(direction_deg)
    arrow = wind.WindArrow(x=40, y=40, dx=math.cos(rad), dy=math.sin(rad), radius=30)
    out = wind.apply_arrows(coeffs, [arrow])
    r = distance(arrow)
    near, far = r <= 0.5 * arrow.radius, r >= arrow.radius
    cov = wind.motion_covariance(out)
    assert axis_error(axis_deg(cov[:, near].sum(axis=1)), direction_deg) < 1.0  # the region: on the arrow
    assert np.percentile(axis_error(axis_deg(cov[:, near]), direction_deg), 100) < 10.0  # every pixel near it
    assert np.array_equal(out[:, :, far], coeffs[:, :, far])  # far regions unchanged, exactly
    before = wind.motion_covariance(coeffs)[[0, 2]].sum(axis=0)[near].sum()
    after = cov[[0, 2]].sum(axis=0)[near].sum()
    assert after == pytest.approx(before, rel=0.05)  # the motion's energy is kept


def test_wind_is_a_per_pixel_linear_map_of_the_trajectory_so_the_loop_stays_a_loop():
    coeffs = smooth_volume(k=6)
    arrow = wind.WindArrow(x=64, y=40, dx=0.0, dy=1.0, radius=50, strength=0.7)
    out = wind.apply_arrows(coeffs, [arrow])
    freqs = spectral.frequencies(6, 30.0, 60)
    found = wind.arrow_matrices(arrow, coeffs.astype(np.float64))
    ys, xs, m, _w = found
    for t in (0.0, 0.37, 1.1):
        before = spectral.displacement_at(coeffs, freqs, t)[:, ys, xs]  # (2, h, w)
        after = spectral.displacement_at(out, freqs, t)[:, ys, xs]
        assert np.allclose(np.einsum("ijhw,jhw->ihw", m, before), after, atol=1e-4)
    t0 = spectral.displacement_at(out, freqs, 0.0)
    t_loop = spectral.displacement_at(out, freqs, 2.0)  # 60 frames at 30 fps: one loop later
    assert np.allclose(t0, t_loop, atol=1e-4)


def test_wind_strength_zero_changes_nothing_and_weight_falls_off_smoothly():
    coeffs = smooth_volume()
    assert np.array_equal(wind.apply_arrows(coeffs, [wind.WindArrow(30, 30, 1, 0, 20, strength=0.0)]), coeffs)
    s = np.array([0.0, 0.5, 0.75, 1.0, 1.5])
    assert np.allclose(wind.falloff(s), [1.0, 1.0, 0.5, 0.0, 0.0])
    with pytest.raises(ValueError, match="direction"):
        wind.WindArrow(1, 1, 0, 0, 5)
    with pytest.raises(ValueError, match="radius"):
        wind.WindArrow(1, 1, 1, 0, 0)


def test_wind_measures_angles_on_the_photo_when_map_pixels_are_not_square():
    aspect = 2.0  # each map pixel is twice as wide as tall on the plane
    coeffs = smooth_volume(y_scale=0.2)
    arrow = wind.WindArrow(x=30, y=40, dx=1.0 / aspect, dy=1.0, radius=30)  # 45 degrees on the photo
    out = wind.apply_arrows(coeffs, [arrow], pixel_aspect=aspect)
    near = distance(arrow, aspect=aspect) <= 15
    photo = out.astype(np.float64).copy()
    photo[:, 0:2] *= aspect
    assert axis_error(axis_deg(wind.motion_covariance(photo)[:, near].sum(axis=1)), 45.0) < 1.0


def test_overlapping_arrows_apply_in_order_the_later_one_wins():
    coeffs = smooth_volume()
    first = wind.WindArrow(60, 40, 1, 0, 40)
    second = wind.WindArrow(64, 40, 0, 1, 20)
    out = wind.apply_arrows(coeffs, [first, second])
    near_second = distance(second) <= 10
    assert axis_error(axis_deg(wind.motion_covariance(out)[:, near_second].sum(axis=1)), 90.0) < 1.0


# ----------------------------------------------------------------------------------------------------------------
# Pin Edges
# ----------------------------------------------------------------------------------------------------------------

def test_edge_factors_are_zero_on_the_border_and_one_from_a_few_rows_in():
    _lv, _ls, uv = mesh.grid_topology(17, 11)
    f = edges.edge_factors(uv, rows=4)
    cols = np.round(uv[:, 0] * 16).astype(int)
    rows = np.round(uv[:, 1] * 10).astype(int)
    assert np.all(f[cols == 0, 0] == 0) and np.all(f[cols == 16, 0] == 0)
    assert np.all(f[rows == 0, 1] == 0) and np.all(f[rows == 10, 1] == 0)
    assert np.all(f[(cols >= 4) & (cols <= 12), 0] == 1)
    assert np.allclose(f[cols == 2, 0], 0.5)  # halfway through the blend
    assert np.all(np.diff(f[rows == 5, 0][:9]) >= 0)  # rising smoothly inward
    assert np.array_equal(edges.edge_factors(uv, rows=0), np.ones_like(f))


def test_pinned_offsets_keep_only_the_motion_along_the_edge_on_a_rotated_plane():
    _lv, _ls, uv = mesh.grid_topology(9, 6)
    rot = np.array([[0.6, -0.8, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])
    eu, ev = rot @ np.array([1.6, 0, 0]), rot @ np.array([0.3, 1.0, 0])  # rotated and sheared
    coeffs = smooth_volume(k=3, height=12, width=18)
    free = mesh.modal_offsets(coeffs, uv, eu, ev)  # (K, 2, N, 3)
    pinned = mesh.modal_offsets(coeffs, uv, eu, ev, factors=edges.edge_factors(uv, rows=2))
    left = uv[:, 0] == 0
    bottom = uv[:, 1] == 0
    corner = left & bottom
    n_left = np.cross(ev, [0, 0, 1.0])
    n_left /= np.linalg.norm(n_left)
    n_bottom = np.cross([0, 0, 1.0], eu)
    n_bottom /= np.linalg.norm(n_bottom)
    size = np.linalg.norm(ev)
    assert np.abs(free[..., left, :] @ n_left).max() > 0.01 * size  # without pins the edge opens
    assert np.abs(pinned[..., left, :] @ n_left).max() < 1e-6 * size
    assert np.abs(pinned[..., bottom, :] @ n_bottom).max() < 1e-6 * size
    assert np.abs(pinned[..., corner, :]).max() < 1e-6 * size
    along = pinned[..., left, :] @ (ev / size)  # the left edge still slides along itself
    assert np.abs(along).max() > 0.01 * size
    inner = (uv[:, 0] >= 0.25) & (uv[:, 0] <= 0.75) & (uv[:, 1] >= 0.4) & (uv[:, 1] <= 0.6)
    assert np.array_equal(pinned[..., inner, :], free[..., inner, :])


# ----------------------------------------------------------------------------------------------------------------
# Motion brush hint
# ----------------------------------------------------------------------------------------------------------------

def grid_triangles(columns, rows, uv=None):
    """Corner UVs (T, 3, 2) and vertex indices (T, 3) of a grid (two triangles per quad)."""
    loop_vertex, _ls, grid_uv = mesh.grid_topology(columns, rows)
    uv = grid_uv if uv is None else uv
    quads = loop_vertex.reshape(-1, 4)
    tris = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    return uv[tris], tris


def decode(data: bytes) -> np.ndarray:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    assert image.mode == "L"
    return np.asarray(image, dtype=np.float64) / 255.0


def test_a_stripe_painted_at_the_top_of_the_photo_is_at_the_top_of_the_hint():
    _lv, _ls, uv = mesh.grid_topology(33, 21)
    weights = (uv[:, 1] >= 0.75).astype(float)  # the top quarter moves
    tri_uv, tris = grid_triangles(33, 21)
    width, height = hint.hint_size(640, 400)
    assert (width, height) == (256, 160)
    mask, report = hint.moves_hint(tri_uv, weights[tris], width, height)
    assert mask.shape == (160, 256) and report.covered == 1.0 and not report.warnings()
    image = decode(png.encode_mask(mask))
    assert np.all(image[:40] == 1.0) and np.all(image[48:] == 0.0)  # v >= 0.75 = rows 0..39 = top of the photo
    assert np.all(np.diff(image[:, 100]) <= 1e-9)  # one ramp between (bilinear across the vertex row)


def test_mirrored_and_cropped_uvs_put_each_weight_on_the_part_of_the_photo_it_shows():
    _lv, _ls, uv = mesh.grid_topology(17, 11)
    weights = (uv[:, 0] <= 0.25).astype(float)  # the plane's left quarter moves
    mirrored = uv.copy()
    mirrored[:, 0] = 1.0 - mirrored[:, 0]  # the plane shows the photo flipped left-right
    tri_uv, tris = grid_triangles(17, 11, mirrored)
    mask, report = hint.moves_hint(tri_uv, weights[tris], 64, 40)
    assert report.covered == 1.0
    assert np.all(mask[:, 50:] == 1.0) and np.all(mask[:, :44] == 0.0)  # on the photo's right side
    cropped = uv * 0.5 + 0.25  # the plane shows the middle of the photo only
    tri_uv, tris = grid_triangles(17, 11, cropped)
    mask, report = hint.moves_hint(tri_uv, weights[tris], 64, 40)
    assert report.covered == pytest.approx(0.25, abs=0.03)
    assert any("shows only 25% of the photo" in w for w in report.warnings())
    assert mask[20, 5] == 1.0 and mask[20, 60] == 0.0  # outside the shown part: the nearest painted weight


def test_overlapping_islands_and_uvs_outside_the_photo_are_reported():
    _lv, _ls, uv = mesh.grid_topology(9, 9)
    tri_uv, tris = grid_triangles(9, 9)
    weights = (uv[:, 0] > 0.5).astype(float)
    folded = tri_uv.copy()
    folded[..., 0] = np.minimum(folded[..., 0], 1.0 - folded[..., 0]) * 2.0  # both halves on the whole photo
    _mask, report = hint.moves_hint(folded, weights[tris], 32, 32)
    assert report.overlap > 0.5 and any("overlap" in w for w in report.warnings())
    outside = tri_uv * 2.0 - 0.5  # half the plane's UV area beyond the photo
    _mask, report = hint.moves_hint(outside, weights[tris], 32, 32)
    assert report.outside == pytest.approx(0.75, abs=0.01) and any("outside the photo" in w for w in report.warnings())
    with pytest.raises(hint.HintError, match="degenerate"):
        hint.moves_hint(np.zeros((2, 3, 2)), np.ones((2, 3)), 8, 8)
    with pytest.raises(hint.HintError, match="outside 0..1"):
        hint.moves_hint(tri_uv + 5.0, weights[tris], 8, 8)


def test_painted_but_all_zero_weights_are_refused_with_what_to_do():
    assert not hint.is_painted(np.zeros(5, bool)) and hint.is_painted(np.array([0, 1, 0], bool))
    with pytest.raises(hint.HintError, match="weight is 0 everywhere, so nothing would move"):
        hint.check_weights(np.zeros(10), "IDyn_moves")
    hint.check_weights(np.array([0.0, 0.2]), "IDyn_moves")


def test_predict_body_carries_the_hint_only_when_there_is_one():
    params = protocol.PredictParams(steps=3)
    plain = protocol.predict_body(b"photo", params)
    assert set(plain) == {"image", "params"} and plain["params"]["steps"] == 3
    with_hint = protocol.predict_body(b"photo", params, moves=b"png")
    assert with_hint["moves"] == "cG5n" and with_hint["image"] == plain["image"]
    refused = protocol.moves_refused(protocol.BackendError("invalid_moves", "all black: nothing would move", 422))
    assert refused.message == "The backend refused the motion brush's hint: all black: nothing would move"
    old = protocol.moves_refused(protocol.BackendError("invalid_request", "Invalid request: moves: Extra inputs"))
    assert old.code == "moves_unsupported" and "update the backend" in old.message
    other = protocol.BackendError("busy", "queue full")
    assert protocol.moves_refused(other) is other


def test_edge_opening_script_reports_the_free_border_and_zero_with_pin_edges(tmp_path, capsys):
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))
    import edge_opening

    coeffs = np.zeros((2, 4, 20, 32), np.float32)
    coeffs[1, 0] = 2.0  # 2 px left-right sway of everything: the left edge swings 2 px (10% of 20) inward
    spectral.save_npz(tmp_path / "v.npz", spectral.SpectralVolume(coeffs, fps=30.0, num_frames=40))
    assert edge_opening.main([str(tmp_path / "v.npz"), "--columns", "17"]) == 0
    free, pinned = capsys.readouterr().out.strip().splitlines()
    assert "left 10.0%  right 10.0%  bottom 0.0%  top 0.0%" in free
    assert "left 0.0%  right 0.0%  bottom 0.0%  top 0.0%" in pinned


def test_gentle_motion_note_suggests_the_amplitude_that_makes_the_motion_visible():
    coeffs = np.zeros((16, 4, 160, 256), np.float32)
    coeffs[2, 0, 40:120, 60:200] = 0.2  # Re x of 0.4 Hz: RMS 0.2 / sqrt(2) = 0.141 px = 0.088% of 160 px
    note = heat.gentle_motion_note(coeffs)
    assert "0.09% of the photo's height" in note and "Amplitude in the Loop panel, e.g. to 10" in note  # capped
    coeffs[2, 0, 40:120, 60:200] = 0.5  # 0.221% of the height: x 4.5 reaches 1%
    assert heat.gentle_motion_note(coeffs).endswith("e.g. to 5")
    coeffs[2, 0, 40:120, 60:200] = 2.0  # 0.88%: visible as it is, no note
    assert heat.gentle_motion_note(coeffs) == ""
    assert "zero everywhere" in heat.gentle_motion_note(np.zeros((16, 4, 8, 8), np.float32))
