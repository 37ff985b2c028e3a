"""From volume + modal coordinates to flows and rendered files (backend/render/frames.py, render.py, commands.py):
the loop reproduces the spectral-volume formula, the add-on's key values map to the same q, frame order/count and
names follow the request, a cancelled render leaves no files, the CLI writes the sequence."""
import os

import numpy as np
import pytest
import torch

from addon.core import mesh as core_mesh
from addon.core import modal as core_modal
from addon.core import spectral
from addon.core.spectral import SpectralVolume, resize_bilinear, save_npz
from backend.render import RendererConfig, build_renderer
from backend.render.frames import LoopSettings, check_coordinates
from backend.spectral import modal_displacement
from backend.render.render import Cancelled, RenderSettings, frame_filename, iter_frames, render_sequence


def _volume(k=5, w=48, h=32, num_frames=40, fps=20.0, seed=0):
    rng = np.random.default_rng(seed)
    coeffs = resize_bilinear(rng.normal(size=(k, 4, 3, 4)), h, w).astype(np.float32)
    return SpectralVolume(coeffs, fps=fps, num_frames=num_frames)


def _photo(w=48, h=32, seed=1):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _model(seed=0):
    torch.manual_seed(seed)
    model = build_renderer(RendererConfig(channels=(4, 6, 8))).eval()
    torch.nn.init.normal_(model.decoder.head.weight, std=0.02)
    return model


def test_loop_flows_are_the_spectral_volume_formula():
    vol = _volume()
    scene_fps = 25.0
    loop = LoopSettings.for_volume(vol, scene_fps, phase_frame=3.0)
    assert loop.loop_frames == pytest.approx(vol.num_frames / vol.fps * scene_fps)
    frames = np.arange(3, 60, 7)
    q = loop.coordinates(vol.k, frames)
    flows = modal_displacement(torch.from_numpy(vol.coeffs), q).numpy()
    expected = vol.displacement((frames - 3.0) / scene_fps)  # t = seconds since the phase frame
    assert np.abs(flows - expected).max() < 1e-4


def test_loop_coordinates_are_the_addons_and_key_values_round_trip():
    frames = np.arange(1, 31)
    loop = LoopSettings(loop_frames=24, phase_frame=1.0, amplitude=0.7)
    q = loop.coordinates(6, frames)  # (N, K)
    q_addon, _ = spectral.loop_coordinates(6, frames, 24, 0.7, 1.0)  # what the add-on bakes
    assert np.array_equal(q, q_addon)
    # What Blender's modal keys hold (value_re = Re q, value_im = -Im q) gives back q exactly.
    value_re, value_im = core_mesh.modal_key_values(q.T)
    assert np.array_equal(value_re.T - 1j * value_im.T, q)


def test_poke_coordinates_move_the_poked_pixel_as_simulated():
    vol = _volume()
    pokes = [core_modal.Poke(frame=2, x=20.0, y=10.0, force_x=3.0, force_y=-1.0)]
    q = core_modal.simulate(vol.coeffs, vol.freqs_hz, pokes, num_frames=12, fps=24.0,
                           params=core_modal.ModalParams(floor=0.01))  # (N, K)
    flows = modal_displacement(torch.from_numpy(vol.coeffs), q).double().numpy()  # (N, 2, H, W)
    # Bilinear sample at the poke (pixel centres at integer + 0.5) equals the simulation's own response there.
    response = core_modal.response_at(vol.coeffs, q, 20.0, 10.0)  # (N, 2)
    x, y = 20.0 - 0.5, 10.0 - 0.5
    x0, y0 = int(x), int(y)
    fx, fy = x - x0, y - y0
    sampled = ((1 - fx) * (1 - fy) * flows[:, :, y0, x0] + fx * (1 - fy) * flows[:, :, y0, x0 + 1]
               + (1 - fx) * fy * flows[:, :, y0 + 1, x0] + fx * fy * flows[:, :, y0 + 1, x0 + 1])
    assert np.abs(sampled - response).max() < 1e-4
    assert np.abs(flows[:2]).max() == 0.0  # at rest before the poke
    d = np.array([3.0, -1.0])
    assert response[2] @ d / np.hypot(*d) == pytest.approx(np.hypot(*d), rel=1e-6)  # dragged by |d| along d


def test_coordinates_are_checked():
    assert check_coordinates([[[1.0, 2.0]] * 3] * 2, 3).shape == (2, 3)
    with pytest.raises(ValueError, match="volume has K=4"):
        check_coordinates(np.zeros((2, 3, 2)), 4)
    with pytest.raises(ValueError, match=r"\(N frames, K bands, 2\)"):
        check_coordinates(np.zeros((2, 3)), 3)
    with pytest.raises(ValueError, match="NaN"):
        check_coordinates(np.full((2, 3, 2), np.nan), 3)
    with pytest.raises(ValueError, match="5 frames were asked"):
        check_coordinates(np.zeros((2, 3, 2)), 3, num_frames=5)
    with pytest.raises(ValueError, match="frame numbers repeat"):
        RenderSettings(frames=(1, 2, 1))
    with pytest.raises(ValueError, match=">= 0"):
        RenderSettings(frames=(-1, 0))


def test_render_writes_the_requested_frames_in_order(tmp_path):
    vol, photo, model = _volume(), _photo(), _model()
    frames = (7, 3, 12, 4)  # any order: files are named by frame, rendered in the given order
    q = LoopSettings.for_volume(vol, 20.0).coordinates(vol.k, frames)
    order = []
    paths = render_sequence(model, photo, vol, q, RenderSettings(frames=frames), tmp_path,
                            on_frame=lambda f, p: order.append(f))
    assert order == list(frames)
    assert [os.path.basename(p) for p in paths] == [frame_filename(f) for f in frames]
    assert sorted(os.listdir(tmp_path)) == sorted(frame_filename(f) for f in frames)
    expected = np.concatenate(list(iter_frames(model, photo, vol, q)))  # (N, H, W, 3) in [0, 1]
    from PIL import Image

    for i, path in enumerate(paths):
        png = np.asarray(Image.open(path)).astype(np.float32) / 255.0
        assert png.shape == (32, 48, 3)
        assert np.abs(png - expected[i]).max() <= 0.5 / 255 + 1e-6
    # Different frames show different motion.
    assert np.abs(expected[0] - expected[1]).mean() > 1e-3


def test_exr_frames_are_linear(tmp_path):
    vol, photo, model = _volume(), _photo(), _model()
    q = np.zeros((1, vol.k), dtype=np.complex128)
    paths = render_sequence(model, photo, vol, q, RenderSettings(frames=(0,), format="exr"), tmp_path)
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2

    exr = cv2.imread(paths[0], cv2.IMREAD_UNCHANGED)[..., ::-1]
    srgb = next(iter_frames(model, photo, vol, q))[0]
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    assert exr.dtype == np.float32 and np.abs(exr - linear).max() < 1e-6


def test_cancelled_render_leaves_no_files(tmp_path):
    vol, photo, model = _volume(), _photo(), _model()
    frames = tuple(range(10))
    q = LoopSettings.for_volume(vol, 20.0).coordinates(vol.k, frames)
    (tmp_path / "keep.txt").write_text("not ours")

    def cancel_after_3(done, total):
        assert total == 10
        if done == 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        render_sequence(model, photo, vol, q, RenderSettings(frames=frames), tmp_path, callback=cancel_after_3)
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]


def test_cli_renders_a_loop_and_modal_coordinates(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from backend import cli
    from backend.render import checkpoint

    vol, photo = _volume(), _photo()
    save_npz(tmp_path / "v.npz", vol)
    Image.fromarray(photo).save(tmp_path / "p.png")
    torch.manual_seed(0)
    checkpoint.save(tmp_path / "r.pt", build_renderer(RendererConfig(channels=(4, 6, 8))))  # untrained: exact
    base = ["render", str(tmp_path / "p.png"), str(tmp_path / "v.npz"), "--checkpoint", str(tmp_path / "r.pt"),
            "-q", "--device", "cpu"]
    assert cli.main(base + ["-o", str(tmp_path / "loop"), "--frames", "2:5", "--size", "32x20"]) == 0
    assert sorted(os.listdir(tmp_path / "loop")) == [frame_filename(f) for f in (2, 3, 4, 5)]
    assert Image.open(tmp_path / "loop" / frame_filename(2)).size == (32, 20)
    q = np.zeros((3, vol.k, 2))
    np.save(tmp_path / "q.npy", q)
    assert cli.main(base + ["-o", str(tmp_path / "modal"), "--modal", str(tmp_path / "q.npy")]) == 0
    assert sorted(os.listdir(tmp_path / "modal")) == [frame_filename(f) for f in (0, 1, 2)]
    # No motion, untrained renderer: the photo itself (the default size of a small photo is its own).
    out = np.asarray(Image.open(tmp_path / "modal" / frame_filename(1)))
    assert np.array_equal(out, photo)
    np.save(tmp_path / "bad.npy", np.zeros((3, vol.k + 1, 2)))
    assert cli.main(base + ["-o", str(tmp_path / "bad"), "--modal", str(tmp_path / "bad.npy")]) == 2
    assert "volume has K=5" in capsys.readouterr().err


def test_motion_mask_scales_each_pixels_motion(tmp_path, capsys):
    from PIL import Image

    from backend import cli
    from backend.render import checkpoint
    from backend.render.render import mask_from_image, scale_by_mask

    vol, photo = _volume(), _photo()
    torch.manual_seed(0)
    model = build_renderer(RendererConfig(channels=(4, 6, 8))).eval()  # untrained: forward warp, exact at rest
    q = LoopSettings.for_volume(vol, 20.0).coordinates(vol.k, (3, 8))
    free = np.concatenate(list(iter_frames(model, photo, vol, q)))
    ones = np.concatenate(list(iter_frames(model, photo, vol, q, motion_mask=np.ones((2, 2)))))
    assert np.abs(free - ones).max() < 1e-5  # bilinear weights of 1s sum to 1 within float rounding
    still = np.concatenate(list(iter_frames(model, photo, vol, q, motion_mask=np.zeros((5, 7)))))
    assert np.array_equal(np.round(still * 255), np.repeat(photo[None].astype(np.float32), 2, axis=0))
    # A mask of the frame's own size scales pixel by pixel; a 2x2 mask is stretched corner to corner.
    coeffs = torch.from_numpy(vol.coeffs)
    left = np.ones((32, 48), np.float32)
    left[:, :24] = 0.0
    scaled = scale_by_mask(coeffs, left).numpy()
    assert np.array_equal(scaled[..., :24], np.zeros_like(scaled[..., :24]))
    assert np.array_equal(scaled[..., 24:], vol.coeffs[..., 24:])
    ramp = scale_by_mask(torch.ones(1, 4, 32, 48), np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)).numpy()
    assert np.allclose(ramp[0, 0, 5], np.linspace(0, 1, 48), atol=1e-6)
    half = np.concatenate(list(iter_frames(model, photo, vol, q, motion_mask=left)))
    assert np.array_equal(np.round(half[:, :, :12] * 255), np.repeat(photo[None, :, :12].astype(np.float32), 2, 0))
    moved = np.abs(free[:, :, 30:] - still[:, :, 30:]).mean()
    assert moved > 1e-2 and np.abs(half[:, :, 30:] - still[:, :, 30:]).mean() > 0.7 * moved  # the free side moves
    # Image files: 8 and 16 bit grey, colour (its grey level); bad values and shapes are refused.
    assert np.array_equal(mask_from_image(np.array([[0, 255], [255, 0]], np.uint8)), [[0, 1], [1, 0]])
    assert np.allclose(mask_from_image(np.full((2, 3), 65535, np.uint16)), 1.0)
    assert np.allclose(mask_from_image(np.full((2, 2, 3), [0, 255, 255], np.uint8)), 2 / 3)
    with pytest.raises(ValueError, match="at least 2x2"):
        mask_from_image(np.ones(4, np.uint8))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        list(iter_frames(model, photo, vol, q, motion_mask=np.full((2, 2), 1.5)))
    # The CLI's --mask: a black mask renders the photo itself.
    save_npz(tmp_path / "v.npz", vol)
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(np.zeros((10, 16), np.uint8)).save(tmp_path / "m.png")
    checkpoint.save(tmp_path / "r.pt", model)
    base = ["render", str(tmp_path / "p.png"), str(tmp_path / "v.npz"), "--checkpoint", str(tmp_path / "r.pt"),
            "-q", "--device", "cpu", "--frames", "3:4"]
    assert cli.main(base + ["-o", str(tmp_path / "still"), "--mask", str(tmp_path / "m.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "still" / frame_filename(4))), photo)
    assert cli.main(base + ["-o", str(tmp_path / "bad"), "--mask", str(tmp_path / "v.npz")]) == 2
    assert "motion mask" in capsys.readouterr().err


def test_mesh_warp_baseline_reproduces_a_plane_moved_by_its_vertices():
    from backend.render.meshwarp import mesh_warp

    rng = np.random.default_rng(0)
    img = rng.random((40, 64, 3)).astype(np.float32)
    assert np.array_equal(mesh_warp(img, np.zeros((2, 40, 64))), img)  # at rest: the photo, pixel for pixel
    flow = np.zeros((2, 40, 64))
    flow[0] = 2.0  # the whole plane 2 px right: exact copy, the vacated left columns show the background
    out = mesh_warp(img, flow, background=0.25)
    assert np.array_equal(out[:, 2:], img[:, :-2]) and np.all(out[:, :2] == 0.25)
    # A band moving 6 px down over still rows: where it overlaps them, the moving band is in front.
    flow = np.zeros((2, 40, 64))
    flow[1, 10:20] = 6.0
    depth = np.abs(flow[1])
    out = mesh_warp(img, flow, depth=depth, columns=33)
    assert np.allclose(out[20:24, 8:56], img[14:18, 8:56], atol=1e-5)  # rows 14..17 moved onto 20..23
