"""``image-dynamics render``: neural frames of a photo moved by a spectral volume, as a PNG/EXR sequence."""
from __future__ import annotations

import json
import logging
import os
import sys
import time

import numpy as np

log = logging.getLogger(__name__)


def read_photo(path: str) -> np.ndarray:
    """RGB uint8 (H, W, 3) from an image file; UserError when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    from backend.cli import UserError

    if not os.path.isfile(path):
        raise UserError(f"photo '{path}' does not exist: give a PNG, JPEG, TIFF or WebP image")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"cannot read '{path}' as an image ({exc}): give a PNG, JPEG, TIFF or WebP image") from None


def read_mask(path: str) -> np.ndarray:
    """Motion mask (h, w) in [0, 1] from a greyscale/RGB image file (white = moves, black = still)."""
    from backend.cli import UserError

    from .render import read_mask_image

    if not os.path.isfile(path):
        raise UserError(f"--mask '{path}' does not exist: give a greyscale PNG (white = moves, black = still)")
    try:
        return read_mask_image(path)
    except ValueError as exc:
        raise UserError(f"cannot use '{path}' as a motion mask ({exc}): give a greyscale PNG (white = moves, "
                        "black = still)") from None


def parse_frames(text: str) -> tuple:
    """'0:149' or '1-150' (inclusive) or '5' -> frame numbers."""
    from backend.cli import UserError

    for sep in (":", "-"):
        if sep in text:
            a, _, b = text.partition(sep)
            break
    else:
        a = b = text
    try:
        first, last = int(a), int(b)
    except ValueError:
        raise UserError(f"--frames '{text}' is not FIRST:LAST (inclusive), e.g. 1:150") from None
    if first < 0 or last < first:
        raise UserError(f"--frames {first}..{last}: give 0 <= FIRST <= LAST")
    return tuple(range(first, last + 1))


def read_modal(path: str):
    """(frames or None, q) from a .json {"frames": [...], "q": [[[re, im], ...], ...]} or a .npy array
    ((N, K, 2) real or (N, K) complex)."""
    from backend.cli import UserError

    if not os.path.isfile(path):
        raise UserError(f"--modal file '{path}' does not exist")
    if path.lower().endswith(".npy"):
        try:
            return None, np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise UserError(f"--modal '{path}' is not a numpy array file ({exc})") from None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"--modal '{path}' is neither .npy nor valid JSON ({exc})") from None
    if not isinstance(data, dict) or "q" not in data:
        raise UserError(f"--modal '{path}' must be a JSON object with 'q' (and optionally 'frames'); "
                        "see docs/renderer.md")
    return (tuple(data["frames"]) if data.get("frames") is not None else None), data["q"]


def _cmd_render(args) -> int:
    from addon.core.spectral import load_npz
    from backend.cli import UserError
    from backend.device import resolve_device
    from backend.video import VideoError, parse_size

    from . import checkpoint
    from .frames import LoopSettings, check_coordinates
    from .render import RenderSettings, render_sequence

    photo = read_photo(args.photo)
    volume = load_npz(args.volume)
    mask = read_mask(args.mask) if args.mask else None
    try:
        size = parse_size(args.size) if args.size else None
        device = resolve_device(args.device)
    except (VideoError, ValueError) as exc:
        raise UserError(str(exc)) from None
    fps = float(args.fps if args.fps else volume.fps)
    if args.modal:
        frames, q = read_modal(args.modal)
        if args.frames:
            frames = parse_frames(args.frames)
        try:
            q = check_coordinates(q, volume.k)
        except ValueError as exc:
            raise UserError(f"--modal '{args.modal}': {exc}") from None
        frames = frames if frames is not None else tuple(range(len(q)))
    else:
        try:
            loop = LoopSettings(loop_frames=args.loop_frames or volume.num_frames / volume.fps * fps,
                                phase_frame=args.phase_frame, amplitude=args.amplitude)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        frames = parse_frames(args.frames) if args.frames else tuple(range(int(round(loop.loop_frames))))
        q = loop.coordinates(volume.k, frames)
    try:
        settings = RenderSettings(frames=frames, format=args.format, size=size)
        model, meta = checkpoint.load(args.checkpoint, device=device)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(frames), unit="frame", desc="render", leave=False)
    t0 = time.perf_counter()
    try:
        paths = render_sequence(model, photo, volume, q, settings, args.output, prefix=args.prefix, device=device,
                                motion_mask=mask,
                                callback=(lambda done, total: bar.update(1)) if bar is not None else None)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    print(f"wrote {len(paths)} frames {os.path.basename(paths[0])} .. {os.path.basename(paths[-1])} to "
          f"{args.output} with {meta['model_id']} ({len(paths) / seconds:.1f} frames/s on {device.type})",
          file=sys.stdout)
    return 0


def add_commands(sub) -> None:
    r = sub.add_parser(
        "render", help="neural frames: the photo moved by a spectral volume, as a PNG/EXR image sequence",
        description="Render frames of PHOTO moved by VOLUME with the neural renderer (softmax splatting of a "
                    "feature pyramid + synthesis network). Default motion: the volume's seamless loop at --fps. "
                    "Pokes or any other motion: --modal with per-frame modal coordinates (docs/renderer.md). "
                    "Files are named <prefix><frame:04d>.<format>; Ctrl-C removes the partial sequence.")
    r.add_argument("photo", help="the photo (PNG, JPEG, ...)")
    r.add_argument("volume", help="spectral volume (.npz) from 'image-dynamics extract' or the motion model")
    r.add_argument("-o", "--output", required=True, help="folder for the frames (made if missing)")
    r.add_argument("--frames", help="frame range FIRST:LAST, inclusive (default: one loop from 0, or the --modal "
                                    "file's frames)")
    r.add_argument("--fps", type=float, help="output frame rate for the loop (default: the volume's)")
    r.add_argument("--loop-frames", type=float, help="loop length in output frames (default: the volume's duration "
                                                     "at --fps)")
    r.add_argument("--phase-frame", type=float, default=0.0, help="frame where the loop's phase is 0 (default 0)")
    r.add_argument("--amplitude", type=float, default=1.0, help="motion scale (default 1)")
    r.add_argument("--modal", help="per-frame modal coordinates instead of the loop: .json {\"frames\", \"q\"} or "
                                   ".npy (N, K, 2) [re, im]")
    r.add_argument("--mask", help="motion mask image stretched over the frame: white moves freely, black stays still "
                                  "(grey scales the motion)")
    r.add_argument("--format", choices=("png", "exr"), default="png", help="png (8-bit sRGB) or exr (linear float)")
    r.add_argument("--size", help="frame size WxH (default: the photo's aspect, longer side at most 512)")
    r.add_argument("--prefix", default="frame_", help="file name prefix (default frame_)")
    r.add_argument("--checkpoint", help="renderer checkpoint (default: the shipped one)")
    r.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_render)
