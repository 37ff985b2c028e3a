"""The preview: a seamless loop of the photo moved by a spectral volume, without a network (softmax splatting).

For every output frame ``i`` (time ``t = i / fps`` seconds) the displacement ``F_t`` of the volume
(``backend.spectral.displacement_at``) forward-warps the photo (``backend.splat.softmax_splat``); pixels that move
more over the loop are in front (``backend.splat.motion_metric`` of the mean-square displacement, in [0, 20]) and
the holes are filled from what lies behind (``backend.splat.fill_holes``). Frames 0 .. N-1 are written; with the
default N = T frames at the volume's fps, frame N would equal frame 0, so playback on repeat is seamless. Any fps
works: N defaults to round(loop seconds * fps). Files are written by ``backend.video.write_video`` (.mp4 or .gif).
"""
from __future__ import annotations

import logging
import os
import pathlib
import time
from typing import Iterable, Iterator

import numpy as np
import torch

from addon.core.spectral import SpectralVolume, resize_bilinear

from .spectral import displacement_at, mean_square_displacement
from .splat import fill_holes, motion_metric, softmax_splat
from .video import video_extension, write_video

log = logging.getLogger(__name__)

METRIC_RANGE = 20.0  # metric of the fastest-moving pixel; static pixels get 0
MIN_PEAK_PX = 1e-6  # RMS motion below which nothing counts as moving (the metric is then 0 everywhere)
PIXELS_PER_CHUNK = 330_000  # frames per batch: about this many pixels (8 at 256x160; larger batches are slower on CPU)

__all__ = ["render_preview", "warp_frames", "iter_warped_frames", "demo_inputs"]


# ----------------------------------------------------------------------------------------------------------------
# Warping
# ----------------------------------------------------------------------------------------------------------------

def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"the preview needs an RGB uint8 image of shape (H, W, 3), got {image.dtype} "
                         f"{image.shape}; convert it first (e.g. PIL Image.convert('RGB'))")
    return image


def iter_warped_frames(image: np.ndarray, volume: SpectralVolume, frames: Iterable[float], *, fps: float | None = None,
                       device: str | torch.device | None = None, batch_size: int | None = None
                       ) -> Iterator[np.ndarray]:
    """Yield warped frames as uint8 arrays (n, H, W, 3), one batch at a time.

    ``frames`` are frame numbers at ``fps`` (default the volume's fps): frame i shows time i / fps seconds.
    The volume is resampled to the image size if needed.
    """
    image = _check_image(image)
    height, width = image.shape[:2]
    fps = float(volume.fps if fps is None else fps)
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    times = np.asarray(list(frames), dtype=np.float64).reshape(-1) / fps
    volume = volume.resampled(width, height)
    device = torch.device(device or "cpu")
    if batch_size is None:
        batch_size = max(1, PIXELS_PER_CHUNK // (height * width))
    with torch.no_grad():
        coeffs = torch.from_numpy(volume.coeffs).to(device)
        power = mean_square_displacement(coeffs.double())[None, None]  # (1, 1, H, W) px², float64
        metric = motion_metric(power, METRIC_RANGE, MIN_PEAK_PX).to(coeffs.dtype)
        src = torch.from_numpy(np.array(image, copy=True)).to(device)
        src = src.permute(2, 0, 1)[None].float()  # (1, 3, H, W), 0..255
        for start in range(0, len(times), batch_size):
            t = times[start:start + batch_size]
            n = len(t)
            flow = displacement_at(coeffs, volume.freqs_hz, t)  # (n, 2, H, W)
            # The metric rides along as a 4th channel: its splatted value says how far in front each target is.
            out, coverage = softmax_splat(torch.cat([src, metric], dim=1).expand(n, -1, -1, -1), flow,
                                          metric.expand(n, -1, -1, -1), return_coverage=True)
            out = fill_holes(out[:, :3], coverage, out[:, 3:])
            yield out.clamp(0.0, 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def warp_frames(image: np.ndarray, volume: SpectralVolume, frames: Iterable[float], *, fps: float | None = None,
                device: str | torch.device | None = None) -> np.ndarray:
    """Warp ``image`` (H, W, 3) uint8 to the given frame numbers -> uint8 (N, H, W, 3). See
    :func:`iter_warped_frames`."""
    image = _check_image(image)
    chunks = list(iter_warped_frames(image, volume, frames, fps=fps, device=device))
    if not chunks:
        return np.zeros((0,) + image.shape, dtype=np.uint8)
    return np.concatenate(chunks, axis=0)


def render_preview(image: np.ndarray, volume: SpectralVolume, path, *, num_frames: int | None = None,
                   fps: float | None = None, size=None, progress: bool = True,
                   device: str | torch.device | None = None) -> dict:
    """Render the loop of ``volume`` on ``image`` to ``path`` (.mp4 or .gif, chosen by extension).

    ``fps`` defaults to the volume's; ``num_frames`` to one loop at that fps (round(T / volume.fps * fps)).
    ``size`` renders at another size: (width, height), or an int for the longer side (aspect kept).
    Returns {"frames", "fps", "seconds", "frames_per_second", "width", "height", "path"}; ``seconds`` is the
    wall time and ``frames_per_second`` the render speed (warp + encode); width/height are of the written file.
    """
    path = os.fspath(path)
    video_extension(path)  # a bad extension fails before any work
    image = _check_image(image)
    fps = float(volume.fps if fps is None else fps)
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    if num_frames is None:
        num_frames = max(1, int(round(volume.duration * fps)))
    num_frames = int(num_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    image = _resize_image(image, size)
    height, width = image.shape[:2]

    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=num_frames, unit="frame", desc=f"preview {pathlib.Path(path).name}", leave=False)

    def batches():
        for batch in iter_warped_frames(image, volume, range(num_frames), fps=fps, device=device):
            yield batch
            if bar is not None:
                bar.update(len(batch))

    try:
        size = write_video(path, batches(), fps)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    info = {"frames": num_frames, "fps": fps, "seconds": seconds, "frames_per_second": num_frames / seconds,
            "width": size[0], "height": size[1], "path": path}
    log.info("wrote %s: %d frames %dx%d at %.3g fps in %.2f s (%.1f frames/s)", path, num_frames, width, height,
             fps, seconds, info["frames_per_second"])
    return info


def _resize_image(image: np.ndarray, size) -> np.ndarray:
    if size is None:
        return image
    h, w = image.shape[:2]
    if isinstance(size, (int, np.integer)):
        scale = int(size) / max(w, h)
        size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    try:
        new_w, new_h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height) or an int for the longer side, got {size!r}") from None
    if new_w < 1 or new_h < 1:
        raise ValueError(f"size must be positive, got {(new_w, new_h)}")
    if (new_w, new_h) == (w, h):
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.LANCZOS))


# ----------------------------------------------------------------------------------------------------------------
# Synthetic inputs (tests, benchmarks)
# ----------------------------------------------------------------------------------------------------------------

def demo_inputs(width: int = 256, height: int = 160, k: int = 16, num_frames: int = 150, fps: float = 30.0,
                amplitude: float = 3.0, seed: int = 0):
    """A deterministic textured RGB image and a smooth random spectral volume of the given size.

    Motion is concentrated in the upper half (a 'foreground' that sways over a still background) and falls off
    with frequency (1/k); the largest displacement over the loop is exactly ``amplitude`` pixels.
    Returns (image uint8 (H, W, 3), volume).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.stack([127 + 100 * np.sin(xx / 5.0 + c) * np.cos(yy / 7.0 - c) for c in range(3)], axis=-1)
    image = np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)
    mask = 1.0 / (1.0 + np.exp((yy - height * 0.5) / 4.0))  # 1 at the top, 0 at the bottom
    coarse = rng.normal(size=(k, 4, 5, 8))
    coeffs = resize_bilinear(coarse, height, width) * mask  # smooth field, (K, 4, H, W)
    coeffs /= np.arange(1, k + 1, dtype=np.float64)[:, None, None, None]
    coeffs[0] = 0.0  # no constant offset
    volume = SpectralVolume(coeffs.astype(np.float32), fps=fps, num_frames=num_frames)
    peak = float(np.sqrt((volume.trajectories() ** 2).sum(axis=1)).max())
    volume.coeffs = (volume.coeffs * (amplitude / max(peak, 1e-12))).astype(np.float32)
    return image, volume
