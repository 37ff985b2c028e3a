"""The spectral-volume contract: numpy math, torch twin agreement, .npz schema."""
import zipfile

import numpy as np
import pytest
import torch

from addon.core import spectral as S
from backend import spectral as TS

RNG = np.random.default_rng(7)


def random_traj(t=40, h=6, w=9):
    return RNG.normal(size=(t, 2, h, w)).astype(np.float32)


def random_coeffs(k=5, h=6, w=9):
    return RNG.normal(size=(k, 4, h, w)).astype(np.float32)


def test_pure_sinusoid_lands_in_its_bin_only():
    t, fps, k_true = 150, 30.0, 3
    f = k_true * fps / t
    frames = np.arange(t) / fps
    traj = np.zeros((t, 2, 4, 5), np.float32)
    traj[:, 0] = (2.5 * np.cos(2 * np.pi * f * frames + 0.7))[:, None, None]
    traj[:, 1] = (-1.25 * np.sin(2 * np.pi * f * frames))[:, None, None]
    vol = S.SpectralVolume.from_trajectories(traj, k=16, fps=fps)
    amp = np.abs(S.to_complex(vol.coeffs))  # (K, 2, H, W)
    np.testing.assert_allclose(amp[k_true, 0], 2.5, atol=1e-5)
    np.testing.assert_allclose(amp[k_true, 1], 1.25, atol=1e-5)
    others = np.delete(amp, k_true, axis=0)
    assert others.max() < 1e-5
    np.testing.assert_allclose(np.angle(S.to_complex(vol.coeffs)[k_true, 0]), 0.7, atol=1e-5)


def test_full_band_round_trip_is_exact():
    traj = random_traj(t=21)  # odd T: K = (T+1)//2 bins hold every frequency
    coeffs = S.trajectories_to_spectral(traj, k=S.max_bins(21))
    back = S.spectral_to_trajectories(coeffs, 21)
    np.testing.assert_allclose(back, traj, atol=1e-5)


def test_band_limited_round_trip_is_exact():
    coeffs = random_coeffs(k=16)
    coeffs[0, 1] = 0  # A_0 is real for real trajectories
    coeffs[0, 3] = 0
    traj = S.spectral_to_trajectories(coeffs, 150)
    np.testing.assert_allclose(S.trajectories_to_spectral(traj, k=16), coeffs, atol=1e-5)


def test_reconstruction_is_periodic_and_matches_formula():
    vol = S.SpectralVolume(random_coeffs(), fps=24.0, num_frames=48)
    d0 = vol.displacement_at_frame(0)
    np.testing.assert_allclose(vol.displacement_at_frame(48), d0, atol=1e-4)
    assert np.abs(vol.displacement_at_frame(12) - d0).max() > 1e-2
    t = 0.37
    a = S.to_complex(vol.coeffs)
    manual = sum(np.real(a[k] * np.exp(2j * np.pi * vol.freqs_hz[k] * t)) for k in range(vol.k))
    np.testing.assert_allclose(vol.displacement(t), manual, atol=1e-5)
    many = vol.displacement(np.array([0.0, t, 2.0]))
    assert many.shape == (3, 2, 6, 9)
    np.testing.assert_allclose(many[1], manual, atol=1e-5)


def test_resample_scales_amplitudes_with_size():
    coeffs = np.ones((2, 4, 10, 20), np.float32)
    out = S.resample(coeffs, width=40, height=5)
    assert out.shape == (2, 4, 5, 40)
    np.testing.assert_allclose(out[:, 0:2], 2.0)
    np.testing.assert_allclose(out[:, 2:4], 0.5)
    # resampling to the same size is the identity; a volume already at that size is returned as it is
    c = random_coeffs()
    np.testing.assert_allclose(S.resample(c, 9, 6), c, atol=1e-6)
    vol = S.SpectralVolume(c)
    assert vol.resampled(9, 6) is vol and vol.resampled(18, 6).coeffs.shape == (5, 4, 6, 18)


def test_sample_bilinear_hits_pixel_centres_and_interpolates():
    c = random_coeffs(k=2, h=4, w=5)
    xs = np.array([0.5, 4.5, 2.5])
    ys = np.array([0.5, 3.5, 1.5])
    out = S.sample_bilinear(c, xs, ys)
    np.testing.assert_allclose(out[..., 0], c[:, :, 0, 0], atol=1e-6)
    np.testing.assert_allclose(out[..., 1], c[:, :, 3, 4], atol=1e-6)
    np.testing.assert_allclose(out[..., 2], c[:, :, 1, 2], atol=1e-6)
    mid = S.sample_bilinear(c, np.array([1.0]), np.array([0.5]))[..., 0]
    np.testing.assert_allclose(mid, 0.5 * (c[:, :, 0, 0] + c[:, :, 0, 1]), atol=1e-6)


def test_normalization_round_trip_and_percentile():
    sigma = np.linspace(0.1, 5, 16)
    data = RNG.normal(scale=sigma[None, :, None, None, None], size=(3, 16, 4, 16, 16))
    s = S.normalization_scales(data)
    assert s.shape == (16,)
    np.testing.assert_allclose(s, 1.96 * sigma, rtol=0.1)  # 95th percentile of |N(0, sigma)|
    z = S.normalize(data[0], s)
    assert np.mean(np.abs(z) <= 1.0) > 0.9  # ~95% of values fall inside [-1, 1]
    np.testing.assert_allclose(S.denormalize(z, s), data[0], rtol=1e-5, atol=1e-6)


# --- torch twin agrees with numpy ----------------------------------------------------------------------------------

def test_torch_and_numpy_agree():
    traj = random_traj(t=30)
    c_np = S.trajectories_to_spectral(traj, k=8)
    c_t = TS.trajectories_to_spectral(torch.from_numpy(traj), k=8)
    np.testing.assert_allclose(c_t.numpy(), c_np, atol=1e-5)

    freqs = S.frequencies(8, 30.0, 30)
    times = np.array([0.0, 0.13, 0.5, 0.99])
    np.testing.assert_allclose(TS.displacement_at(c_t, freqs, torch.tensor(times)).numpy(),
                               S.displacement_at(c_np, freqs, times), atol=1e-5)
    np.testing.assert_allclose(TS.displacement_at(c_t, freqs, 0.13).numpy(),
                               S.displacement_at(c_np, freqs, 0.13), atol=1e-5)
    np.testing.assert_allclose(TS.spectral_to_trajectories(c_t, 30).numpy(),
                               S.spectral_to_trajectories(c_np, 30), atol=1e-5)
    for w, h in ((13, 4), (20, 17), (9, 6)):
        np.testing.assert_allclose(TS.resample(c_t, w, h).numpy(), S.resample(c_np, w, h), atol=1e-5)
    batch = torch.stack([c_t, 2 * c_t])
    s_np = S.normalization_scales(np.stack([c_np, 2 * c_np]))
    s_t = TS.normalization_scales(batch)
    np.testing.assert_allclose(s_t.numpy(), s_np, rtol=1e-5)
    np.testing.assert_allclose(TS.normalize(c_t, s_t).numpy(), S.normalize(c_np, s_np), atol=1e-5)
    z = S.normalize(c_np, s_np)
    np.testing.assert_allclose(TS.denormalize(torch.from_numpy(z), s_t).numpy(), S.denormalize(z, s_np),
                               atol=1e-5)
    np.testing.assert_array_equal(TS.from_complex(TS.to_complex(c_t)).numpy(), c_t.numpy())


def test_torch_batched_trajectories():
    traj = torch.from_numpy(np.stack([random_traj(t=20), random_traj(t=20)]))
    out = TS.trajectories_to_spectral(traj, k=4)
    assert out.shape == (2, 4, 4, 6, 9)
    np.testing.assert_allclose(out[1].numpy(), S.trajectories_to_spectral(traj[1].numpy(), k=4), atol=1e-5)


# --- motion: modal coordinates, mean-square displacement, loops (both twins) ----------------------------------------

def test_twins_agree_on_modal_displacement_and_mean_square_displacement():
    c_np = random_coeffs(k=6, h=5, w=7)
    c_np[0, 1], c_np[0, 3] = 0.7, -0.4  # Im A_0 != 0: it must not count anywhere
    c_t = torch.from_numpy(c_np)
    q = RNG.normal(size=(4, 6)) + 1j * RNG.normal(size=(4, 6))  # (N, K)
    np.testing.assert_allclose(TS.modal_displacement(c_t, q).numpy(), S.modal_displacement(c_np, q), atol=1e-5)
    np.testing.assert_array_equal(TS.modal_displacement(c_t, torch.from_numpy(q)).numpy(),
                                  TS.modal_displacement(c_t, q).numpy())
    np.testing.assert_allclose(TS.mean_square_displacement(c_t).numpy(), S.mean_square_displacement(c_np),
                               rtol=1e-6)
    assert S.mean_square_displacement(c_np).dtype == np.float32 and TS.mean_square_displacement(c_t).dtype == \
        torch.float32
    assert S.mean_square_displacement(c_np.astype(np.float64)).dtype == np.float64
    batch = torch.stack([c_t, -2.0 * c_t])  # leading batch axes
    out = TS.modal_displacement(batch, q)
    assert out.shape == (2, 4, 2, 5, 7)
    np.testing.assert_allclose(out[1].numpy(), -2.0 * out[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(TS.mean_square_displacement(batch)[1].numpy(),
                               4.0 * TS.mean_square_displacement(c_t).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="K=6"):
        S.modal_displacement(c_np, q[:, :5])
    with pytest.raises(ValueError, match="K=6"):
        TS.modal_displacement(c_t, q[:, :5])


def test_twins_agree_on_displacement_at_long_times_and_in_batches():
    coeffs = (RNG.normal(size=(16, 4, 10, 14)) * 3).astype(np.float32)
    vol = S.SpectralVolume(coeffs, fps=30, num_frames=150)
    frames = np.array([0, 1, 7, 75, 149, 150, 1000, 100000])
    ours = TS.displacement_at(torch.from_numpy(coeffs), vol.freqs_hz, frames / vol.fps).numpy()
    assert np.abs(ours - vol.displacement_at_frame(frames)).max() < 1e-5  # phases in float64: no drift
    np.testing.assert_allclose(ours[5], ours[0], atol=1e-4)  # frame 150 closes the loop (float32 freqs_hz)
    batch = torch.stack([torch.from_numpy(coeffs), torch.zeros_like(torch.from_numpy(coeffs))])
    out = TS.displacement_at(batch, vol.freqs_hz, [0.1, 0.2, 0.3])
    assert out.shape == (2, 3, 2, 10, 14) and out[1].abs().max() == 0
    np.testing.assert_allclose(out[0].numpy(), vol.displacement([0.1, 0.2, 0.3]), atol=1e-5)
    assert TS.displacement_at(batch, vol.freqs_hz, 0.1).shape == (2, 2, 10, 14)


def test_displacement_at_is_the_modal_displacement_of_the_harmonics():
    c = random_coeffs(k=5)
    freqs, times = S.frequencies(5, 24.0, 48), np.array([0.0, 0.3, 1.7])
    q = np.exp(2j * np.pi * np.multiply.outer(times, freqs.astype(np.float64)))  # (N, K)
    np.testing.assert_array_equal(S.displacement_at(c, freqs, times), S.modal_displacement(c, q))
    np.testing.assert_allclose(TS.displacement_at(torch.from_numpy(c), freqs, times).numpy(),
                               TS.modal_displacement(torch.from_numpy(c), q).numpy(), atol=1e-6)


def test_mean_square_displacement_is_the_mean_over_the_loop_and_ignores_im_a0():
    vol = S.SpectralVolume(random_coeffs(k=6), fps=20.0, num_frames=40)
    vol.coeffs[0, 0], vol.coeffs[0, 2] = 0.5, -0.3  # a constant offset counts: it sits over what it covers
    vol.coeffs[0, 1], vol.coeffs[0, 3] = 2.0, 1.0  # Im A_0 moves nothing
    traj = vol.trajectories().astype(np.float64)  # (T, 2, H, W)
    expected = (traj ** 2).sum(axis=1).mean(axis=0)
    np.testing.assert_allclose(S.mean_square_displacement(vol.coeffs), expected, rtol=1e-5)
    np.testing.assert_allclose(TS.mean_square_displacement(torch.from_numpy(vol.coeffs)).numpy(), expected,
                               rtol=1e-5)
    # any even number of channels: [Re, Im] of x, y and a third component z
    z = random_coeffs(k=6)[:, :2]
    xyz = np.concatenate([vol.coeffs, z], axis=1)  # (K, 6, H, W)
    z_only = np.concatenate([z, np.zeros_like(z)], axis=1)
    np.testing.assert_allclose(S.mean_square_displacement(xyz), S.mean_square_displacement(vol.coeffs)
                               + S.mean_square_displacement(z_only), rtol=1e-6)


def test_loop_coordinates_are_periodic_shifted_and_the_volume_formula():
    frames = np.arange(0, 121, dtype=np.float64)
    q, dq = S.loop_coordinates(16, frames, 120, amplitude=0.5, phase_frame=10)
    assert q.shape == dq.shape == (121, 16)  # (N frames, K bands), as everywhere
    np.testing.assert_allclose(q[0], q[-1], atol=1e-12)
    np.testing.assert_allclose(q[10], 0.5)  # every band starts at phase 0 on the phase frame
    assert np.abs(q[40, 1] - q[10, 1]) > 0.1
    numeric = (q[2:] - q[:-2]) / 2.0
    np.testing.assert_allclose(dq[1:-1, :3], numeric[:, :3], atol=2e-3)  # analytic derivative per frame
    # a loop of the volume's own length at the scene's frame rate plays the spectral-volume formula
    vol = S.SpectralVolume(random_coeffs(k=5), fps=20.0, num_frames=40)
    scene_fps, phase = 25.0, 3.0
    frames = np.arange(3, 60, 7)
    q, _ = S.loop_coordinates(vol.k, frames, vol.duration * scene_fps, phase_frame=phase)
    np.testing.assert_allclose(S.modal_displacement(vol.coeffs, q), vol.displacement((frames - phase) / scene_fps),
                               atol=1e-5)


# --- .npz schema ---------------------------------------------------------------------------------------------------

def test_npz_round_trip_is_exact(tmp_path):
    vol = S.SpectralVolume(random_coeffs(k=16), fps=25.0, num_frames=150, source_size=(640, 360),
                           provenance={"extracted_from": "clip.mp4", "start_frame": 20})
    path = tmp_path / "v.npz"
    vol.save(path)
    back = S.load_npz(path)
    np.testing.assert_array_equal(back.coeffs, vol.coeffs)
    assert (back.fps, back.num_frames, back.source_size) == (25.0, 150, (640, 360))
    assert back.provenance == {"extracted_from": "clip.mp4", "start_frame": 20}
    np.testing.assert_allclose(back.freqs_hz, np.arange(16) / 6.0, rtol=1e-6)


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good_arrays():
    return dict(coeffs=random_coeffs(k=4), freqs_hz=S.frequencies(4, 30.0, 150), fps=np.float32(30),
                num_frames=np.int32(150), source_size=np.array([9, 6], np.int32), schema_version=np.int32(1))


@pytest.mark.parametrize("field,value", [
    ("coeffs", np.zeros((4, 3, 6, 9), np.float32)),
    ("coeffs", np.zeros((4, 4, 6, 9), np.float64)),
    ("coeffs", np.full((4, 4, 6, 9), np.nan, np.float32)),
    ("freqs_hz", np.arange(4, dtype=np.float32)),
    ("fps", np.float32(-1)),
    ("num_frames", np.int32(1)),
    ("source_size", np.array([9], np.int32)),
    ("schema_version", np.int32(99)),
])
def test_bad_field_is_named(tmp_path, field, value):
    arrays = _good_arrays()
    arrays[field] = value
    with pytest.raises(S.SpectralVolumeError) as err:
        S.load_npz(_write(tmp_path / "bad.npz", **arrays))
    assert err.value.field == field
    assert field in str(err.value)


def test_missing_field_is_named(tmp_path):
    for field in ("coeffs", "freqs_hz", "fps", "num_frames", "source_size", "schema_version"):
        arrays = _good_arrays()
        del arrays[field]
        with pytest.raises(S.SpectralVolumeError, match=field):
            S.load_npz(_write(tmp_path / f"no_{field}.npz", **arrays))


def test_object_arrays_are_refused(tmp_path):
    arrays = _good_arrays()
    arrays["model"] = np.array([{"evil": 1}], dtype=object)
    path = tmp_path / "pickle.npz"
    np.savez(path, **arrays)
    with pytest.raises(S.SpectralVolumeError, match="model"):
        S.load_npz(path)


def test_corrupt_and_foreign_files(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, **_good_arrays())
    raw = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "text.npz").write_text("not a volume")
    for name in ("trunc.npz", "text.npz", "missing.npz"):
        with pytest.raises(S.SpectralVolumeError) as err:
            S.load_npz(tmp_path / name)
        assert err.value.field in ("file", "coeffs")
    # a member whose bytes are corrupted inside a valid zip
    bad = tmp_path / "member.npz"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            zout.writestr(item, data[:40] if item.filename == "coeffs.npy" else data)
    with pytest.raises(S.SpectralVolumeError, match="coeffs"):
        S.load_npz(bad)


def test_constructor_validates():
    with pytest.raises(S.SpectralVolumeError, match="coeffs"):
        S.SpectralVolume(np.zeros((4, 2, 3, 3), np.float32))
    with pytest.raises(S.SpectralVolumeError, match="coeffs"):
        S.SpectralVolume(np.zeros((100, 4, 3, 3), np.float32), num_frames=150)
    with pytest.raises(ValueError, match="frames"):
        S.trajectories_to_spectral(np.zeros((10, 2, 3, 3)), k=16)
