"""Training motion model v2 (``models_v2.py``) in one stage: the energy head and the shape diffusion together, on
cached trunk features.

* :class:`FeatureCache` runs the frozen ImageNet trunk once per window and orientation (as is and mirrored) and
  stores its maps with the training targets (energy at 1/4, shape at 1/8, the amplitude map for hints, the trust of
  the motion at both sizes) as memory-mapped arrays under ``<out>/cache/``, keyed by the dataset cards, the trunk's
  weights and the target settings: a rerun reuses it, anything else rebuilds it.
* :class:`TrainerV2` draws batches deterministically from (seed, step, process), mixes real windows in at
  ``real_fraction``, and minimises  L = L1(log energy, trust-weighted) + w * MSE(v, trust-weighted), with the image
  condition of the denoiser dropped for ``cond_drop`` of the photos (classifier-free guidance) and a "moves here" hint
  drawn from the true amplitude for ``1 - hint_drop`` of them. bf16 autocast on the CPU (``--precision fp32`` to
  turn it off), EMA weights, ``state.pt`` to resume, ``log.jsonl``; ``accelerate launch`` for several GPUs.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from addon.core.files import atomic_path
from addon.core.spectral import normalization_scales
from backend.data.shards import write_json

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import MotionV2Config, config_differences
from .models_v2 import MotionModelV2, amplitude, area, energy_and_shape, training_hint, trunk_features
from .sampler import make_scheduler
from .training import EMA, dataset_key

log = logging.getLogger(__name__)
CACHE_VERSION = 1
TRUNK_KEYS = (4, 8, 16, 32, "logits")


@dataclass
class TrainV2Options:
    out: str
    steps: int = 4000
    batch: int = 16
    lr: float = 3e-4
    val_every: int = 250
    val_batches: int = 4
    ema_decay: float = 0.999
    seed: int = 0
    real_fraction: float = 0.4      # share of each batch drawn from real windows (when there are any)
    diffusion_weight: float = 1.0
    precision: str = "bf16"         # bf16 autocast (CPU and CUDA) or fp32
    init: Optional[str] = None      # start from this v2 model.pt (fine-tuning); the config must match
    max_minutes: Optional[float] = None
    max_windows: Optional[int] = None

    def validate(self):
        if self.steps < 1 or self.batch < 1:
            raise ValueError("steps and batch must be >= 1")
        if not 0.0 <= self.real_fraction <= 1.0:
            raise ValueError("real_fraction must be in [0, 1]")
        if self.precision not in ("bf16", "fp32"):
            raise ValueError("precision must be bf16 or fp32")


def _name(key) -> str:
    return f"f{key}" if isinstance(key, int) else str(key)


class FeatureCache:
    """Trunk maps and targets of ``dataset`` windows, two rows per window (row 2i as is, 2i+1 mirrored)."""

    ARRAYS = ("photo", "energy", "shape", "amp", "trust4", "trust8") + tuple(_name(k) for k in TRUNK_KEYS)

    def __init__(self, folder: str, dataset, config: MotionV2Config, eps: torch.Tensor, key: str,
                 trunk=None, max_windows: Optional[int] = None, progress: bool = True):
        n = len(dataset) if max_windows is None else min(len(dataset), max_windows)
        self.indices = np.linspace(0, len(dataset) - 1, n).round().astype(np.int64) if n else np.zeros(0, np.int64)
        self.folder = folder
        full_key = json.dumps({"key": key, "n": n, "version": CACHE_VERSION, "size": [config.width, config.height],
                               "k": config.k, "eps": [round(float(e), 8) for e in eps]}, sort_keys=True)
        meta = os.path.join(folder, "meta.json")
        if not (os.path.isfile(meta) and json.load(open(meta)).get("key") == full_key):
            self._build(dataset, config, eps, trunk, progress)
            write_json(meta, {"key": full_key, "sources": self._sources})
        self.sources = np.asarray(json.load(open(meta))["sources"])
        self.arrays = {a: np.load(os.path.join(folder, f"{a}.npy"), mmap_mode="r") for a in self.ARRAYS}

    def __len__(self) -> int:
        return len(self.indices)

    def _build(self, dataset, config, eps, trunk, progress):
        from tqdm import tqdm

        os.makedirs(self.folder, exist_ok=True)
        n = len(self.indices)
        arrays = None
        self._sources = []
        with contextlib.ExitStack() as stack:  # every array appears complete or not at all
            tmp = {a: stack.enter_context(atomic_path(os.path.join(self.folder, f"{a}.npy"))) for a in self.ARRAYS}
            for j, i in enumerate(tqdm(self.indices, desc=f"caching {os.path.basename(self.folder)}",
                                       unit="window", disable=not progress)):
                s = dataset[int(i)]
                self._sources.append(s["source"])
                photo = torch.as_tensor(s["photo"])[None]
                coeffs = torch.as_tensor(s["coeffs"])[None]
                trust = torch.as_tensor(s["trust"])[None, None]
                for flip in (0, 1):
                    if flip:
                        photo, coeffs, trust = mirror(photo, coeffs, trust)
                    rows = self._row(photo, coeffs, trust, config, eps, trunk)
                    if arrays is None:
                        arrays = {a: np.lib.format.open_memmap(tmp[a], mode="w+", dtype=v.dtype,
                                                               shape=(2 * n, *v.shape)) for a, v in rows.items()}
                    for a, v in rows.items():
                        arrays[a][2 * j + flip] = v
            for arr in (arrays or {}).values():
                arr.flush()
            arrays = None

    @staticmethod
    @torch.no_grad()
    def _row(photo, coeffs, trust, config, eps, trunk) -> dict:
        feats = trunk_features(trunk, photo)
        energy, shape = energy_and_shape(coeffs, eps)
        out = {"photo": (photo[0].permute(1, 2, 0) * 255).round().byte().numpy(),
               "energy": energy[0].half().numpy(), "shape": shape[0].half().numpy(),
               "amp": amplitude(coeffs)[0, 0].half().numpy(),
               "trust4": area(trust, energy.shape[-2:])[0, 0].half().numpy(),
               "trust8": area(trust, shape.shape[-2:])[0, 0].half().numpy()}
        for k in TRUNK_KEYS:
            out[_name(k)] = feats[k][0].half().numpy()
        return out

    def batch(self, rows, device) -> dict:
        rows = np.asarray(rows)
        order = np.argsort(rows)  # memory maps read faster in order
        out = {}
        for a in self.ARRAYS:
            v = np.asarray(self.arrays[a][rows[order]])[np.argsort(order)]
            t = torch.from_numpy(v.astype(np.float32))
            out[a] = (t.permute(0, 3, 1, 2) / 255.0 if a == "photo" else t).to(device)
        return out


def mirror(photo, coeffs, trust):
    """Mirror a window left-right: images flip, and the x components of every coefficient change sign."""
    c = coeffs.flip(-1).clone()
    c[:, :, 0:2] = -c[:, :, 0:2]
    return photo.flip(-1), c, trust.flip(-1)


def data_statistics(dataset, config: MotionV2Config, n: int = 256) -> dict:
    """s_k (95th percentile of |c_k|) over up to ``n`` training windows and the envelope floors eps_k."""
    idx = np.linspace(0, len(dataset) - 1, min(n, len(dataset))).round().astype(int)
    coeffs = np.stack([np.asarray(dataset[int(i)]["coeffs"], np.float32) for i in idx])
    scales = normalization_scales(coeffs)
    return {"scales": scales, "eps": config.envelope_floor * scales[1:]}


def shape_statistics(cache: FeatureCache, k: int) -> tuple:
    """Per-channel std of the shape targets (whitening) and the energy-weighted coherence kappa_k."""
    shape = np.asarray(cache.arrays["shape"], np.float32)  # (N, 4(K-1), h8, w8)
    w = np.asarray(cache.arrays["trust8"], np.float32)[:, None]
    std = np.sqrt((shape ** 2 * w).sum((0, 2, 3)) / max(w.sum() * 1.0, 1e-9) + 1e-8)
    energy = torch.from_numpy(np.asarray(cache.arrays["energy"], np.float32))
    e8 = area(energy ** 2, shape.shape[-2:]).numpy()  # (N, K-1, h8, w8): cell power
    u2 = (shape.reshape(shape.shape[0], k - 1, 4, *shape.shape[-2:]) ** 2).sum(2)
    kappa = np.sqrt((u2 * e8 * w).sum((0, 2, 3)) / np.maximum((e8 * w).sum((0, 2, 3)), 1e-12))
    return std.astype(np.float32), np.clip(kappa, 0.05, 1.0).astype(np.float32)


class TrainerV2:
    def __init__(self, opts: TrainV2Options, config: MotionV2Config, train_set, val_set, *, accelerator=None,
                 progress: bool = True, trunk=None, trunk_key: Optional[str] = None):
        """``trunk``: another trunk than the installed pretrained one (tests), named by ``trunk_key`` in the
        cache key."""
        opts.validate()
        from accelerate import Accelerator

        from .trunk import load_trunk, weights_digest

        self.opts, self.progress = opts, progress
        self.acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
        self.dir = opts.out
        os.makedirs(self.dir, exist_ok=True)
        if not len(train_set):
            raise ValueError("the training split has no windows: build a dataset with scripts/build_dataset.py")
        self.model = self._build(config)
        self.config = self.model.config
        if trunk is None:
            trunk, trunk_key = load_trunk(), weights_digest()
        self.model.attach_trunk(trunk)
        if not os.path.isfile(self.state_path) and not opts.init:
            stats = data_statistics(train_set, self.config)
            self.model.scales.copy_(torch.as_tensor(stats["scales"]))
            self.model.eps.copy_(torch.as_tensor(stats["eps"]))
        key = lambda ds: f"{dataset_key(ds)}:{trunk_key or 'custom'}"  # noqa: E731
        cache = os.path.join(self.dir, "cache")
        self.train_cache = FeatureCache(os.path.join(cache, "train"), train_set, self.config, self.model.eps,
                                        key(train_set), trunk, opts.max_windows, progress)
        self.val_cache = FeatureCache(os.path.join(cache, "val"), val_set, self.config, self.model.eps,
                                      key(val_set), trunk, 64, progress)
        if not os.path.isfile(self.state_path) and not opts.init:
            std, kappa = shape_statistics(self.train_cache, self.config.k)
            self.model.shape_std.copy_(torch.as_tensor(std))
            self.model.coherence.copy_(torch.as_tensor(kappa))
        self.scheduler = make_scheduler(self.config.diffusion)
        self.trainable = [p for p in self.model.parameters()]
        self.ema = EMA(self.trainable, opts.ema_decay)
        self.optim = torch.optim.AdamW(self.trainable, lr=opts.lr, weight_decay=1e-4)
        self.step, self.best_val = 0, math.inf
        self._resume()
        self.model, self.optim = self.acc.prepare(self.model, self.optim)
        real = np.flatnonzero(self.train_cache.sources == "real")
        self.real_rows = np.concatenate([2 * real, 2 * real + 1])
        self.all_rows = np.arange(2 * len(self.train_cache))

    def _build(self, config: MotionV2Config) -> MotionModelV2:
        if not self.opts.init:
            return MotionModelV2(config)
        prev, _ = load_checkpoint(self.opts.init)
        diff = config_differences(prev.config, config)
        if getattr(prev, "architecture", "v1") != "v2" or diff:
            raise CheckpointError(f"--init {self.opts.init} is not a v2 model of this config ({'; '.join(diff[:6])})")
        return prev.train()

    # ---- resume / save
    @property
    def state_path(self) -> str:
        return os.path.join(self.dir, "state.pt")

    def _resume(self):
        if not os.path.isfile(self.state_path):
            return
        try:
            st = torch.load(self.state_path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot resume from {self.state_path} ({exc}): delete it to start over") from None
        diff = config_differences(MotionV2Config.from_dict(st["config"]), self.model.config)
        if diff:
            raise CheckpointError(f"{self.state_path} belongs to a run with another config ({'; '.join(diff[:6])}):"
                                  f" use another --out or delete the file to start over")
        self.model.load_state_dict(st["model"])
        self.ema.load_state_dict(st["ema"])
        self.optim.load_state_dict(st["optim"])
        self.step, self.best_val = int(st["step"]), float(st["best_val"])
        log.info("resumed %s at step %d", self.state_path, self.step)

    def _save_state(self):
        if not self.acc.is_main_process:
            return
        raw = self.acc.unwrap_model(self.model)
        st = {"config": raw.config.to_dict(), "model": raw.state_dict(), "ema": self.ema.state_dict(),
              "optim": self.optim.state_dict(), "step": self.step, "best_val": self.best_val}
        with atomic_path(self.state_path) as tmp:
            torch.save(st, tmp)

    def save_model(self, metrics: dict, path: Optional[str] = None) -> str:
        raw = self.acc.unwrap_model(self.model)
        path = path or os.path.join(self.dir, "model.pt")
        self.ema.swap()
        try:
            if self.acc.is_main_process:
                save_checkpoint(path, raw, extra={"stage": "v2", "step": self.step,
                                                  "windows": len(self.train_cache), **metrics})
        finally:
            self.ema.swap()
        return path

    # ---- batches and losses
    def _rng(self, step: int, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.opts.seed, step, self.acc.process_index, salt])

    def _rows(self, rng, cache: FeatureCache, val: bool) -> np.ndarray:
        b = self.opts.batch
        if val or not len(self.real_rows) or self.opts.real_fraction == 0:
            return rng.integers(2 * len(cache), size=b)
        real = rng.random(b) < self.opts.real_fraction
        return np.where(real, rng.choice(self.real_rows, size=b), rng.choice(self.all_rows, size=b))

    def _loss(self, step: int, val: bool = False, salt: int = 0) -> tuple:
        rng = self._rng(step, salt)
        cache = self.val_cache if val else self.train_cache
        d = cache.batch(self._rows(rng, cache, val), self.acc.device)
        raw = self.acc.unwrap_model(self.model)
        cfg = raw.config
        b = d["photo"].shape[0]
        gen = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
        hint = training_hint(d["amp"][:, None], gen).to(self.acc.device)
        drop_hint = torch.as_tensor(rng.random(b) < cfg.hint_drop, device=hint.device)
        hint = torch.where(drop_hint[:, None, None, None], torch.full_like(hint, -1.0), hint)
        feats = {k: d[_name(k)] for k in TRUNK_KEYS}
        target_u = d["shape"] / raw.shape_std[None, :, None, None]
        noise = torch.as_tensor(rng.standard_normal(target_u.shape), dtype=torch.float32, device=target_u.device)
        t = torch.as_tensor(rng.integers(cfg.diffusion.num_train_timesteps, size=b))
        noisy = self.scheduler.add_noise(target_u.cpu(), noise.cpu(), t).to(target_u.device)
        v_target = self.scheduler.get_velocity(target_u.cpu(), noise.cpu(), t).to(target_u.device)
        keep = torch.as_tensor(rng.random(b) >= cfg.cond_drop, device=target_u.device, dtype=torch.float32)
        with torch.autocast(self.acc.device.type, dtype=torch.bfloat16, enabled=self.opts.precision == "bf16"):
            log_e, v = self.model("train", feats, d["photo"], hint, noisy, t.to(noisy.device), keep)
        log_e, v = log_e.float(), v.float()
        eps = raw.eps[None, :, None, None]
        w4 = d["trust4"][:, None]
        l_energy = ((log_e - (d["energy"] + eps).log()).abs() * w4).sum() / (w4.sum() * log_e.shape[1] + 1e-6)
        w8 = d["trust8"][:, None]
        l_diff = ((v - v_target) ** 2 * w8).sum() / (w8.sum() * v.shape[1] + 1e-6)
        loss = l_energy + self.opts.diffusion_weight * l_diff
        return loss, {"energy": l_energy.item(), "diffusion": l_diff.item()}

    @torch.no_grad()
    def validate(self) -> dict:
        if not len(self.val_cache):
            return {"val": float("nan")}
        self.model.eval()
        self.ema.swap()
        try:
            parts = [self._loss(10 ** 9 + i, val=True)[1] for i in range(self.opts.val_batches)]
        finally:
            self.ema.swap()
            self.model.train()
        out = {f"val_{k}": float(np.mean([p[k] for p in parts])) for k in parts[0]}
        out["val"] = out["val_energy"] + self.opts.diffusion_weight * out["val_diffusion"]
        return out

    def fit(self) -> dict:
        from tqdm import tqdm

        o = self.opts
        logf = open(os.path.join(self.dir, "log.jsonl"), "a") if self.acc.is_main_process else None
        t_start = time.perf_counter()
        self.model.train()
        bar = tqdm(total=o.steps, initial=self.step, desc="train v2", unit="step",
                   disable=not (self.progress and self.acc.is_main_process))
        val, stopped = {"val": float("nan")}, False
        try:
            while self.step < o.steps:
                loss, parts = self._loss(self.step)
                self.optim.zero_grad(set_to_none=True)
                self.acc.backward(loss)
                self.acc.clip_grad_norm_(self.trainable, 1.0)
                self.optim.step()
                self.ema.update()
                self.step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}", val=f"{val['val']:.4f}")
                record = {"step": self.step, "loss": loss.item(), **parts,
                          "seconds": round(time.perf_counter() - t_start, 1)}
                if self.step % o.val_every == 0 or self.step == o.steps:
                    val = self.validate()
                    record.update(val)
                    if not math.isnan(val["val"]):
                        self.best_val = min(self.best_val, val["val"])
                    self._save_state()
                    self.save_model({"val_loss": val["val"]})
                if logf:
                    logf.write(json.dumps(record) + "\n")
                    logf.flush()
                if o.max_minutes and time.perf_counter() - t_start > 60 * o.max_minutes:
                    stopped = True
                    break
        except KeyboardInterrupt:
            stopped = True
            log.warning("interrupted at step %d: saving, run the same command again to resume", self.step)
        finally:
            bar.close()
            if logf:
                logf.close()
        self._save_state()
        path = self.save_model({"val_loss": val["val"]})
        return {"stage": "v2", "step": self.step, "val_loss": val["val"], "model": path,
                "seconds": time.perf_counter() - t_start, "complete": not stopped and self.step >= o.steps}
