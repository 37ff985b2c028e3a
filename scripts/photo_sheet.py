#!/usr/bin/env python
"""A sheet of photos and their predicted motion (PNG): per photo, the photo, the predicted amplitude map and two
frames of the loop (a quarter and three quarters of the way through), each warped by the predicted volume.

    python scripts/photo_sheet.py ../shared/data/photos -o docs/img/photo_sheet.jpg [--model PATH] [--seed 0]

Every photo is shown at 256 px wide (its aspect kept); the amplitude map is the RMS displacement over the loop per
pixel (inferno colours, its own maximum noted in px of the 256-wide map).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import cv2
import numpy as np

from backend.motion.commands import PHOTO_EXTENSIONS, read_photo
from backend.motion.predictor import PredictParams, load_predictor
from backend.preview import warp_frames
from frame_strip import label  # a sibling script

WIDTH = 256


def heat(amp: np.ndarray) -> np.ndarray:
    a = (255 * np.clip(amp / max(float(amp.max()), 1e-6), 0, 1)).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(a, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def row(photo: np.ndarray, volume, name: str) -> np.ndarray:
    h = int(round(WIDTH * photo.shape[0] / photo.shape[1]))
    small = cv2.resize(photo, (WIDTH, h), interpolation=cv2.INTER_AREA)
    vol = volume.resampled(WIDTH, h)
    amp = np.sqrt((vol.coeffs[1:].astype(np.float64) ** 2).sum(axis=(0, 1)) / 2)  # RMS over the loop, px
    t = vol.num_frames
    frames = warp_frames(small, vol, [t // 4, 3 * t // 4])
    tiles = [label(small, name[:34]), label(heat(amp), f"RMS motion, max {amp.max():.1f}px"),
             label(frames[0], f"frame {t // 4}"), label(frames[1], f"frame {3 * t // 4}")]
    gap = np.full((h, 3, 3), 255, np.uint8)
    out = [tiles[0]]
    for tile in tiles[1:]:
        out += [gap, tile]
    return np.concatenate(out, axis=1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("photos", help="a folder of photos")
    p.add_argument("-o", "--output", required=True, help="PNG to write")
    p.add_argument("--model", help="motion checkpoint (default: the shipped one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=25)
    a = p.parse_args(argv)
    from PIL import Image
    from tqdm import tqdm

    names = sorted(f for f in os.listdir(a.photos) if f.lower().endswith(PHOTO_EXTENSIONS))
    if not names:
        print(f"error: no photos in {a.photos}", file=sys.stderr)
        return 2
    pred = load_predictor(a.model)
    params = PredictParams(steps=a.steps, seed=a.seed)
    rows, t0 = [], time.perf_counter()
    for name in tqdm(names, desc="photos", unit="photo"):
        photo = read_photo(os.path.join(a.photos, name))
        rows.append(row(photo, pred.predict(photo, params), os.path.splitext(name)[0]))
    width = max(r.shape[1] for r in rows)
    sheet = []
    for r in rows:
        sheet += [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255),
                  np.full((3, width, 3), 255, np.uint8)]
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    Image.fromarray(np.concatenate(sheet[:-1])).save(a.output, optimize=True)
    print(f"wrote {a.output}: {len(rows)} photos with {pred.model_id} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
