"""addon/core/mesh.py: grids, UV <-> pixel mapping, modal offsets and key values (numpy only, no Blender)."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from addon.core import mesh, spectral


def test_default_grid_is_one_vertex_per_two_working_pixels_with_photo_aspect():
    assert mesh.default_grid_size(1920, 1200) == (128, 80)  # 127 * 1200 / 1920 = 79.4 -> 79 cells
    assert mesh.default_grid_size(256, 160, 256) == (256, 160)
    assert mesh.default_grid_size(100, 1, 4) == (4, 2)  # never fewer than 2 x 2
    with pytest.raises(ValueError):
        mesh.default_grid_size(0, 10)


def test_grid_topology_faces_uvs_and_orientation():
    loop_vertex, loop_start, uv = mesh.grid_topology(4, 3)
    assert loop_vertex.shape == (2 * 3 * 4,) and loop_start.tolist() == [0, 4, 8, 12, 16, 20]
    assert uv.shape == (12, 2)
    assert uv[0].tolist() == [0.0, 0.0] and uv[3].tolist() == [1.0, 0.0] and uv[-1].tolist() == [1.0, 1.0]
    co = mesh.grid_positions(uv, *mesh.centered_frame(2.0, 1.0))
    quad = co[loop_vertex[:4]]
    normal = np.cross(quad[1] - quad[0], quad[3] - quad[0])
    assert normal[2] > 0  # counter-clockwise seen from +Z: the photo faces the default front camera
    assert np.allclose(co.min(axis=0), [-1.0, -0.5, 0.0]) and np.allclose(co.max(axis=0), [1.0, 0.5, 0.0])


def test_fit_uv_frame_recovers_a_rotated_plane_and_flags_curved_meshes():
    _, _, uv = mesh.grid_topology(5, 4)
    origin, eu, ev = np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.0, 0.5]), np.array([0.0, -0.1, 1.2])
    co = mesh.grid_positions(uv, origin, eu, ev)
    o, a, b, residual = mesh.fit_uv_frame(co, uv)
    assert np.allclose(o, origin, atol=1e-6) and np.allclose(a, eu, atol=1e-6) and np.allclose(b, ev, atol=1e-6)
    assert residual < 1e-5
    bent = co.copy()
    bent[:, 0] += (uv[:, 0] - 0.5) ** 2
    assert mesh.fit_uv_frame(bent, uv)[3] > 0.05
    with pytest.raises(ValueError, match="degenerate"):
        mesh.fit_uv_frame(co[:4], np.zeros((4, 2)))


def test_uv_to_pixels_puts_v1_at_the_top_row():
    x, y = mesh.uv_to_pixels(np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]), 256, 160)
    assert x.tolist() == [0.0, 256.0, 128.0] and y.tolist() == [0.0, 160.0, 80.0]


def test_pixels_to_object_flips_y_and_scales_by_plane_size():
    eu, ev = np.array([2.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    off = mesh.pixels_to_object(np.array([16.0, 0.0]), np.array([0.0, 10.0]), eu, ev, 32, 20)
    assert np.allclose(off, [[1.0, 0.0, 0.0], [0.0, -0.5, 0.0]])  # 10 px down = half the height down


def test_modal_offsets_reproduce_the_displacement_at_any_time():
    rng = np.random.default_rng(3)
    vol = spectral.SpectralVolume(rng.normal(size=(5, 4, 12, 18)).astype(np.float32), fps=30, num_frames=40)
    _, _, uv = mesh.grid_topology(9, 7)
    frame = mesh.centered_frame(1.5, 1.0)
    offsets = mesh.modal_offsets(vol.coeffs, uv, frame[1], frame[2])  # (K, 2, N, 3)
    assert offsets.shape == (5, 2, 63, 3)
    for t_frame in (0, 7, 23, 40):
        q, _ = spectral.loop_coordinates(vol.k, [t_frame], vol.num_frames)  # (1, K)
        v_re, v_im = mesh.modal_key_values(q.T)
        shape = np.einsum("k,knc->nc", v_re[:, 0], offsets[:, 0]) + np.einsum("k,knc->nc", v_im[:, 0], offsets[:, 1])
        expected = mesh.predicted_offsets(vol.coeffs, vol.freqs_hz, t_frame / vol.fps, uv, frame[1], frame[2])
        assert np.abs(shape - expected).max() < 1e-5


def test_modal_key_values_sign_convention():
    q = np.array([[1 + 2j, -0.5j]])
    v_re, v_im = mesh.modal_key_values(q)
    assert v_re.tolist() == [[1.0, 0.0]] and v_im.tolist() == [[-2.0, 0.5]]
    a = 0.3 - 1.7j  # Re(A q) = Re A * value_re + Im A * value_im
    assert np.allclose(np.real(a * q), a.real * v_re + a.imag * v_im)


def test_loop_lengths_round_to_whole_frames():
    assert mesh.loop_length(150, 30.0, 24.0) == 120
    assert mesh.loop_length(150, 30.0, 30.0, speed=0.5) == 300
    assert mesh.effective_loop(150, 2.0) == 75 and mesh.effective_loop(3, 10.0) == 2
    with pytest.raises(ValueError):
        mesh.effective_loop(150, 0.0)


def test_bezier_keyframes_interpolate_a_sine_between_keys():
    frames = np.arange(0, 31, dtype=np.float64)
    w = 2 * np.pi / 30
    co, hl, hr = mesh.bezier_keyframes(frames, np.cos(w * frames)[None], (-w * np.sin(w * frames))[None])
    assert co.shape == (1, 31, 2) and np.allclose(co[0, :, 1], np.cos(w * frames), atol=1e-6)
    # cubic Bezier between keys 3 and 4 at its middle
    p0, p1, p2, p3 = co[0, 3], hr[0, 3], hl[0, 4], co[0, 4]
    mid = 0.125 * p0 + 0.375 * p1 + 0.375 * p2 + 0.125 * p3
    assert abs(mid[0] - 3.5) < 1e-6 and abs(mid[1] - np.cos(w * 3.5)) < 1e-4


def test_core_mesh_imports_without_bpy():
    code = "import sys, addon, addon.core.mesh; assert 'bpy' not in sys.modules; print('ok')"
    root = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(root))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
