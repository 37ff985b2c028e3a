"""backend/video.py's writer: .mp4 and .gif from an array or a stream of batches, complete or not at all."""
import imageio.v2 as imageio
import numpy as np
import pytest

from backend.video import read_clip, write_video


def _frames(n=6, h=23, w=37):
    """Smooth moving gradients (H.264 keeps them well)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([np.stack([(xx * 6 + 20 * t) % 256, yy * 10, np.full_like(xx, 128)], axis=-1)
                     for t in range(n)]).astype(np.uint8)


def test_mp4_round_trips_pads_odd_sizes_and_reads_back_with_read_clip(tmp_path):
    frames = _frames()
    path = tmp_path / "sub" / "clip.mp4"
    assert write_video(path, frames, 12.0, crf=10, preset="ultrafast") == (38, 24)  # padded to even
    clip = read_clip(path)
    assert clip.frames.shape == (6, 24, 38, 3) and clip.fps == pytest.approx(12.0)
    assert np.abs(clip.frames[:, :23, :37].astype(int) - frames).mean() < 6.0  # lossy, chroma halved
    assert sorted(p.name for p in path.parent.iterdir()) == ["clip.mp4"]  # no temporary file left


def test_gif_from_a_stream_of_batches(tmp_path):
    frames = _frames(n=5)
    batches = (frames[i:i + 2] for i in range(0, 5, 2))  # consumed as it comes
    assert write_video(tmp_path / "loop.gif", batches, 10.0) == (37, 23)
    gif = imageio.mimread(tmp_path / "loop.gif")
    assert len(gif) == 5 and gif[0].shape[:2] == (23, 37)
    assert np.abs(gif[3][..., :3].astype(int) - frames[3]).mean() < 12  # one 256-colour palette


def test_bad_requests_say_what_to_do_and_leave_nothing_behind(tmp_path):
    with pytest.raises(ValueError, match=r"unknown extension '\.avi'.*\.mp4, \.gif"):
        write_video(tmp_path / "x.avi", _frames(), 10.0)
    with pytest.raises(ValueError, match="RGB uint8"):
        write_video(tmp_path / "x.mp4", _frames().astype(np.float32), 10.0)
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "x.gif", iter([]), 10.0)

    def broken():
        yield _frames(n=2)
        raise RuntimeError("renderer failed")

    with pytest.raises(RuntimeError, match="renderer failed"):
        write_video(tmp_path / "x.mp4", broken(), 10.0)
    assert list(tmp_path.iterdir()) == []
