"""The preview (backend/preview.py): warped frames, who is in front, holes, seamless loops, mp4/gif files."""
import imageio.v2 as imageio
import numpy as np
import pytest

from addon.core.spectral import SpectralVolume
from backend.preview import demo_inputs, render_preview, warp_frames


def _texture(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _uniform_x_volume(h, w, amplitude=3.0, num_frames=8, fps=8.0, k=3):
    """x displacement = amplitude * cos(2 pi t / loop) everywhere (bin 1, real)."""
    coeffs = np.zeros((k, 4, h, w), dtype=np.float32)
    coeffs[1, 0] = amplitude
    return SpectralVolume(coeffs, fps=fps, num_frames=num_frames)


def test_zero_volume_gives_the_image_every_frame():
    img = _texture(20, 30)
    vol = SpectralVolume(np.zeros((4, 4, 20, 30), np.float32), fps=10, num_frames=12)
    frames = warp_frames(img, vol, range(12))
    assert frames.shape == (12, 20, 30, 3) and frames.dtype == np.uint8
    for frame in frames:
        assert np.array_equal(frame, img)


def test_uniform_motion_matches_np_roll_on_the_interior():
    img = _texture(24, 32, seed=1)
    vol = _uniform_x_volume(24, 32)
    frames = warp_frames(img, vol, range(9)).astype(int)
    inner = (slice(None), slice(4, -4))
    # frame 0: +3 px, frame 2: 0 px (cos 90 deg), frame 4: -3 px, frame 8 = frame 0 (the loop closes).
    for frame, shift in ((0, 3), (2, 0), (4, -3), (6, 0), (8, 3)):
        expected = np.roll(img, shift, axis=1).astype(int)
        assert np.array_equal(frames[frame][inner], expected[inner]), frame
    # frame 1: 3 cos 45 deg = 2.1213 px -> bilinear mix of the 2 and 3 px shifts.
    a = 3.0 * np.cos(np.pi / 4) - 2.0
    mix = (1 - a) * np.roll(img, 2, axis=1) + a * np.roll(img, 3, axis=1)
    assert np.abs(frames[1][inner] - mix[inner]).max() <= 1
    # The vacated 3-column strip on the left is filled, not black.
    assert frames[0][:, :3].mean() > 20


def test_volume_is_resampled_to_the_image_size():
    img = _texture(24, 32, seed=2)
    small = _uniform_x_volume(12, 16, amplitude=1.5)  # 1.5 px of a half-size map = 3 px of the image
    frames = warp_frames(img, small, [0, 4])
    assert np.array_equal(frames[0][:, 4:-4], np.roll(img, 3, axis=1)[:, 4:-4])
    assert np.array_equal(frames[1][:, 4:-4], np.roll(img, -3, axis=1)[:, 4:-4])


def test_loop_is_seamless_at_any_fps():
    img, vol = demo_inputs(48, 32, k=8, num_frames=30, amplitude=3.0, seed=5)
    frames = warp_frames(img, vol, [0, 30], fps=vol.fps)
    assert np.array_equal(frames[0], frames[1])
    frames = warp_frames(img, vol, [0, 24], fps=24.0)  # one loop of 1 s at 24 fps
    assert np.array_equal(frames[0], frames[1])


def test_mp4_and_gif_are_written_and_read_back(tmp_path, capsys):
    img, vol = demo_inputs(48, 32, k=6, num_frames=12, fps=12.0, amplitude=3.0, seed=6)
    info = render_preview(img, vol, tmp_path / "loop.mp4", progress=True)
    assert info["frames"] == 12 and info["fps"] == 12.0 and info["frames_per_second"] > 0
    assert "frame" in capsys.readouterr().err  # tqdm progress on stderr
    with imageio.get_reader(tmp_path / "loop.mp4") as reader:
        read = [f for f in reader]
    assert len(read) == 12 and read[0].shape == (32, 48, 3)
    expected = warp_frames(img, vol, range(12))
    # Lossy (and yuv420p halves the chroma of this noisy texture), but the same picture: compare brightness,
    # and the file's frame 5 is closer to our frame 5 than to the frame half a loop away.
    grey = [f.astype(float).mean(axis=-1) for f in (read[5], expected[5], expected[11])]
    assert np.abs(grey[0] - grey[1]).mean() < 4.5
    assert np.abs(grey[0] - grey[1]).mean() < 0.7 * np.abs(grey[0] - grey[2]).mean()

    info = render_preview(img, vol, tmp_path / "sub" / "loop.gif", progress=False)
    assert capsys.readouterr().err == ""
    gif = imageio.mimread(tmp_path / "sub" / "loop.gif")
    assert len(gif) == 12 and gif[0].shape[:2] == (32, 48)
    assert np.abs(gif[5][..., :3].astype(int) - expected[5]).mean() < 12  # 256-colour palette
    assert not np.array_equal(gif[0], gif[3])  # it moves


def test_odd_sizes_work_and_mp4_is_padded_to_even(tmp_path):
    img, vol = demo_inputs(37, 23, k=4, num_frames=8, fps=8.0, amplitude=2.0, seed=7)
    assert warp_frames(img, vol, range(3)).shape == (3, 23, 37, 3)
    info = render_preview(img, vol, tmp_path / "odd.mp4", progress=False)
    assert (info["width"], info["height"]) == (38, 24)
    with imageio.get_reader(tmp_path / "odd.mp4") as reader:
        read = [f for f in reader]
    assert len(read) == 8 and read[0].shape == (24, 38, 3)
    info = render_preview(img, vol, tmp_path / "odd.gif", progress=False)
    assert imageio.mimread(tmp_path / "odd.gif")[0].shape[:2] == (23, 37)


def test_size_and_frame_count_options(tmp_path):
    img, vol = demo_inputs(40, 20, k=4, num_frames=10, fps=10.0, amplitude=2.0, seed=8)
    info = render_preview(img, vol, tmp_path / "big.gif", size=80, fps=5, progress=False)
    assert info["frames"] == 5 and (info["width"], info["height"]) == (80, 40)
    assert len(imageio.mimread(tmp_path / "big.gif")) == 5
    info = render_preview(img, vol, tmp_path / "two.gif", num_frames=20, size=(30, 16), progress=False)
    assert info["frames"] == 20 and (info["width"], info["height"]) == (30, 16)


def test_bad_inputs_get_clear_errors(tmp_path):
    img, vol = demo_inputs(16, 8, k=2, num_frames=4, amplitude=1.0)
    with pytest.raises(ValueError, match=r"unknown extension '\.avi'.*\.mp4, \.gif"):
        render_preview(img, vol, tmp_path / "x.avi", progress=False)
    with pytest.raises(ValueError, match="unknown extension"):
        render_preview(img, vol, tmp_path / "noext", progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="RGB uint8"):
        warp_frames(img.astype(np.float32), vol, [0])
    with pytest.raises(ValueError, match="fps"):
        render_preview(img, vol, tmp_path / "x.gif", fps=0, progress=False)


def test_gap_left_by_a_moving_part_is_filled_with_background():
    img = np.full((24, 40, 3), 60, np.uint8)
    img[8:16, 12:24] = 250  # a bright block moving right over a dark static background
    coeffs = np.zeros((3, 4, 24, 40), np.float32)
    coeffs[1, 0, 8:16, 12:24] = 4.0
    frame = warp_frames(img, SpectralVolume(coeffs, fps=8, num_frames=8), [0])[0].astype(int)
    assert np.all(frame[8:16, 16:28] == 250)  # the block, 4 px to the right
    # The uncovered strip shows background, not the block (only its last column is softened by the pyramid).
    strip = frame[8:16, 12:16]
    assert np.abs(strip - 60).mean() < 15 and np.abs(strip[:, :3] - 60).max() <= 10 and strip.max() < 155
