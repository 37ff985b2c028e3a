"""Preview renderer without a network: warp the photo by the spectral volume with softmax splatting.

For every output frame ``i`` (time ``t = i / fps`` seconds) the displacement field
``F_t(p) = Re sum_k A_k(p) exp(2 pi i f_k t)`` (``backend.spectral.displacement_at``) forward-warps the photo
(:mod:`backend.splat`). Choices made here:

* **Who is in front.** DESIGN.md: motion magnitude ``W(p) = mean_t ||F_t(p)||^2`` over the volume's loop (big
  motion = in front): ``backend.spectral.mean_square_displacement``, exact by Parseval. The splat metric is
  ``metric = 20 * sqrt(W) / (max sqrt(W) + 1e-6)``, i.e. RMS motion rescaled to [0, 20]: RMS (not W) keeps
  slow parts ordered too (a part moving at a quarter of the peak still gets metric 5, i.e. 148x the weight of
  the static background), and the fixed range keeps exp() far from float32 underflow for any image scale.
* **Holes** (disocclusions, vacated borders) are filled by push-pull normalised interpolation: the splat
  result, weighted by its coverage, is averaged down an image pyramid and holes take the colour of the nearest
  covered neighbourhood at the finest level that has one. Pixels with coverage >= 0.5 keep their splatted
  colour exactly. The average favours background: the metric is splatted along with the colours and each
  pixel weighs exp(-0.5 * metric), because what a moving part uncovers is what lies behind it. Chosen over
  "original pixel at the hole", which re-draws the moving object at its rest position (a ghost), and over a
  plain push-pull, which smears the moving object's colour into the gap it leaves.
* **Loops.** Frames 0 .. N-1 are written; with the default N = T frames at the volume's fps, frame N would equal
  frame 0, so playback on repeat is seamless. Any fps works: N defaults to round(loop seconds * fps).

Files: ``.mp4`` (libx264, yuv420p, CRF 18; odd sizes are padded by one replicated pixel row/column) or ``.gif``
(Pillow, one shared palette, loop=0). Both stream frames chunk by chunk, so memory stays bounded.
"""
from __future__ import annotations

import logging
import os
import pathlib
import time
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from addon.core.spectral import SpectralVolume, resize_bilinear

from .spectral import displacement_at, mean_square_displacement
from .splat import softmax_splat

log = logging.getLogger(__name__)

METRIC_RANGE = 20.0  # metric of the fastest-moving pixel; static pixels get 0
FILL_CONFIDENCE = 0.5  # coverage at or above which a splatted pixel is kept as is
BACKGROUND_BIAS = 0.5  # hole fill: a pixel with metric 20 weighs e^-10 of a static one
PIXELS_PER_CHUNK = 330_000  # frames per batch: about this many pixels (8 at 256x160; larger batches are slower on CPU)
MP4_CRF = 18
SUPPORTED_EXTENSIONS = (".mp4", ".gif")
CRACK_COVERAGE = 0.6  # mean coverage of a 3x3 neighbourhood above which a hole is a crack, not a disocclusion

__all__ = ["render_preview", "warp_frames", "iter_warped_frames", "motion_metric", "fill_holes", "demo_inputs",
           "SUPPORTED_EXTENSIONS"]


# ----------------------------------------------------------------------------------------------------------------
# Who is in front
# ----------------------------------------------------------------------------------------------------------------

def motion_metric(coeffs: torch.Tensor) -> torch.Tensor:
    """Softmax-splat metric (1, 1, H, W) in [0, METRIC_RANGE] from coeffs (K, 4, H, W): rescaled RMS motion
    (the square root of ``backend.spectral.mean_square_displacement``)."""
    rms = mean_square_displacement(coeffs.double()).sqrt()  # (H, W)
    metric = METRIC_RANGE * rms / (rms.max() + 1e-6)
    return metric.to(coeffs.dtype)[None, None]


# ----------------------------------------------------------------------------------------------------------------
# Hole filling
# ----------------------------------------------------------------------------------------------------------------

def fill_holes(image: torch.Tensor, coverage: torch.Tensor, metric: torch.Tensor | None = None, *,
               confidence: float = FILL_CONFIDENCE, background_bias: float = BACKGROUND_BIAS) -> torch.Tensor:
    """Push-pull fill. image (B, C, H, W), coverage (B, 1, H, W) >= 0 (0 = hole) -> (B, C, H, W).

    Pixels with coverage >= ``confidence`` are returned unchanged; holes get the average colour of the finest
    pyramid level around them that has enough coverage; partial coverage blends linearly. With the splatted
    ``metric`` (B, 1, H, W) the average favours background: each pixel's colour weighs
    ``exp(-background_bias * (metric - min metric))``, and a pyramid cell is trusted less when a neighbouring
    cell lies further back, because what a moving part uncovers lies behind it.
    """
    alpha = coverage.clamp(0.0, 1.0)
    if bool((alpha >= confidence).all()):
        return image
    # Cracks first: a hole whose 3x3 neighbourhood is mostly covered (a stretched part pulling its pixels apart)
    # takes its neighbours' plain average, whatever lies behind, so moving parts do not get background specks.
    near = F.avg_pool2d(alpha, 3, stride=1, padding=1, count_include_pad=False)
    crack = (alpha < confidence) & (near >= CRACK_COVERAGE)
    if bool(crack.any()):
        mean = F.avg_pool2d(image * alpha, 3, stride=1, padding=1, count_include_pad=False) / near.clamp_min(1e-30)
        image = torch.where(crack, mean, image)
        alpha = torch.where(crack, torch.ones_like(alpha), alpha)
        if metric is not None:
            metric_mean = F.avg_pool2d(metric * coverage.clamp(0.0, 1.0), 3, stride=1, padding=1,
                                       count_include_pad=False) / near.clamp_min(1e-30)
            metric = torch.where(crack, metric_mean, metric)
    if bool((alpha >= confidence).all()):
        return image
    weight = alpha
    if metric is not None:
        low = metric.amin(dim=(1, 2, 3), keepdim=True)
        weight = alpha * torch.exp(-background_bias * (metric - low))
    levels = [(image * weight, weight, alpha)]
    while min(levels[-1][0].shape[-2:]) > 1:
        levels.append(tuple(F.avg_pool2d(x, 2, ceil_mode=True) for x in levels[-1]))
    v, w, _ = levels[-1]
    filled = v / w.clamp_min(1e-30)  # coarsest level: the mean colour (0 if nothing is covered at all)
    for v, w, a in reversed(levels[:-1]):
        up = F.interpolate(filled, size=v.shape[-2:], mode="bilinear", align_corners=False)
        conf = (a / confidence).clamp(0.0, 1.0)
        if metric is not None:  # trust a cell less when a neighbouring cell is further back
            back = w / a.clamp_min(1e-30)  # mean exp(-bias * metric) of the cell's covered pixels, in [0, 1]
            conf = conf * back / F.max_pool2d(back, 3, stride=1, padding=1).clamp_min(1e-30)
        filled = conf * (v / w.clamp_min(1e-30)) + (1.0 - conf) * up
    keep = alpha >= confidence
    return torch.where(keep, image, filled)


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
        metric = motion_metric(coeffs)
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


# ----------------------------------------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------------------------------------

class _Mp4Writer:
    def __init__(self, path: str, width: int, height: int, fps: float):
        import imageio_ffmpeg

        self.pad = (height % 2, width % 2)
        size = (width + self.pad[1], height + self.pad[0])
        self.size = size
        self._gen = imageio_ffmpeg.write_frames(path, size, fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                                quality=None, output_params=["-crf", str(MP4_CRF)],
                                                macro_block_size=1, ffmpeg_log_level="error")
        self._gen.send(None)

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
    ext = pathlib.Path(path).suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise ValueError(f"cannot write preview '{path}': unknown extension '{ext or '(none)'}'; "
                         f"use one of {', '.join(SUPPORTED_EXTENSIONS)}")
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
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    writer = (_Mp4Writer if ext == ".mp4" else _GifWriter)(path, width, height, fps)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=num_frames, unit="frame", desc=f"preview {pathlib.Path(path).name}", leave=False)
    try:
        for batch in iter_warped_frames(image, volume, range(num_frames), fps=fps, device=device):
            writer.write(batch)
            if bar is not None:
                bar.update(len(batch))
    finally:
        writer.close()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    info = {"frames": num_frames, "fps": fps, "seconds": seconds, "frames_per_second": num_frames / seconds,
            "width": writer.size[0], "height": writer.size[1], "path": path}
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
