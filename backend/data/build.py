"""Building the training dataset: jobs (synthetic scene chunks, real-clip chunks, rejection-rule negatives), each
writing its own shards and a job log, run by a process pool; then splits, statistics and the data card.

Resumable: a job whose log ``jobs/<name>.json`` exists is done (its shards were renamed into place before the log
was written) and is skipped on the next run with the same arguments. Deterministic for a seed: every scene, pair
frame and split depends only on (seed, index), never on scheduling.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import Callable, Optional

import numpy as np

from .dataset import assign_splits
from .shards import write_json, write_shard

log = logging.getLogger(__name__)


@dataclasses.dataclass
class BuildConfig:
    root: str
    synthetic: int = 400              # number of procedural scenes (one window each)
    videos: tuple = ()                # clip paths
    width: int = 256
    height: int = 160
    num_frames: int = 150
    fps: float = 30.0                 # synthetic loop frame rate (real windows use the clip's)
    k: int = 16
    max_bin: int = 15
    stride: int = 15                  # real clips: every stride-th start frame
    holdout: tuple = ()               # real clip names held out from every training stage (split "test")
    photos: str = ""                  # photo library for photo-textured procedural scenes ("" = procedural only)
    pairs_per_scene: int = 2
    pairs_per_window: int = 3
    negatives: int = 2                # synthetic camera-shake and static clips each, for the rejection rules
    seed: int = 0
    chunk: int = 24                   # windows per job / shard
    amplitude_px: float = 4.0
    val_fraction: float = 0.05
    val_fraction_real: float = 0.15

    def validate(self) -> None:
        if self.synthetic < 0 or self.chunk < 1 or self.stride < 1:
            raise ValueError("synthetic must be >= 0, chunk and stride >= 1")
        if self.synthetic == 0 and not self.videos:
            raise ValueError("nothing to build: give --synthetic N and/or --videos")
        if not 1 <= self.pairs_per_scene + 1 <= self.num_frames or self.pairs_per_window >= self.num_frames:
            raise ValueError("pairs per scene/window must be smaller than the number of frames")
        for v in self.videos:
            if not os.path.isfile(v):
                raise ValueError(f"video '{v}' does not exist")
        unknown = set(self.holdout) - {clip_name(v) for v in self.videos}
        if unknown:
            raise ValueError(f"--holdout names clips that are not among --videos: {', '.join(sorted(unknown))}")

    SPLIT_FIELDS = ("holdout", "val_fraction", "val_fraction_real")  # decided at the end: free to change on resume

    def signature(self, splits: bool = True) -> dict:
        """The build's settings; without ``splits``, what must match for a resumed build to continue an earlier one
        (the splits are assigned after the jobs, so a rerun may change them)."""
        d = dataclasses.asdict(self)
        d.pop("root")
        d["videos"] = sorted(os.path.basename(v) for v in self.videos)
        d["holdout"] = sorted(self.holdout)
        d["photos"] = library_digest(self.photos) if self.photos else ""
        if not splits:
            for key in self.SPLIT_FIELDS:
                d.pop(key)
        return d


def library_digest(root: str) -> str:
    """What identifies a photo library for resuming a build: a hash of its index (names, hashes, roles)."""
    from addon.core.files import file_digest

    path = os.path.join(root, "index.json")
    return file_digest(path) if os.path.isfile(path) else f"missing:{os.path.abspath(root)}"


def scene_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def hash_name(name: str) -> int:
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)


def clip_name(path) -> str:
    return os.path.splitext(os.path.basename(os.fspath(path)))[0]


# ------------------------------------------------------------------------------------------------ jobs
def plan_jobs(cfg: BuildConfig, clip_frames: dict) -> list:
    """List of job dicts. ``clip_frames`` maps clip path -> (window frames, their fps, clip frames per window frame)
    as counted (``windows.count_frames``)."""
    from .windows import window_starts

    jobs = []
    for c0 in range(0, cfg.synthetic, cfg.chunk):
        jobs.append({"name": f"syn-{c0 // cfg.chunk:05d}", "type": "synthetic",
                     "scenes": list(range(c0, min(c0 + cfg.chunk, cfg.synthetic)))})
    for path in cfg.videos:
        n, fps, step, *error = clip_frames[path]  # (frames, fps, step) or (0, 0.0, 1, why it cannot be read)
        starts = window_starts(n, cfg.num_frames, cfg.stride)
        if not starts:
            jobs.append({"name": f"real-{clip_name(path)}-00", "type": "real", "video": path, "starts": [],
                         "frames": n, "fps": fps, "step": step, "error": error[0] if error else None})
        for j, c0 in enumerate(range(0, len(starts), cfg.chunk)):
            jobs.append({"name": f"real-{clip_name(path)}-{j:02d}", "type": "real", "video": path,
                         "starts": starts[c0:c0 + cfg.chunk], "frames": n, "fps": fps, "step": step})
    for i in range(cfg.negatives):
        for kind in ("shake", "static"):
            jobs.append({"name": f"neg-{kind}-{i:02d}", "type": "negative", "negative": kind, "index": i})
    return jobs


def _synthetic_job(job, cfg: BuildConfig, tick: Callable) -> dict:
    from .scene_render import render_window
    from .scenes import SceneConfig, build_scene

    photos, coeffs, trust, samples = [], [], [], []
    r = {"i0": [], "it": [], "flow": [], "weight": []}
    pair_samples, kinds, used = [], {}, {}
    for i in job["scenes"]:
        seed = scene_seed(cfg.seed, i)
        scene = build_scene(SceneConfig(cfg.width, cfg.height, cfg.num_frames, cfg.fps, cfg.k, cfg.max_bin, seed,
                                        amplitude_px=cfg.amplitude_px, photo_library=cfg.photos or None))
        for p in scene.info.get("photos", []):
            used[p["name"]] = used.get(p["name"], 0) + 1
        rng = np.random.default_rng([cfg.seed, i, 1])
        t = np.sort(rng.choice(np.arange(1, cfg.num_frames), size=cfg.pairs_per_scene, replace=False))
        win = render_window(scene, t)
        group, kind = f"syn:{seed}", scene.info["kind"]
        kinds[kind] = kinds.get(kind, 0) + 1
        photos.append(win.photo)
        coeffs.append(win.coeffs.astype(np.float16))
        trust.append(np.full(win.photo.shape[:2], 255, np.uint8))  # exact motion
        samples.append({"group": group, "source": "synthetic", "fps": cfg.fps, "num_frames": cfg.num_frames,
                        "scene": i, "kind": kind, "background": scene.info["background"],
                        "static": bool(scene.static), "moving_fraction": round(float(win.moving_mask.mean()), 4)})
        for j, tj in enumerate(win.pair_frames):
            r["i0"].append(win.photo)
            r["it"].append(win.frames[j])
            r["flow"].append(win.flows[j].astype(np.float16))
            r["weight"].append(win.weight)
            pair_samples.append({"group": group, "source": "synthetic", "t": int(tj), "fps": cfg.fps,
                                 "num_frames": cfg.num_frames, "scene": i, "kind": kind})
        tick(1)
    _write(cfg.root, job["name"], photos, coeffs, trust, samples, r, pair_samples, cfg)
    return {"windows": len(samples), "pairs": len(pair_samples), "kinds": kinds,
            "static": sum(s["static"] for s in samples),
            "backgrounds": _count(s["background"] for s in samples), "photos": used}


def _count(items) -> dict:
    out = {}
    for it in items:
        out[it] = out.get(it, 0) + 1
    return out


def _write(root, name, photos, coeffs, trust, samples, r, pair_samples, cfg):
    h, w, k = cfg.height, cfg.width, cfg.k
    stack = lambda a, shape, dt: np.stack(a) if a else np.zeros((0,) + shape, dt)  # noqa: E731
    write_shard(root, "motion", name, {"photo": stack(photos, (h, w, 3), np.uint8),
                                       "coeffs": stack(coeffs, (k, 4, h, w), np.float16),
                                       "trust": stack(trust, (h, w), np.uint8)}, samples)
    write_shard(root, "render", name, {"i0": stack(r["i0"], (h, w, 3), np.uint8),
                                       "it": stack(r["it"], (h, w, 3), np.uint8),
                                       "flow": stack(r["flow"], (2, h, w), np.float16),
                                       "weight": stack(r["weight"], (h, w), np.float32)}, pair_samples)


def _real_job(job, cfg: BuildConfig, tick: Callable) -> dict:
    from backend.video import VideoError

    from .windows import clip_windows, read_frames

    clip = clip_name(job["video"])
    out = {"clip": clip, "frames": job["frames"], "fps": job["fps"], "windows": 0, "kept": 0, "pairs": 0,
           "rejected": [], "status": "ok"}
    empty = {"i0": [], "it": [], "flow": [], "weight": []}
    if job.get("error") or not job["starts"]:
        out["status"] = (f"unreadable: {job['error']}" if job.get("error")
                         else f"too short ({job['frames']} frames < {cfg.num_frames})")
        _write(cfg.root, job["name"], [], [], [], [], empty, [], cfg)
        return out
    first, last = job["starts"][0], job["starts"][-1] + cfg.num_frames
    try:
        frames = read_frames(job["video"], cfg.width, cfg.height, first, last, step=job.get("step", 1))
    except VideoError as e:
        out["status"] = f"unreadable: {e}"
        _write(cfg.root, job["name"], [], [], [], [], empty, [], cfg)
        return out
    photos, coeffs, trust, samples, pair_samples = [], [], [], [], []
    r = {"i0": [], "it": [], "flow": [], "weight": []}
    group = f"real:{clip}"
    for win in clip_windows(frames, job["starts"], cfg.num_frames, cfg.k, cfg.pairs_per_window,
                            seed=scene_seed(cfg.seed, hash_name(clip)), offset=first):
        out["windows"] += 1
        st = win.stats
        if win.reason is not None:
            out["rejected"].append({"clip": clip, "start": win.start, "reason": win.reason,
                                    "fraction_moving": round(st.fraction_moving, 4),
                                    "mean_motion_px": round(st.mean_motion_px, 3),
                                    "max_motion_px": round(st.max_motion_px, 3),
                                    "camera_px": round(st.camera_px, 2)})
            log.info("%s start %d rejected: %s", clip, win.start, win.message)
        else:
            out["kept"] += 1
            i0 = frames.frames[win.start - first]
            photos.append(i0)
            coeffs.append(win.coeffs.astype(np.float16))
            trust.append(np.round(win.trust * 255).astype(np.uint8))
            out["camera_removed"] = out.get("camera_removed", 0) + int(st.camera_px > 0)
            samples.append({"group": group, "source": "real", "fps": frames.fps, "num_frames": cfg.num_frames,
                            "clip": clip, "start": win.start * frames.step,
                            "fraction_moving": round(st.fraction_moving, 4),
                            "mean_motion_px": round(st.mean_motion_px, 3),
                            "trusted_fraction": round(st.trusted_fraction, 4), "camera_px": round(st.camera_px, 2)})
            for t, ft, flow in win.pairs:
                r["i0"].append(i0)
                r["it"].append(ft)
                r["flow"].append(flow.astype(np.float16))
                r["weight"].append(win.weight)
                pair_samples.append({"group": group, "source": "real", "t": t, "fps": frames.fps,
                                     "num_frames": cfg.num_frames, "clip": clip, "start": win.start})
        tick(1)
    out["pairs"] = len(pair_samples)
    _write(cfg.root, job["name"], photos, coeffs, trust, samples, r, pair_samples, cfg)
    return out


def _negative_job(job, cfg: BuildConfig, tick: Callable) -> dict:
    """Synthetic clips that check the real-clip rules: camera shake over a swaying scene (the shake must be removed
    and the window kept) and a still scene with sensor noise (must be rejected as static). Nothing is stored; the
    verdict goes into the card."""
    from .scene_render import render_clip
    from .scenes import SceneConfig, build_scene
    from .windows import extract_window

    seed = scene_seed(cfg.seed + 7919, job["index"] * 2 + (job["negative"] == "static"))
    shake = job["negative"] == "shake"
    scene = build_scene(SceneConfig(cfg.width, cfg.height, cfg.num_frames, cfg.fps, cfg.k, cfg.max_bin, seed,
                                    kind="flowers" if shake else "static", amplitude_px=cfg.amplitude_px))
    frames = render_clip(scene, shake_px=0.04 * cfg.width if shake else 0.0, noise=2.0, seed=seed)
    win = extract_window(frames, cfg.k)
    tick(1)
    expected = "kept" if shake else "static"
    verdict = win.reason or "kept"
    return {"negative": job["negative"], "expected": expected, "verdict": verdict,
            "as_expected": verdict == expected and (not shake or win.stats.camera_px > 0),
            "camera_px": round(win.stats.camera_px, 2),
            "fraction_moving": round(win.stats.fraction_moving, 4), "mean_motion_px": round(win.stats.mean_motion_px, 3)}


def run_job(job: dict, cfg: BuildConfig, tick: Optional[Callable] = None) -> dict:
    """Run one job (in a worker), write its shards and its log; returns the log."""
    tick = tick or (lambda n: None)
    t0 = time.perf_counter()
    fn = {"synthetic": _synthetic_job, "real": _real_job, "negative": _negative_job}[job["type"]]
    result = fn(job, cfg, tick)
    result.update({"name": job["name"], "type": job["type"], "seconds": round(time.perf_counter() - t0, 2)})
    os.makedirs(os.path.join(cfg.root, "jobs"), exist_ok=True)
    write_json(os.path.join(cfg.root, "jobs", f"{job['name']}.json"), result)
    return result


_TICKS = None


def init_worker(ticks, level=logging.WARNING) -> None:
    """Pool initializer: one thread per worker process; ``ticks`` (a queue) receives finished-window counts."""
    global _TICKS
    import cv2
    import torch
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    _TICKS = ticks


def run_in_worker(args) -> dict:
    job, cfg = args
    return run_job(job, cfg, _TICKS.put if _TICKS is not None else None)


def job_done(root, name) -> Optional[dict]:
    path = os.path.join(root, "jobs", f"{name}.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


# ------------------------------------------------------------------------------------------------ card
def assemble_card(cfg: BuildConfig, jobs: list, logs: dict, seconds: float, new_windows: int,
                  new_seconds: float) -> dict:
    """The data card (without stats, which need the splits first). See docs/dataset.md for the fields."""
    from .shards import read_meta

    shards = {"motion": [], "render": []}
    groups = []
    for job in jobs:
        if job["type"] == "negative":
            continue
        for kind in shards:
            meta = read_meta(cfg.root, kind, job["name"])
            shards[kind].append({"name": job["name"], "count": meta["count"]})
            if kind == "motion":
                groups += [s["group"] for s in meta["samples"]]
    test = sorted({f"real:{c}" for c in cfg.holdout} & set(groups))
    val = assign_splits([g for g in groups if g not in test], cfg.seed, cfg.val_fraction, cfg.val_fraction_real)
    val_set, test_set = set(val), set(test)
    syn_logs = [logs[j["name"]] for j in jobs if j["type"] == "synthetic"]
    kinds, backgrounds, used = {}, {}, {}
    for lg in syn_logs:
        for key, n in lg["kinds"].items():
            kinds[key] = kinds.get(key, 0) + n
        for key, n in lg["backgrounds"].items():
            backgrounds[key] = backgrounds.get(key, 0) + n
        for key, n in lg.get("photos", {}).items():
            used[key] = used.get(key, 0) + n
    photo_card = []
    if cfg.photos and used:
        from .photo_library import open_library

        photo_card = [dict(entry, scenes=used[entry["name"]]) for entry in open_library(cfg.photos).card(used)]
    clips, rejected = {}, []
    for job in jobs:
        if job["type"] != "real":
            continue
        lg = logs[job["name"]]
        c = clips.setdefault(lg["clip"], {"frames": lg["frames"], "fps": lg["fps"], "windows": 0, "kept": 0,
                                          "pairs": 0, "rejected": {"camera_motion": 0, "static": 0},
                                          "status": lg["status"], "split": "test" if f"real:{lg['clip']}" in test_set
                                          else "val" if f"real:{lg['clip']}" in val_set else "train"})
        c["windows"] += lg["windows"]
        c["kept"] += lg["kept"]
        c["pairs"] += lg["pairs"]
        c["camera_removed"] = c.get("camera_removed", 0) + lg.get("camera_removed", 0)
        for rj in lg["rejected"]:
            c["rejected"][rj["reason"]] += 1
        rejected += lg["rejected"]
    n_syn = sum(lg["windows"] for lg in syn_logs)
    n_real = sum(c["kept"] for c in clips.values())
    n_val = sum(1 for g in groups if g in val_set)
    n_test = sum(1 for g in groups if g in test_set)
    pairs = sum(s["count"] for s in shards["render"])
    return {
        "format": "gid-dataset", "version": 2,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": cfg.signature(),
        "counts": {"motion": {"synthetic": n_syn, "real": n_real, "total": n_syn + n_real,
                              "train": len(groups) - n_val - n_test, "val": n_val, "test": n_test},
                   "render_pairs": pairs},
        "synthetic": {"scenes": n_syn, "windows": n_syn, "by_kind": kinds, "by_background": backgrounds,
                      "photos": photo_card,
                      "static_windows": sum(lg["static"] for lg in syn_logs),
                      "note": "static windows are fully static scenes kept on purpose as zero-motion samples"},
        "real": {"clips": clips, "windows": sum(c["windows"] for c in clips.values()), "kept": n_real,
                 "rejected": {"camera_motion": sum(c["rejected"]["camera_motion"] for c in clips.values()),
                              "static": sum(c["rejected"]["static"] for c in clips.values())},
                 "too_short": sorted(k for k, c in clips.items() if c["status"].startswith("too short")),
                 "unreadable": sorted(k for k, c in clips.items() if c["status"].startswith("unreadable")),
                 "rejected_windows": rejected},
        "negatives": [logs[j["name"]] for j in jobs if j["type"] == "negative"],
        "splits": {"method": "groups held out by sha1(seed:group); real by clip, synthetic by scene seed; test: "
                             "the real clips named by --holdout, never trained, validated or calibrated on",
                   "val_fraction": cfg.val_fraction, "val_fraction_real": cfg.val_fraction_real,
                   "val_groups": val, "test_groups": test},
        "shards": shards,
        "time": {"seconds_total": round(seconds, 1), "seconds_this_run": round(new_seconds, 1),
                 "windows_this_run": new_windows,
                 "windows_per_second_this_run": round(new_windows / max(new_seconds, 1e-9), 3)},
    }
