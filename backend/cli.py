"""The ``image-dynamics`` command line. Errors reach the user as one line saying what to do (exit code 2)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from addon.core.spectral import SpectralVolumeError

log = logging.getLogger("image_dynamics")

# Modules that add subcommands: each defines ``add_commands(sub)`` (sub = argparse subparsers); their handlers
# take ``args`` and return an exit code, raising ``UserError`` for errors the user can fix.
COMMAND_MODULES = ("backend.motion.commands", "backend.service.commands", "backend.render.commands")


class UserError(Exception):
    """An error the user can fix; printed without a traceback."""


def _sample_progress(done: int, total: int) -> None:
    print(f"\rrendering the sample clip into the cache (once): frame {done}/{total}", end="\n" if done == total else "",
          file=sys.stderr, flush=True)


def _cmd_extract(args) -> int:
    from backend.extract import RejectedWindow, extract
    from backend.video import VideoError, parse_size

    video = args.video
    if video is None:
        from backend.sample import sample_clip
        try:
            video = sample_clip(progress=None if args.quiet else _sample_progress)
        except RuntimeError as exc:
            raise UserError(str(exc)) from None
        print(f"no VIDEO given: using the procedural sample clip {video}", file=sys.stderr)
    name = os.path.splitext(os.path.basename(args.video))[0] if args.video else "sample_meadow"
    output = args.output or name + ".npz"
    if args.preview:
        from backend.video import VIDEO_EXTENSIONS
        if os.path.splitext(args.preview)[1].lower() not in VIDEO_EXTENSIONS:
            raise UserError(f"--preview '{args.preview}': use a file ending in {' or '.join(VIDEO_EXTENSIONS)}")
    try:
        size = parse_size(args.size)
        t0 = time.perf_counter()
        result = extract(video, start=args.start, num_frames=args.frames, k=args.k, size=size, fps=args.fps,
                         method=args.method, force=args.force, progress=not args.quiet,
                         remove_camera=not args.keep_camera)
        seconds = time.perf_counter() - t0
    except (VideoError, RejectedWindow) as exc:
        raise UserError(str(exc)) from None
    if result.rejected:
        print(f"warning: {result.rejected} (extracted anyway because of --force)", file=sys.stderr)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    result.volume.save(output)
    vol, st = result.volume, result.stats
    amp = vol.amplitude()
    peak_k = int(amp[1:].reshape(vol.k - 1, -1).mean(axis=1).argmax()) + 1 if vol.k > 1 else 0
    print(f"wrote {output}: K={vol.k} map {vol.width}x{vol.height} from {vol.source_size[0]}x{vol.source_size[1]}, "
          f"T={vol.num_frames} frames at {vol.fps:g} fps (frames {args.start}..{args.start + vol.num_frames - 1}); "
          f"moving pixels {100 * st.fraction_moving:.1f}% of the {100 * st.trusted_fraction:.0f}% trusted, "
          f"mean motion {st.mean_motion_px:.2f} px"
          + (f", camera motion removed (up to {st.camera_px:.1f} px)" if st.camera_px > 0 else "") + ", "
          f"strongest band {vol.freqs_hz[peak_k]:.2f} Hz; {vol.num_frames / seconds:.1f} frames/s")
    if args.preview:
        from backend.device import resolve_device
        from backend.preview import render_preview
        try:
            device = resolve_device(args.device)
            info = render_preview(result.clip.frames[0], vol, args.preview, progress=not args.quiet, device=device)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        print(f"wrote {args.preview}: {info['frames']} frames at {info['fps']:g} fps "
              f"({info['frames_per_second']:.1f} frames/s on {device.type})")
    return 0


def _cmd_info(args) -> int:
    from addon.core.spectral import load_npz

    vol = load_npz(args.volume)
    amp = vol.amplitude()
    print(f"{args.volume}: K={vol.k}, map {vol.width}x{vol.height}, source {vol.source_size[0]}x"
          f"{vol.source_size[1]}, T={vol.num_frames} at {vol.fps:g} fps, provenance {vol.provenance}")
    for k in range(vol.k):
        print(f"  k={k:2d} f={vol.freqs_hz[k]:5.2f} Hz  mean |A|={amp[k].mean():7.3f} px  max={amp[k].max():7.3f} px")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="image-dynamics", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("extract", help="take the motion of a real clip as a spectral volume (.npz)",
                       description="Dense optical flow from a start frame to the next T-1 frames, FFT over time, "
                                   "K lowest frequency bins. Without VIDEO, the procedural sample clip is used "
                                   "(rendered once into the cache).")
    e.add_argument("video", nargs="?", help="clip to read (mp4, mov, avi, ...); default: the procedural sample clip")
    e.add_argument("-o", "--output", help="volume to write (.npz); default: <clip name>.npz")
    e.add_argument("--start", type=int, default=0, help="first frame of the window (default 0)")
    e.add_argument("--frames", type=int, default=150, help="window length T in frames (default 150)")
    e.add_argument("--k", type=int, default=16, help="number of frequency bins K (default 16)")
    e.add_argument("--size", default="256x160", help="working map size WxH (default 256x160)")
    e.add_argument("--fps", type=float, help="override the clip's frame rate")
    e.add_argument("--method", choices=("dis", "farneback"), default="dis", help="optical flow (default dis)")
    e.add_argument("--force", action="store_true", help="extract even if a rejection rule fires")
    e.add_argument("--keep-camera", action="store_true",
                   help="keep the camera's own motion (default: a global motion fitted per frame is removed)")
    e.add_argument("--preview", help="also write a warped preview loop of the start frame (.mp4 or .gif)")
    e.add_argument("--device", default="auto", help="where the preview renders: auto (CUDA when present), cpu, cuda")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=_cmd_extract)

    i = sub.add_parser("info", help="print a spectral volume's fields and per-frequency amplitudes")
    i.add_argument("volume")
    i.set_defaults(func=_cmd_info)

    import importlib
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (UserError, SpectralVolumeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
