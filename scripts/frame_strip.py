"""A frame strip (PNG) of a volume's warp preview: frames across one loop, and the motion amplitude map.

    .venv/bin/python scripts/frame_strip.py VOLUME.npz VIDEO_OR_IMAGE -o strip.png [--frames 4] [--start S]

The still is the clip's start frame (the volume's ``start_frame``) or a photo. Columns: evenly spaced loop frames,
then |motion| (per-pixel peak displacement over the loop, brighter = more motion) and a difference image
|frame(T/2) - frame(0)| x4 that shows what moves.
"""
from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np
from PIL import Image, ImageDraw

from addon.core.spectral import load_npz
from backend.preview import warp_frames
from backend.video import read_clip

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def load_still(path: str, volume, start: int | None) -> np.ndarray:
    size = (volume.width, volume.height)
    if path.lower().endswith(IMAGE_EXT):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    start = volume.provenance.get("start_frame", 0) if start is None else start
    return read_clip(path, start=start, num_frames=1, size=size).frames[0]


def label(tile: np.ndarray, text: str) -> np.ndarray:
    img = Image.fromarray(tile)
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, 7 * len(text) + 6, 14], fill=(0, 0, 0))
    draw.text((3, 1), text, fill=(255, 255, 255))
    return np.asarray(img)


def make_strip(volume, still: np.ndarray, n: int = 4) -> np.ndarray:
    t = volume.num_frames
    frames_idx = np.linspace(0, t, n, endpoint=False).round().astype(int)
    frames = warp_frames(still, volume, frames_idx)
    tiles = [label(f, f"frame {i}") for f, i in zip(frames, frames_idx)]
    traj = volume.trajectories()  # (T, 2, H, W)
    mag = np.sqrt((traj ** 2).sum(axis=1)).max(axis=0)
    mag = (255 * mag / max(float(mag.max()), 1e-6)).astype(np.uint8)
    heat = cv2.cvtColor(cv2.applyColorMap(mag, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    tiles.append(label(heat, f"|motion| max {float(np.sqrt((traj ** 2).sum(axis=1)).max()):.1f}px"))
    half = warp_frames(still, volume, np.array([0, t // 2]))
    diff = np.clip(4 * np.abs(half[1].astype(np.int16) - half[0].astype(np.int16)), 0, 255).astype(np.uint8)
    tiles.append(label(diff, "|f(T/2)-f(0)| x4"))
    gap = np.full((still.shape[0], 4, 3), 255, np.uint8)
    row = [tiles[0]]
    for tile in tiles[1:]:
        row += [gap, tile]
    return np.concatenate(row, axis=1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("volume")
    p.add_argument("still", help="the clip the volume came from, or a photo")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--start", type=int, help="clip frame to use as the still (default: the volume's start frame)")
    args = p.parse_args(argv)
    volume = load_npz(args.volume)
    strip = make_strip(volume, load_still(args.still, volume, args.start), args.frames)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    Image.fromarray(strip).save(args.output, optimize=True)
    print(f"wrote {args.output} ({strip.shape[1]}x{strip.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
