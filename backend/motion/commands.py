"""``image-dynamics predict`` (a photo or a folder of photos -> spectral volumes) and ``image-dynamics animate``
(predict + a warped preview loop)."""
from __future__ import annotations

import os
import sys
import time

import numpy as np

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
SAMPLE_PHOTO = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "sample_flower.jpg")
MAX_PIXELS = 64_000_000
PREVIEW_SIDE = 768


def read_photo(path: str) -> np.ndarray:
    """-> uint8 (H, W, 3) RGB, EXIF orientation applied. Raises UserError for anything that is not a usable photo."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    from backend.cli import UserError

    if not os.path.isfile(path):
        raise UserError(f"photo '{path}' does not exist")
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise UserError(f"photo '{path}' is {im.width}x{im.height}: over {MAX_PIXELS // 1_000_000} MP, "
                                f"scale it down first")
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot read '{path}' as an image ({exc}): use a JPEG, PNG or WebP photo") from None


def read_moves(path: str) -> np.ndarray:
    """The ``--moves`` hint (h, w) in [0, 1] from an image file (white = moves, black = still, grey = less; any
    size, stretched over the photo). Raises UserError for anything that is not a usable hint."""
    from backend.cli import UserError
    from backend.motion.hint import HintError, check_hint
    from backend.render.render import read_mask_image

    if not os.path.isfile(path):
        raise UserError(f"--moves '{path}' does not exist: give a greyscale image, white where the photo moves")
    try:
        return check_hint(read_mask_image(path, MAX_PIXELS))
    except (HintError, ValueError) as exc:
        raise UserError(f"cannot use '{path}' as a moves hint ({exc}): give a greyscale image, white where the "
                        f"photo moves, black where it stays still") from None


def _params(args):
    from backend.cli import UserError

    if not (0.0 <= args.amplitude <= 100.0):
        raise UserError(f"--amplitude {args.amplitude}: use 0..100 (1 = as predicted)")
    from backend.motion.predictor import PredictParams

    p = PredictParams(steps=args.steps, guidance=args.guidance, loop=args.loop, seed=args.seed,
                      num_frames=args.frames, fps=args.fps, sampler=args.sampler, recurrence=args.recurrence)
    try:
        p.validate()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return p


def _predictor(args):
    from backend.cli import UserError
    from backend.motion.predictor import load_predictor, tiny_predictor

    try:
        if args.model == "tiny":
            return tiny_predictor(device=args.device)
        return load_predictor(args.model, device=args.device)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None


def _predict_one(predictor, photo, params, label, quiet, amplitude=1.0, moves=None):
    from tqdm import tqdm

    from addon.core.spectral import SpectralVolume

    bar = tqdm(total=params.steps, desc=f"predict {label}", unit="step", leave=False, disable=quiet)
    try:
        vol = predictor.predict(photo, params, callback=lambda step, total: bar.update(1), moves=moves)
    finally:
        bar.close()
    if amplitude != 1.0:  # the contract's amplitude control: scale every A_k
        vol = SpectralVolume(vol.coeffs * np.float32(amplitude), fps=vol.fps, num_frames=vol.num_frames,
                             source_size=vol.source_size, provenance=vol.provenance)
    return vol


def _predict_photo(args, src, params):
    """One photo (the sample when none was named) -> (photo, predictor, volume, seconds)."""
    if args.photo is None:
        print(f"no PHOTO given: using the shipped sample photo {os.path.relpath(src)}", file=sys.stderr)
    photo = read_photo(src)
    moves = read_moves(args.moves) if args.moves else None
    predictor = _predictor(args)
    t0 = time.perf_counter()
    vol = _predict_one(predictor, photo, params, os.path.basename(src), args.quiet, args.amplitude, moves)
    return photo, predictor, vol, time.perf_counter() - t0


def _summary(vol) -> str:
    amp = vol.amplitude()
    peak = int(amp[1:].reshape(vol.k - 1, -1).mean(axis=1).argmax()) + 1
    return (f"K={vol.k} map {vol.width}x{vol.height}, mean |A| {amp[1:].sum(0).mean():.2f} px, "
            f"strongest band {vol.freqs_hz[peak]:.2f} Hz")


def cmd_predict(args) -> int:
    from backend.cli import UserError

    params = _params(args)
    src = args.photo or SAMPLE_PHOTO
    if os.path.isdir(src):
        if args.moves:
            raise UserError("--moves applies to one photo: predict a folder without it, or each photo with its "
                            "own hint")
        photos = sorted(os.path.join(src, f) for f in os.listdir(src) if f.lower().endswith(PHOTO_EXTENSIONS))
        if not photos:
            raise UserError(f"folder '{src}' has no photos ({', '.join(PHOTO_EXTENSIONS)})")
        out_dir = args.output or os.path.join(src, "volumes")
        if out_dir.lower().endswith(".npz"):
            raise UserError("-o must be a folder when predicting a folder of photos")
        os.makedirs(out_dir, exist_ok=True)
        predictor = _predictor(args)
        from tqdm import tqdm

        failed, done = [], 0
        for path in tqdm(photos, desc="photos", unit="photo", disable=args.quiet):
            out = os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0] + ".npz")
            if os.path.exists(out) and not args.overwrite:
                continue
            try:
                vol = _predict_one(predictor, read_photo(path), params, os.path.basename(path), True,
                                   args.amplitude)
            except UserError as exc:
                failed.append(f"{path}: {exc}")
                continue
            vol.save(out)
            done += 1
        print(f"wrote {done} volumes to {out_dir} ({len(photos) - done - len(failed)} already there, "
              f"{len(failed)} failed) with {predictor.model_id}")
        for line in failed:
            print(f"  failed: {line}", file=sys.stderr)
        return 1 if failed else 0
    photo, predictor, vol, seconds = _predict_photo(args, src, params)
    out = args.output or os.path.splitext(os.path.basename(src))[0] + ".npz"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    vol.save(out)
    print(f"wrote {out}: {_summary(vol)}; {predictor.model_id}, {params.steps} steps, seed {params.seed}, "
          f"{seconds:.1f} s on {predictor.device.type}")
    return 0


def cmd_animate(args) -> int:
    from backend.cli import UserError
    from backend.preview import render_preview
    from backend.video import VIDEO_EXTENSIONS

    out = args.output or "loop.mp4"
    if os.path.splitext(out)[1].lower() not in VIDEO_EXTENSIONS:
        raise UserError(f"-o '{out}': use a file ending in {' or '.join(VIDEO_EXTENSIONS)}")
    params = _params(args)
    photo, predictor, vol, seconds = _predict_photo(args, args.photo or SAMPLE_PHOTO, params)
    if args.volume:
        os.makedirs(os.path.dirname(os.path.abspath(args.volume)), exist_ok=True)
        vol.save(args.volume)
    try:
        size = args.size or (PREVIEW_SIDE if max(photo.shape[:2]) > PREVIEW_SIDE else None)
        info = render_preview(photo, vol, out, size=size, progress=not args.quiet, device=predictor.device)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {out}: {info['frames']} frames {info['width']}x{info['height']} at {info['fps']:g} fps; "
          f"motion {_summary(vol)}; predicted in {seconds:.1f} s with {predictor.model_id}"
          + (f"; volume {args.volume}" if args.volume else ""))
    return 0


def _common(p):
    p.add_argument("--model", help="motion checkpoint (.pt); default: the shipped one; 'tiny' = random test model")
    p.add_argument("--steps", type=int, default=25, help="denoising steps (default 25)")
    p.add_argument("--guidance", type=float, default=1.5, help="classifier-free guidance scale (default 1.5)")
    p.add_argument("--loop", type=float, default=0.0, help="loop self-guidance weight u (default 0 = off)")
    p.add_argument("--recurrence", type=int, default=1, help="self-recurrence per step with --loop (default 1)")
    p.add_argument("--sampler", choices=("ddim", "dpm"), default="ddim", help="ddim (default) or dpm (DPM-Solver++)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same motion)")
    p.add_argument("--frames", type=int, default=150, help="loop length T in frames (default 150)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of the loop (default 30)")
    p.add_argument("--amplitude", type=float, default=1.0, help="scale the predicted motion (default 1)")
    p.add_argument("--moves", metavar="MASK", help="'moves here' hint image: white = moves, black = stays still, "
                                                   "grey = less; any size (stretched over the photo)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def add_commands(sub) -> None:
    p = sub.add_parser("predict", help="predict a spectral volume (.npz) from a photo or a folder of photos",
                       description="Sample the motion of a still photo with the motion model. A folder predicts "
                                   "every photo in it into -o FOLDER (default FOLDER/volumes), skipping done ones.")
    p.add_argument("photo", nargs="?", help="photo or folder of photos; default: the shipped sample photo")
    p.add_argument("-o", "--output", help="volume to write (.npz), or a folder for a folder of photos")
    p.add_argument("--overwrite", action="store_true", help="folder mode: predict photos that already have a volume")
    _common(p)
    p.set_defaults(func=cmd_predict)

    a = sub.add_parser("animate", help="predict a photo's motion and write a looping preview (.mp4 or .gif)")
    a.add_argument("photo", nargs="?", help="photo; default: the shipped sample photo")
    a.add_argument("-o", "--output", help="preview to write (.mp4 or .gif, default loop.mp4)")
    a.add_argument("--volume", help="also save the predicted spectral volume (.npz)")
    a.add_argument("--size", type=int, help=f"longer side of the preview in pixels (default: the photo's, at most {PREVIEW_SIDE})")
    _common(a)
    a.set_defaults(func=cmd_animate)
