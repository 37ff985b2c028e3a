"""Video files: reading a window of a clip (resized to the working map, with the clip's frame rate) and writing
frames as an ``.mp4`` or a ``.gif``.

Writing: ``.mp4`` is H.264 (libx264, yuv420p, constant quality ``crf``; odd sizes are padded by one replicated pixel
row/column, so the original pixels stay exact up to compression), ``.gif`` has one shared palette (from the first
batch of frames) and loops forever. Frames stream in batches, so memory stays bounded, and the file appears
complete or not at all (written under a temporary name, then renamed).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import pathlib
from typing import Iterable

import cv2
import numpy as np

from addon.core.files import atomic_path

log = logging.getLogger(__name__)


class VideoError(ValueError):
    """A clip cannot be used; the message says why and what to do."""


@dataclasses.dataclass
class Clip:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB at the working size
    fps: float
    source_size: tuple  # (W, H) of the clip
    total_frames: int  # frames in the whole clip (as counted while reading)
    start: int


def parse_size(text: str) -> tuple:
    """'256x160' -> (256, 160)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise VideoError(f"size '{text}' is not WIDTHxHEIGHT, e.g. 256x160") from None
    if not (8 <= w <= 4096 and 8 <= h <= 4096):
        raise VideoError(f"size {w}x{h} is out of range (8..4096 per side)")
    return w, h


def read_clip(path, start: int = 0, num_frames: int | None = None, size: tuple | None = None,
              fps: float | None = None) -> Clip:
    """Read ``num_frames`` frames from ``start`` (all remaining frames if None), resized to ``size`` (W, H)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"video '{path}' does not exist")
    if start < 0:
        raise VideoError(f"--start must be >= 0, got {start}")
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise VideoError(f"cannot read '{path}' as a video (is it an mp4/mov/avi/webm clip?)")
        clip_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        src_w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        src_h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        frames = []
        index = 0
        while num_frames is None or len(frames) < num_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            if index >= start:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                if size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(size):
                    interp = cv2.INTER_AREA if size[0] < rgb.shape[1] else cv2.INTER_LINEAR
                    rgb = cv2.resize(rgb, tuple(size), interpolation=interp)
                frames.append(rgb)
            index += 1
        total = index if num_frames is None else max(index, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        cap.release()
    if not frames:
        if index == 0:
            raise VideoError(f"'{path}' has no readable frames (corrupt or not a video)")
        raise VideoError(f"--start {start} is past the end of '{path}' ({index} frames)")
    if fps is None:
        fps = clip_fps
    if not (math.isfinite(fps) and 0.5 <= fps <= 1000):
        raise VideoError(f"'{path}' reports frame rate {fps}; pass the real one with --fps")
    return Clip(np.stack(frames), float(fps), (src_w, src_h), total, start)


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------

VIDEO_EXTENSIONS = (".mp4", ".gif")
MP4_CRF = 18


class _Mp4Writer:
    def __init__(self, path: str, width: int, height: int, fps: float, crf: int, preset: str | None):
        import imageio_ffmpeg

        self.pad = (height % 2, width % 2)
        self.size = (width + self.pad[1], height + self.pad[0])
        params = ["-crf", str(int(crf))] + (["-preset", preset] if preset else [])
        try:
            self._gen = imageio_ffmpeg.write_frames(path, self.size, fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                                    quality=None, output_params=params, macro_block_size=1,
                                                    ffmpeg_log_level="error")
            self._gen.send(None)
        except (OSError, RuntimeError, ValueError) as exc:
            raise RuntimeError(f"could not open '{path}' for H.264 writing ({exc}); install the 'imageio-ffmpeg' "
                               "package and check the folder is writable") from exc

    def write(self, frames: np.ndarray) -> None:
        if any(self.pad):
            frames = np.pad(frames, ((0, 0), (0, self.pad[0]), (0, self.pad[1]), (0, 0)), mode="edge")
        for frame in frames:
            self._gen.send(np.ascontiguousarray(frame))

    def close(self) -> None:
        self._gen.close()


class _GifWriter:
    """Collects palette-mapped frames (1 byte per pixel) and writes them with one shared palette at close."""

    def __init__(self, path: str, width: int, height: int, fps: float):
        self.path = path
        self.size = (width, height)
        self.duration_ms = 1000.0 / fps
        self._palette = None
        self._frames = []

    def write(self, frames: np.ndarray) -> None:
        from PIL import Image

        if self._palette is None:  # palette from the first batch: a strip of up to 8 frames
            picks = frames[np.linspace(0, len(frames) - 1, min(8, len(frames))).astype(int)]
            self._palette = Image.fromarray(np.concatenate(list(picks), axis=0)).quantize(256)
        for frame in frames:
            self._frames.append(Image.fromarray(frame).quantize(palette=self._palette))

    def close(self) -> None:
        if self._frames:
            first, rest = self._frames[0], self._frames[1:]
            first.save(self.path, save_all=True, append_images=rest, loop=0, duration=self.duration_ms,
                       optimize=False, disposal=1)


def video_extension(path) -> str:
    """The lower-case extension of ``path`` if it is one :func:`write_video` writes; ValueError saying what to use."""
    ext = pathlib.Path(os.fspath(path)).suffix.lower()
    if ext not in VIDEO_EXTENSIONS:
        raise ValueError(f"cannot write video '{os.fspath(path)}': unknown extension '{ext or '(none)'}'; use one of "
                         f"{', '.join(VIDEO_EXTENSIONS)}")
    return ext


def write_video(path, frames: np.ndarray | Iterable[np.ndarray], fps: float, *, crf: int = MP4_CRF,
                preset: str | None = None) -> tuple:
    """Write RGB uint8 frames to ``path`` (.mp4 or .gif, by extension); returns the written (width, height).

    ``frames``: an array (T, H, W, 3), or an iterable of batches (n, H, W, 3) that is consumed as it comes (a
    renderer's output, so a long video never sits in memory). ``crf`` and ``preset`` (x264's, e.g. "slow"; None =
    ffmpeg's default) apply to .mp4. The folder is created if needed; the file appears complete or not at all.
    """
    ext = video_extension(path)
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    batches = [frames] if isinstance(frames, np.ndarray) else frames
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        writer = None
        try:
            for batch in batches:
                batch = np.asarray(batch)
                if batch.ndim != 4 or batch.shape[3] != 3 or batch.dtype != np.uint8:
                    raise ValueError(f"video frames must be RGB uint8 (n, H, W, 3), got {batch.dtype} {batch.shape}")
                if writer is None:
                    height, width = batch.shape[1:3]
                    writer = (_Mp4Writer(tmp, width, height, fps, crf, preset) if ext == ".mp4"
                              else _GifWriter(tmp, width, height, fps))
                writer.write(batch)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise ValueError(f"no frames to write to '{path}'")
    return writer.size
