"""Build the training dataset: procedural scenes with exact motion and/or windows of real clips, sharded.

    .venv/bin/python scripts/build_dataset.py /work/datasets/gid_v1 --synthetic 5000 --videos /work/shared/data/videos

Writes motion windows (photo 256x160, spectral volume K=16) and render pairs (I_0, I_t, flow 0->t) as memory-mapped
shards, the per-frequency normalisation statistics (stats.npz), the Fig. 2-style plot (fig2.png) and, last, the data
card (card.json: counts per source, rejected windows and why, splits, time). Resumable: rerun the same command after
an interruption. Parallel over --workers processes (one thread each). Deterministic for a --seed.
See docs/dataset.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import queue
import sys
import time

from tqdm import tqdm

from backend.data.build import BuildConfig, assemble_card, init_worker, job_done, plan_jobs, run_in_worker, run_job
from backend.data.shards import clean_partial, write_json
from backend.data.stats import dataset_stats, save_stats

log = logging.getLogger("build_dataset")
VIDEO_EXT = (".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v")

def _videos(items) -> list:
    out = []
    for item in items or ():
        if os.path.isdir(item):
            out += sorted(os.path.join(item, f) for f in os.listdir(item) if f.lower().endswith(VIDEO_EXT))
        elif os.path.isfile(item):
            out.append(item)
        else:
            raise SystemExit(f"error: --videos '{item}' is neither a clip nor a folder")
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", help="output folder (created; outside the repository)")
    p.add_argument("--synthetic", type=int, default=400, help="procedural scenes, one window each (default 400)")
    p.add_argument("--videos", nargs="*", default=[], help="clips or folders of clips")
    p.add_argument("--size", default="256x160", help="map size WIDTHxHEIGHT (default 256x160)")
    p.add_argument("--frames", type=int, default=150, help="window length T (default 150)")
    p.add_argument("--fps", type=float, default=30.0, help="synthetic loop frame rate (default 30)")
    p.add_argument("--k", type=int, default=16, help="frequency bins K (default 16)")
    p.add_argument("--stride", type=int, default=15, help="real clips: every N-th start frame (default 15)")
    p.add_argument("--holdout", default="", help="comma-separated clip names (file names without extension) held "
                                                  "out from every training stage: split 'test' for evaluation")
    p.add_argument("--val-fraction-real", type=float, default=0.15,
                   help="share of the (not held-out) real clips in split 'val' (default 0.15; 0 = train on all)")
    p.add_argument("--photos", default="", help="photo library (scripts/build_photo_library.py) for procedural "
                                                 "scenes with real photographs; default: procedural only")
    p.add_argument("--pairs-per-scene", type=int, default=2, help="render pairs per synthetic scene (default 2)")
    p.add_argument("--pairs-per-window", type=int, default=3, help="render pairs per real window (default 3)")
    p.add_argument("--negatives", type=int, default=2,
                   help="synthetic camera-shake and static clips (each) checked against the rejection rules")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=24, help="windows per shard (default 24)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2; 0 = in this process)")
    p.add_argument("--no-plot", action="store_true", help="skip the Fig. 2 plot")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def config_from_args(a) -> BuildConfig:
    try:
        w, h = (int(v) for v in a.size.lower().split("x"))
    except ValueError:
        raise SystemExit(f"error: --size '{a.size}' is not WIDTHxHEIGHT, e.g. 256x160") from None
    cfg = BuildConfig(root=os.path.abspath(a.root), synthetic=a.synthetic, videos=tuple(_videos(a.videos)),
                      width=w, height=h, num_frames=a.frames, fps=a.fps, k=a.k, max_bin=a.k - 1, stride=a.stride,
                      pairs_per_scene=a.pairs_per_scene, pairs_per_window=a.pairs_per_window,
                      holdout=tuple(c for c in a.holdout.split(",") if c), photos=a.photos,
                      val_fraction_real=a.val_fraction_real,
                      negatives=a.negatives, seed=a.seed, chunk=a.chunk)
    try:
        cfg.validate()
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    return cfg


def _check_resume(cfg: BuildConfig) -> None:
    path = os.path.join(cfg.root, "build.json")
    if os.path.isfile(path):
        with open(path) as f:
            old = json.load(f)
        for key in cfg.SPLIT_FIELDS:
            old.pop(key, None)
        new = json.loads(json.dumps(cfg.signature(splits=False)))
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise SystemExit(f"error: '{cfg.root}' holds a build with other arguments ({', '.join(diff)} differ); "
                             "use another folder or delete it")
    os.makedirs(cfg.root, exist_ok=True)
    write_json(path, cfg.signature(splits=False))


def main(argv=None) -> int:
    a = parse_args(argv)
    level = logging.INFO if a.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_args(a)
    _check_resume(cfg)
    clean_partial(cfg.root)
    t_start = time.perf_counter()

    from backend.data.windows import count_frames
    clip_frames = {}
    for v in tqdm(cfg.videos, desc="counting clip frames", unit="clip", disable=not cfg.videos):
        try:
            clip_frames[v] = count_frames(v, cfg.num_frames)
        except ValueError as e:  # logged in the card as unreadable; the other clips go on
            log.warning("%s", e)
            clip_frames[v] = (0, 0.0, 1, str(e))
    jobs = plan_jobs(cfg, clip_frames)
    size = lambda j: {"synthetic": len(j.get("scenes", [])), "real": len(j.get("starts", [])),  # noqa: E731
                      "negative": 1}[j["type"]]
    logs = {j["name"]: job_done(cfg.root, j["name"]) for j in jobs}
    todo = [j for j in jobs if logs[j["name"]] is None]
    total = sum(size(j) for j in jobs)
    done_before = total - sum(size(j) for j in todo)
    print(f"{len(jobs)} jobs ({len(todo)} to run), {total} windows; {cfg.synthetic} synthetic scenes, "
          f"{len(cfg.videos)} clips, {a.workers} workers", flush=True)

    t_run = time.perf_counter()
    ran = []
    pool = None
    try:
        with tqdm(total=total, initial=done_before, desc="windows", unit="win", smoothing=0.05,
                  mininterval=0.5 if sys.stderr.isatty() else 10.0) as bar:
            if a.workers == 0:  # in this process (debugging, tests)
                for j in todo:
                    ran.append(run_job(j, cfg, bar.update))
            else:
                for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # read by each spawned
                    os.environ.setdefault(var, "1")  # worker as it starts: one thread per worker process
                ctx = mp.get_context("spawn")
                ticks = ctx.Queue()
                pool = ctx.Pool(a.workers, initializer=init_worker, initargs=(ticks, level))
                ran = _run_pool(pool, ticks, sorted(todo, key=lambda j: -size(j)), cfg, bar)
        for res in ran:
            logs[res["name"]] = res
        run_seconds = time.perf_counter() - t_run
        _print_rate(ran, run_seconds, max(a.workers, 1))
        new_windows = sum(r.get("windows", 0) for r in ran if r["type"] != "negative")
        job_seconds = sum(lg["seconds"] for lg in logs.values())
        card = assemble_card(cfg, jobs, logs, job_seconds, new_windows, run_seconds)
        t0 = time.perf_counter()
        stats = dataset_stats(cfg.root, card, pool.imap_unordered if pool is not None else map)
    except KeyboardInterrupt:
        if pool is not None:
            pool.terminate()
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    save_stats(os.path.join(cfg.root, "stats.npz"), stats)
    card["stats"] = {"file": "stats.npz", "percentile": float(stats["percentile"]),
                     "scales": [round(float(s), 6) for s in stats["scales"]],
                     "mean_power": [float(p) for p in stats["mean_power"]],
                     "windows": int(stats["num_windows"]), "seconds": round(time.perf_counter() - t0, 1)}
    if not a.no_plot:
        import plot_dataset  # a sibling script: its folder is on sys.path when a script runs
        plot_dataset.plot(cfg.root, os.path.join(cfg.root, "fig2.png"), card=card)
        card["figure"] = "fig2.png"
    card["time"]["seconds_wall_this_run"] = round(time.perf_counter() - t_start, 1)
    write_json(os.path.join(cfg.root, "card.json"), card)  # last: its existence means "complete"
    _summary(card)
    return 0


def _run_pool(pool, ticks, jobs, cfg, bar) -> list:
    pending = [pool.apply_async(run_in_worker, ((j, cfg),)) for j in jobs]
    done = []
    while pending:
        try:
            bar.update(ticks.get(timeout=0.5))
        except queue.Empty:
            pass
        still = []
        for r in pending:
            if r.ready():
                done.append(r.get())  # re-raises a worker's exception
            else:
                still.append(r)
        pending = still
    while True:  # late ticks
        try:
            bar.update(ticks.get_nowait())
        except queue.Empty:
            return done


def _print_rate(ran: list, seconds: float, workers: int) -> None:
    syn = [r for r in ran if r["type"] == "synthetic"]
    real = [r for r in ran if r["type"] == "real"]
    n_syn, n_real = sum(r["windows"] for r in syn), sum(r["windows"] for r in real)
    rate = (n_syn + n_real) / max(seconds, 1e-9)
    print(f"rate: {n_syn + n_real} windows ({n_syn} synthetic, {n_real} real) in {seconds:.0f} s = {rate:.2f} "
          f"windows/s on {workers} workers", flush=True)
    for name, group, n in (("synthetic", syn, n_syn), ("real", real, n_real)):
        if n:
            cpu = sum(r["seconds"] for r in group)
            print(f"  {name}: {cpu / n:.2f} s per window per worker ({n / cpu:.2f} windows/s per worker)")


def _summary(card: dict) -> None:
    c = card["counts"]["motion"]
    print(f"motion windows: {c['total']} ({c['synthetic']} synthetic, {c['real']} real; train {c['train']}, "
          f"val {c['val']}, test {c.get('test', 0)}); render pairs: {card['counts']['render_pairs']}")
    syn = card["synthetic"]
    if syn["windows"]:
        print(f"synthetic by kind: {json.dumps(syn['by_kind'], sort_keys=True)}; static kept: "
              f"{syn['static_windows']}")
    if card["real"]["clips"]:
        print(f"{'clip':40s} {'frames':>6s} {'fps':>6s} {'windows':>7s} {'kept':>5s} {'cam-rm':>6s} {'camera':>6s} "
              f"{'static':>6s}  split/status")
        for name, cl in sorted(card["real"]["clips"].items()):
            print(f"{name:40s} {cl['frames']:6d} {cl['fps']:6.2f} {cl['windows']:7d} {cl['kept']:5d} "
                  f"{cl.get('camera_removed', 0):6d} {cl['rejected']['camera_motion']:6d} {cl['rejected']['static']:6d}"
                  f"  {cl['split'] if cl['status'] == 'ok' else cl['status']}")
    for n in card["negatives"]:
        print(f"negative {n['negative']}: verdict {n['verdict']}, expected {n['expected']} (fraction moving "
              f"{n['fraction_moving']:.3f}, camera removed {n['camera_px']:.1f} px)")
    print(f"scales s_k: {' '.join(f'{s:.3g}' for s in card['stats']['scales'])}")
    print(f"time: {card['time']}")


if __name__ == "__main__":
    sys.exit(main())
