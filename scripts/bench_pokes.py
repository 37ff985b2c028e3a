"""Benchmark pokes: the modal simulation (addon/core/modal.py) and, when bpy is importable, the whole "Simulate
Pokes" in Blender (addon/pokes.py: read 10 poke Empties, simulate, key loop + pokes into the 2K modal keys).

Default case of the issue: K = 16 bands on a 256x160 volume, 10 pokes, 600 frames at 24 fps, then the conversion to
per-frame shape-key values (600 x 2K floats). Target: <= 0.2 s for simulate + bake into Blender. Prints times (min
and median of repeats) and machine info. Timings on shared VMs vary 2-8x: repeat and compare ratios, never assert
them in tests.

    .venv/bin/python scripts/bench_pokes.py [--frames 600] [--fps 24] [--pokes 10] [--repeat 20] [--columns 128]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import time

import blender_scene  # first: bpy's config and cache go to build/bench-home
import numpy as np

from addon.core import modal, spectral


def machine_info() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.platform()} | {cpu} | {os.cpu_count()} logical CPUs | Python {platform.python_version()} | "
            f"numpy {np.__version__}")


def make_volume(k: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth random volume with amplitude falling as 1/k, like predicted motion (coeffs (K, 4, H, W))."""
    rng = np.random.default_rng(seed)
    low = rng.normal(size=(k, 4, max(2, height // 16), max(2, width // 16)))
    fall = 2.0 / np.maximum(np.arange(k), 1.0)
    return (spectral.resize_bilinear(low, height, width) * fall[:, None, None, None]).astype(np.float32)


def make_pokes(n: int, frames: int, width: int, height: int, seed: int = 1) -> list:
    rng = np.random.default_rng(seed)
    return [modal.Poke(frame=float(rng.uniform(0, frames * 0.8)), x=float(rng.uniform(0, width)),
                       y=float(rng.uniform(0, height)), force_x=float(rng.normal(0, 5)),
                       force_y=float(rng.normal(0, 5)), kind=("drag", "impulse")[i % 2]) for i in range(n)]


def timed(fn, repeat: int):
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times), statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--height", type=int, default=160)
    ap.add_argument("--pokes", type=int, default=10)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--fps", type=float, default=24.0)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--columns", type=int, default=128, help="vertices across the Blender plane (rows by aspect)")
    args = ap.parse_args(argv)

    print(machine_info())
    coeffs = make_volume(args.k, args.width, args.height)
    freqs = spectral.frequencies(args.k, 30.0, 150)
    pokes = make_pokes(args.pokes, args.frames, args.width, args.height)
    params = modal.ModalParams()
    print(f"volume K={args.k} {args.width}x{args.height}, {args.pokes} pokes, {args.frames} frames at "
          f"{args.fps:g} fps, repeats={args.repeat}")

    _, ref_min, ref_med = timed(lambda: modal.reference_amplitude(coeffs), args.repeat)
    omega, gamma = modal.band_constants(freqs, params)
    kicks = np.zeros((args.frames, args.k, 2), dtype=np.complex128)
    kicks[0, 1:, 0] = 1.0
    _, step_min, step_med = timed(lambda: modal.step_frames(omega, gamma, 1.0 / args.fps, kicks), args.repeat)
    q, sim_min, sim_med = timed(lambda: modal.simulate(coeffs, freqs, pokes, args.frames, args.fps, params),
                                args.repeat)
    values, key_min, key_med = timed(lambda: modal.key_values(q), args.repeat)
    _, all_min, all_med = timed(
        lambda: modal.key_values(modal.simulate(coeffs, freqs, pokes, args.frames, args.fps, params)), args.repeat)

    rows = [("reference amplitude (part of simulate)", ref_min, ref_med),
            (f"exact stepping alone ({args.frames} frames)", step_min, step_med),
            ("simulate (pokes -> q, complete)", sim_min, sim_med),
            (f"key values ({values.shape[0]} x {values.shape[1]} float32)", key_min, key_med),
            ("simulate + key values", all_min, all_med)]
    width = max(len(r[0]) for r in rows)
    print(f"{'stage':<{width}}  {'min ms':>8}  {'median ms':>9}")
    for name, tmin, tmed in rows:
        print(f"{name:<{width}}  {tmin * 1e3:8.2f}  {tmed * 1e3:9.2f}")
    target = 0.2
    verdict = "OK" if all_med <= target else "OVER"
    print(f"target <= {target * 1e3:.0f} ms for simulate + key values: median {all_med * 1e3:.1f} ms -> {verdict} "
          f"({target / all_med:.0f}x headroom)")
    print(f"max |q| = {np.abs(q).max():.3f}, finite: {bool(np.all(np.isfinite(q)))}")
    try:
        import bpy  # noqa: F401
    except ImportError:
        print("Blender bake: skipped (no bpy in this Python; use the project's .venv)")
        return 0
    bench_blender(args, coeffs, pokes)
    return 0


def bench_blender(args, coeffs: np.ndarray, pokes: list) -> None:
    """Time ``pokes.simulate`` on a baked photo plane with one poke Empty per poke (scene range = --frames)."""
    import tempfile

    import bpy

    from addon import bake, volumes
    from addon import pokes as bpy_pokes
    from addon.core import pokes_bake

    scene = blender_scene.start_blender(fps=args.fps)
    height, width = coeffs.shape[2:]
    volume = spectral.SpectralVolume(coeffs, fps=30.0, num_frames=150)
    with tempfile.TemporaryDirectory() as tmp:
        obj = blender_scene.blank_plane(tmp, width, height, args.columns)
        npz = blender_scene.save_volume(tmp, volume, "bench.npz")
        bake.apply_volume_settings(obj, scene, volume, npz)
        bake.bake(bpy.context, obj, bake.BakeRequest(volume_path=npz, set_frame_range=False), volume)
        scene.frame_start, scene.frame_end = 1, args.frames
        _uv, _rest, origin, eu, ev, _flat = bpy_pokes.shapekeys.plane_frame(obj)
        for i, p in enumerate(pokes):
            xs, ys = np.array([p.x, p.x + p.force_x]), np.array([p.y, p.y + p.force_y])
            base, tip = pokes_bake.pixels_to_plane(xs, ys,
                                                   origin, eu, ev, width, height)
            bpy_pokes.add_poke(obj, base, tip, 1 + round(p.frame), p.kind, name=f"Poke{i:02d}")
        volumes.forget()
        t0 = time.perf_counter()
        warnings = bpy_pokes.simulate(obj, scene)
        cold = time.perf_counter() - t0
        _, warm_min, warm_med = timed(lambda: bpy_pokes.simulate(obj, scene), args.repeat)
        request = bpy_pokes.build_request(obj, scene)[0]
        _, req_min, _ = timed(lambda: bpy_pokes.build_request(obj, scene), args.repeat)
        t0 = time.perf_counter()
        for frame in range(1, 61):
            scene.frame_set(frame)
        play = 60 / (time.perf_counter() - t0)
    n_keys = len(bpy_pokes.compat.find_fcurves(obj.data.shape_keys))
    print(f"Blender {bpy.app.version_string}: plane {len(obj.data.vertices)} vertices, {n_keys} modal key curves x "
          f"{request.frames().shape[0]} keys, {len(request.pokes)} poke Empties")
    for warning in warnings:
        print("  warning:", warning)
    print(f"  read pokes + settings (build_request): min {req_min * 1e3:.1f} ms")
    print(f"  Simulate Pokes (read, simulate, key into Blender): first {cold * 1e3:.1f} ms (loads the .npz), "
          f"then min {warm_min * 1e3:.1f} ms, median {warm_med * 1e3:.1f} ms")
    verdict = "OK" if warm_med <= 0.2 else "OVER"
    print(f"  target <= 200 ms: median {warm_med * 1e3:.1f} ms -> {verdict}; playback {play:.0f} fps (frame_set)")


if __name__ == "__main__":
    raise SystemExit(main())
