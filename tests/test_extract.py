"""Motion from video: flow, spectral volume, rejection rules, bad input, the CLI."""
import cv2
import imageio.v2 as imageio
import numpy as np
import pytest

from addon.core.spectral import SpectralVolume, load_npz, to_complex
from backend import cli
from backend.extract import RejectedWindow, extract, motion_stats, volume_from_frames
from backend.flow import FlowConfig
from backend.video import VideoError, read_clip


def texture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.random((h // 4 + 2, w // 4 + 2, 3)).astype(np.float32)
    big = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(big * 255, 0, 255).astype(np.uint8)


def swaying_frames(t=60, h=64, w=96, fps=30.0, k=3, amp=2.0, region=True, seed=0):
    """A textured patch that sways in x as amp*cos(2 pi f_k t) over a static textured background."""
    bg = texture(h, w, seed)
    fg = texture(h, w, seed + 1)
    mask = np.zeros((h, w), bool)
    if region:
        mask[16:48, 24:72] = True
    else:
        mask[:] = True
    frames = []
    for i in range(t):
        dx = amp * np.cos(2 * np.pi * k * i / t)
        m = np.float32([[1, 0, dx], [0, 1, 0]])
        moved = cv2.warpAffine(fg, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        moved_mask = cv2.warpAffine(mask.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR) > 0.5
        frames.append(np.where(moved_mask[..., None], moved, bg))
    return np.stack(frames), mask


def write_clip(path, frames, fps=30.0):
    imageio.mimwrite(str(path), list(frames), fps=fps, codec="libx264", quality=None, pixelformat="yuv444p",
                     output_params=["-crf", "12"], macro_block_size=1)
    return path


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_sway_lands_in_its_bin(method):
    frames, mask = swaying_frames()
    vol, traj = volume_from_frames(frames, fps=30.0, k=8, flow=FlowConfig(method=method))
    a = np.abs(to_complex(vol.coeffs))  # (K, 2, H, W)
    inner = np.zeros_like(mask)
    inner[22:42, 30:66] = True
    # x amplitude 2 px at bin 3 inside the patch; the first frame is the reference, so the trajectory is
    # 2 cos(.) - 2, whose constant term sits in bin 0.
    assert abs(np.median(a[3, 0][inner]) - 2.0) < 0.25
    assert np.median(a[3, 1][inner]) < 0.2
    leak = np.delete(a[:, 0], [0, 3], axis=0)
    assert np.median(leak[:, inner]) < 0.1
    background = np.zeros_like(mask)
    background[:, :10] = True
    assert np.median(a[1:, :, background]) < 0.05


def test_extract_from_file_records_fps_and_provenance(tmp_path):
    frames, _ = swaying_frames(t=40, amp=4.0)
    path = write_clip(tmp_path / "sway.mp4", frames, fps=24.0)
    result = extract(path, num_frames=31, k=16, size=(48, 33))  # odd working size
    vol = result.volume
    assert vol.fps == pytest.approx(24.0)
    assert (vol.width, vol.height, vol.num_frames, vol.k) == (48, 33, 31, 16)
    assert vol.source_size == (96, 64)
    assert vol.provenance == {"extracted_from": "sway.mp4", "start_frame": 0}
    shifted = extract(path, start=5, num_frames=31, k=16, size=(48, 33))
    assert shifted.volume.provenance["start_frame"] == 5


def test_static_and_camera_motion_are_rejected(tmp_path):
    still = np.repeat(texture(64, 96)[None], 40, axis=0)
    path = write_clip(tmp_path / "still.mp4", still)
    with pytest.raises(RejectedWindow, match="no motion.*--force"):
        extract(path, num_frames=40, k=8, size=(96, 64))
    assert extract(path, num_frames=40, k=8, size=(96, 64), force=True).rejected.startswith("no motion")

    pan, _ = swaying_frames(t=40, amp=4.0, region=False)
    path = write_clip(tmp_path / "pan.mp4", pan)
    with pytest.raises(RejectedWindow, match="camera motion"):
        extract(path, num_frames=40, k=8, size=(96, 64))


def test_motion_stats_rules():
    traj = np.zeros((10, 2, 10, 10), np.float32)
    assert "no motion" in motion_stats(traj).verdict()
    traj[:, 0, :2, :] = 3.0  # 20% of pixels move 3 px
    stats = motion_stats(traj)
    assert stats.verdict() is None and stats.fraction_moving == pytest.approx(0.2)
    traj[:, 0] = 3.0
    assert "camera motion" in motion_stats(traj).verdict()


def test_bad_inputs_have_clear_errors(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        read_clip(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(VideoError, match="cannot read|no readable frames"):
        read_clip(junk)
    frames, _ = swaying_frames(t=40)
    path = write_clip(tmp_path / "short.mp4", frames)
    with pytest.raises(VideoError, match="only 40 frames.*--frames 40"):
        extract(path, num_frames=150, k=16)
    with pytest.raises(VideoError, match="too short for --k 16"):
        extract(path, num_frames=20, k=16)
    with pytest.raises(VideoError, match="past the end"):
        read_clip(path, start=100)


def test_cli_writes_volume_and_reports_errors(tmp_path, capsys):
    frames, _ = swaying_frames(t=40)
    path = write_clip(tmp_path / "sway.mp4", frames)
    out = tmp_path / "sub" / "v.npz"
    assert cli.main(["extract", str(path), "-o", str(out), "--frames", "40", "--k", "8", "--size", "96x64",
                     "-q"]) == 0
    assert load_npz(out).k == 8
    assert "wrote" in capsys.readouterr().out
    assert cli.main(["extract", str(tmp_path / "missing.mp4"), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "does not exist" in err and "Traceback" not in err
    assert cli.main(["extract", str(path), "--size", "big", "-q"]) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_text("x")
    assert cli.main(["info", str(bad)]) == 2
    assert "spectral volume field 'file'" in capsys.readouterr().err


def test_extract_recovers_synthetic_flowers_motion():
    """The acceptance measure, fast: DIS recovers a procedural scene's exact motion to sub-pixel accuracy (the
    README's flowers row: 0.52 px)."""
    from backend.data.scene_render import render_scene
    from backend.data.scenes import SceneConfig

    clip = render_scene(SceneConfig(kind="flowers", seed=0, exact=False))
    vol, traj = volume_from_frames(clip.frames, clip.fps, k=16)
    gt = clip.trajectories
    err = np.sqrt(((traj[1:] - gt[1:]) ** 2).sum(axis=1))[:, clip.moving_mask].mean()
    assert err <= 0.55
    zero_motion = np.sqrt((gt[1:] ** 2).sum(axis=1))[:, clip.moving_mask].mean()
    assert err < 0.5 * zero_motion
    truth = SpectralVolume.from_trajectories(gt, k=16, fps=clip.fps)
    spec = vol.amplitude()[:, clip.moving_mask].mean(axis=1)
    spec_true = truth.amplitude()[:, clip.moving_mask].mean(axis=1)
    assert spec[1:].argmax() == spec_true[1:].argmax()
    assert np.abs(spec[1:] - spec_true[1:]).sum() / spec_true[1:].sum() < 0.2


@pytest.mark.slow
@pytest.mark.parametrize("kind,limit", [("meadow", 0.7), ("flowers", 0.55), ("candle", 0.35)])
def test_extract_through_video_file_on_every_synthetic_kind(tmp_path, kind, limit):
    from backend.data.scene_render import render_scene
    from backend.data.scenes import SceneConfig
    from backend.video import write_video

    clip = render_scene(SceneConfig(kind=kind, seed=3, exact=False))
    path = tmp_path / f"{kind}.mp4"
    write_video(path, clip.frames, clip.fps, crf=16, preset="slow")
    # force: a candle's flames are about 1% of the frame, at the edge of the "no motion" rule (tested elsewhere)
    result = extract(path, size=(clip.frames.shape[2], clip.frames.shape[1]), force=True)
    traj = result.volume.trajectories()
    truth = SpectralVolume.from_trajectories(clip.trajectories, k=16, fps=clip.fps).trajectories()
    err = np.sqrt(((traj[1:] - truth[1:]) ** 2).sum(axis=1))[:, clip.moving_mask].mean()
    assert err <= limit


def test_device_choice():
    import torch

    from backend.device import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


def test_cli_preview_end_to_end(tmp_path, capsys):
    frames, _ = swaying_frames(t=31)
    path = write_clip(tmp_path / "sway.mp4", frames)
    out = tmp_path / "v.npz"
    preview = tmp_path / "loop.gif"
    assert cli.main(["extract", str(path), "-o", str(out), "--frames", "31", "--k", "8", "--size", "96x64",
                     "--preview", str(preview), "-q"]) == 0
    loop = imageio.mimread(str(preview))
    assert len(loop) == 31 and loop[0].shape[:2] == (64, 96)
    assert np.abs(loop[8].astype(int) - loop[0].astype(int)).mean() > 1.0  # the preview moves
    assert cli.main(["extract", str(path), "-o", str(out), "--frames", "31", "--k", "8", "--size", "96x64",
                     "--preview", str(tmp_path / "loop.avi"), "-q"]) == 2
    assert ".mp4" in capsys.readouterr().err
