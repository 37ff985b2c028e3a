"""Training the motion model in three stages (paper section 4): ``vae`` -> ``unet`` (stage 1) -> ``freq`` (stage 2).

Each stage writes ``<out>/<stage>/``: ``model.pt`` (EMA weights, loadable by ``load_predictor``), ``state.pt`` (raw
weights, EMA, optimiser, step: resume by running the same command again), ``log.jsonl`` (loss, validation, time).
Batches are drawn deterministically from (seed, step, process index), so a resumed run sees the batches it would
have seen, and ``accelerate launch`` (DDP) processes see different ones. CPU float32 by default.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch.nn import functional as F

from addon.core.files import atomic_path, file_digest
from backend.spectral import normalize

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import MotionConfig, config_differences
from .models import MotionModel
from .sampler import make_scheduler

log = logging.getLogger(__name__)

STAGES = ("vae", "unet", "freq")
SLICES_PER_PHOTO = 4  # stage 1: frequencies drawn per photo (the photo encoder runs once for them)


@dataclass
class TrainOptions:
    stage: str
    out: str
    steps: int = 2000
    batch: int = 16               # frequency slices per step (vae: crops; unet: slices; freq: photos x K)
    lr: float = 2e-4
    crop: int = 64                # vae crops
    val_every: int = 250
    val_batches: int = 4
    ema_decay: float = 0.999
    seed: int = 0
    max_windows: Optional[int] = None   # unet/freq: windows whose latents are cached (None = all)
    init: Optional[str] = None          # previous stage's model.pt (unet: the vae's; freq: the unet's)
    max_minutes: Optional[float] = None  # stop (and save) after this wall time; run again to resume
    kl_weight: float = 1e-6
    grad_weight: float = 0.2
    mse_weight: float = 1.0       # vae: with mostly still pixels, L1 alone sits at "output zero" for a long time
    moving_crops: float = 0.8     # vae: share of crops re-drawn when less than 20% of their pixels move

    def validate(self):
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage '{self.stage}': choose one of {', '.join(STAGES)}")
        if self.stage != "vae" and not self.init:
            raise ValueError(f"stage '{self.stage}' starts from the previous stage: pass --init <run>/"
                             f"{'vae' if self.stage == 'unet' else 'unet'}/model.pt")
        if self.steps < 1 or self.batch < 1:
            raise ValueError("steps and batch must be >= 1")


# ------------------------------------------------------------------------------------------------ losses
def gradient_l1(a: torch.Tensor, b: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Multi-scale gradient L1 between two image batches (N, C, H, W)."""
    total = a.new_zeros(())
    for s in range(scales):
        if s:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        for dim in (2, 3):
            total = total + (a.diff(dim=dim) - b.diff(dim=dim)).abs().mean()
    return total / scales


def vae_loss(model, x: torch.Tensor, opts: TrainOptions, generator=None) -> tuple:
    rec, post = model("vae", x, generator)
    l1 = (rec - x).abs().mean()
    mse = (rec - x).pow(2).mean()
    grad = gradient_l1(rec, x)
    kl = post.kl().mean() / x[0].numel()
    loss = l1 + opts.mse_weight * mse + opts.grad_weight * grad + opts.kl_weight * kl
    return loss, {"l1": l1.item(), "mse": mse.item(), "grad": grad.item()}


# ------------------------------------------------------------------------------------------------ EMA
class EMA:
    def __init__(self, params, decay: float):
        self.params = [p for p in params]
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self):
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for s, p in zip(self.shadow, self.params):
            s.mul_(d).add_(p.detach(), alpha=1 - d)

    def swap(self):
        """Exchange model weights and EMA weights (call twice to restore)."""
        with torch.no_grad():
            for s, p in zip(self.shadow, self.params):
                tmp = p.detach().clone()
                p.copy_(s)
                s.copy_(tmp)

    def state_dict(self):
        return {"shadow": self.shadow, "updates": self.updates}

    def load_state_dict(self, d):
        for s, v in zip(self.shadow, d["shadow"]):
            s.copy_(v)
        self.updates = int(d["updates"])


# ------------------------------------------------------------------------------------------------ data
class LatentCache:
    """Whitened latents (N, K, C, h, w) of dataset windows, cached on disk under a key of (model, dataset, N)."""

    def __init__(self, model: MotionModel, dataset, path: str, key: str, max_windows: Optional[int],
                 progress: bool = True):
        n = len(dataset) if max_windows is None else min(len(dataset), max_windows)
        self.indices = np.linspace(0, len(dataset) - 1, n).round().astype(np.int64) if n else np.zeros(0, np.int64)
        meta_path = path + ".json"
        key = f"{key}:{n}"
        if os.path.isfile(path) and os.path.isfile(meta_path) and json.load(open(meta_path)).get("key") == key:
            self.latents = np.load(path, mmap_mode="r")
            return
        from tqdm import tqdm

        cfg = model.config
        w, h = cfg.latent_size
        out = np.zeros((n, cfg.k, cfg.vae.latent_channels, h, w), np.float16)
        with torch.no_grad():
            for j, i in enumerate(tqdm(self.indices, desc=f"encoding {os.path.basename(path)}", disable=not progress,
                                       unit="window")):
                z = normalize(torch.as_tensor(dataset[int(i)]["coeffs"]), model.scales)
                out[j] = model.encode(z[None])[0].numpy()
        with atomic_path(path) as tmp:
            np.save(tmp, out)
        json.dump({"key": key, "indices": self.indices.tolist()}, open(meta_path, "w"))
        self.latents = np.load(path, mmap_mode="r")

    def __len__(self):
        return len(self.indices)


def _photo(dataset, i) -> torch.Tensor:
    return torch.as_tensor(dataset[int(i)]["photo"], dtype=torch.float32)


def vae_digest(model: MotionModel) -> str:
    """Hash of everything that maps coefficients to latents: VAE weights, normalisation, whitening."""
    import hashlib

    h = hashlib.sha256()
    state = model.state_dict()
    for name in sorted(k for k in state if k.startswith("vae.") or k in ("scales", "latent_mean", "latent_std")):
        h.update(name.encode())
        h.update(state[name].detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


def dataset_key(dataset) -> str:
    if getattr(dataset, "cache_key", None):
        return dataset.cache_key
    root = getattr(dataset, "root", None)
    card = os.path.join(root, "card.json") if root else None
    if card and os.path.isfile(card):
        return f"{file_digest(card)}:{getattr(dataset, 'split', '')}"
    return f"{type(dataset).__name__}:{len(dataset)}:{getattr(dataset, 'split', '')}"


# ------------------------------------------------------------------------------------------------ the trainer
class TrainerBase:
    """What every motion-model trainer shares: resume from ``state.pt``, deterministic batches per (seed, step,
    process), EMA weights, validation on fixed batches, the loop with its log and progress bar, saving. A subclass
    sets ``opts`` (steps, val_every, val_batches, seed, max_minutes), ``acc``, ``dir``, ``model``, ``trainable``,
    ``ema``, ``optim``, ``config_class`` and ``stage`` and implements ``_loss(step, val, salt) -> (loss, parts)``."""

    config_class = MotionConfig
    stage = ""
    step, best_val = 0, math.inf

    @property
    def state_path(self):
        return os.path.join(self.dir, "state.pt")

    def _resume(self):
        if not os.path.isfile(self.state_path):
            return
        try:
            st = torch.load(self.state_path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot resume from {self.state_path} ({exc}): delete it to start over") from None
        saved = self.config_class.from_dict(st["config"])
        diff = config_differences(saved, self.model.config)
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

    def _before_save(self, raw) -> None:
        """Hook: statistics to compute with the EMA weights in place before ``model.pt`` is written."""

    def save_model(self, metrics: dict, half: bool = False, path: Optional[str] = None) -> str:
        """EMA weights -> ``model.pt`` (what the next stage and the predictor load)."""
        raw = self.acc.unwrap_model(self.model)
        self.ema.swap()
        try:
            self._before_save(raw)
            path = path or os.path.join(self.dir, "model.pt")
            if self.acc.is_main_process:
                save_checkpoint(path, raw, half=half, extra={"stage": self.stage, "step": self.step,
                                                             **self._extra(), **metrics})
        finally:
            self.ema.swap()
        return path

    def _extra(self) -> dict:
        return {}

    def _rng(self, step: int, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.opts.seed, step, self.acc.process_index, salt])

    def _has_val(self) -> bool:
        return True

    @torch.no_grad()
    def validate(self) -> dict:
        """Mean loss (``val``) and its parts over fixed validation batches (the same every time), EMA weights."""
        if not self._has_val():
            return {"val": float("nan")}
        self.model.eval()
        self.ema.swap()
        try:
            runs = [self._loss(10 ** 9 + i, val=True) for i in range(self.opts.val_batches)]
        finally:
            self.ema.swap()
            self.model.train()
        out = {f"val_{k}": float(np.mean([p[k] for _, p in runs])) for k in runs[0][1]}
        out["val"] = float(np.mean([loss.item() for loss, _ in runs]))
        return out

    def fit(self) -> dict:
        from tqdm import tqdm

        o = self.opts
        logf = open(os.path.join(self.dir, "log.jsonl"), "a") if self.acc.is_main_process else None
        t_start = time.perf_counter()
        self.model.train()
        bar = tqdm(total=o.steps, initial=self.step, desc=f"train {self.stage}", unit="step",
                   disable=not (self.progress and self.acc.is_main_process))
        val = float("nan")
        stopped_early = False
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
                bar.set_postfix(loss=f"{loss.item():.4f}", val=f"{val:.4f}")
                record = {"step": self.step, "loss": loss.item(), **parts,
                          "seconds": round(time.perf_counter() - t_start, 1)}
                if self.step % o.val_every == 0 or self.step == o.steps:
                    record.update(self.validate())
                    val = record["val"]
                    self.best_val = min(self.best_val, val) if not math.isnan(val) else self.best_val
                    self._save_state()
                    self.save_model({"val_loss": val})
                if logf:
                    logf.write(json.dumps(record) + "\n")
                    logf.flush()
                if o.max_minutes and time.perf_counter() - t_start > 60 * o.max_minutes:
                    stopped_early = True
                    break
        except KeyboardInterrupt:
            stopped_early = True
            log.warning("interrupted at step %d: saving, run the same command again to resume", self.step)
        finally:
            bar.close()
            if logf:
                logf.close()
        self._save_state()
        path = self.save_model({"val_loss": val})
        return {"stage": self.stage, "step": self.step, "val_loss": val, "model": path,
                "seconds": time.perf_counter() - t_start, "complete": not stopped_early and self.step >= o.steps}


class Trainer(TrainerBase):
    def __init__(self, opts: TrainOptions, config: MotionConfig, train_set, val_set, scales, *, accelerator=None,
                 progress: bool = True):
        opts.validate()
        from accelerate import Accelerator

        self.opts, self.progress, self.stage = opts, progress, opts.stage
        self.acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
        self.dir = os.path.join(opts.out, opts.stage)
        os.makedirs(self.dir, exist_ok=True)
        self.train_set, self.val_set = train_set, val_set
        self.model = self._build(config, scales)
        self.config = self.model.config
        self.scheduler = make_scheduler(self.config.diffusion)
        self.trainable = [p for p in self._trainable_modules_params()]
        self.ema = EMA(self.trainable, opts.ema_decay)
        self.optim = torch.optim.AdamW(self.trainable, lr=opts.lr, weight_decay=0.0)
        self.step = 0
        self.best_val = math.inf
        self._resume()
        self.model, self.optim = self.acc.prepare(self.model, self.optim)
        if opts.stage != "vae":  # one latent cache per run folder, shared by the U-Net and frequency stages
            raw = self.acc.unwrap_model(self.model)
            vae = vae_digest(raw)
            self.train_latents = LatentCache(raw, train_set, os.path.join(opts.out, "latents_train.npy"),
                                             f"{vae}:{dataset_key(train_set)}", opts.max_windows, progress)
            self.val_latents = LatentCache(raw, val_set, os.path.join(opts.out, "latents_val.npy"),
                                           f"{vae}:{dataset_key(val_set)}", 64, progress)
            if not len(self.train_latents):
                raise ValueError("the training split has no windows: build a dataset with scripts/build_dataset.py")

    # -- construction
    def _build(self, config: MotionConfig, scales) -> MotionModel:
        o = self.opts
        if o.stage == "vae":
            model = MotionModel(config.with_stage2(False))
            model.scales.copy_(torch.as_tensor(scales, dtype=torch.float32))
            return model
        prev, payload = load_checkpoint(o.init)
        want = config.with_stage2(o.stage == "freq")
        if o.stage == "unet":  # only the VAE (and the data statistics) carry over from the VAE stage
            diff = [d for d in config_differences(prev.config, want)
                    if d.split(" ")[0].split(".")[0] in ("width", "height", "k", "vae")]
            if diff:
                raise CheckpointError(f"--init {o.init} was trained with a different config: {'; '.join(diff[:6])}")
            model = MotionModel(want)
            keep = {k: v for k, v in prev.state_dict().items()
                    if k.startswith("vae.") or k in ("scales", "latent_mean", "latent_std")}
            model.load_state_dict(keep, strict=False)
            return model
        diff = config_differences(prev.config.with_stage2(True), want)
        if diff:
            raise CheckpointError(f"--init {o.init} was trained with a different config: {'; '.join(diff[:6])}")
        model = MotionModel(want)
        missing, unexpected = model.load_state_dict(prev.state_dict(), strict=False)
        if unexpected or any(not k.startswith("denoiser.freq_attention.") for k in missing):
            raise CheckpointError(f"--init {o.init} does not fit stage 2 (missing {missing[:3]}, unexpected "
                                  f"{unexpected[:3]})")
        return model

    def _trainable_modules_params(self):
        m = self.model
        for p in m.parameters():
            p.requires_grad_(False)
        mods = {"vae": [m.vae], "unet": [m.encoder, m.denoiser.unet], "freq": [m.denoiser.freq_attention]}
        params = []
        for mod in mods[self.opts.stage]:
            for p in mod.parameters():
                p.requires_grad_(True)
                params.append(p)
        return params

    def _before_save(self, raw) -> None:
        if self.opts.stage == "vae":
            self._latent_statistics(raw)

    @torch.no_grad()
    def _latent_statistics(self, raw: MotionModel, n: int = 32):
        """Per (frequency, channel) mean and std of the VAE's posterior means over training windows (whitening)."""
        idx = np.linspace(0, len(self.train_set) - 1, min(n, len(self.train_set))).round().astype(int)
        raw.latent_mean.zero_()
        raw.latent_std.fill_(1.0)
        lat = torch.cat([raw.encode(normalize(torch.as_tensor(self.train_set[int(i)]["coeffs"]), raw.scales)[None])
                         for i in idx])  # (n, K, C, h, w)
        raw.latent_mean.copy_(lat.mean(dim=(0, 3, 4)))
        raw.latent_std.copy_(lat.std(dim=(0, 3, 4)).clamp_min(1e-3))

    # -- batches (deterministic per step)
    def _vae_batch(self, dataset, rng) -> torch.Tensor:
        """``batch`` random (frequency, crop) slices, PER_WINDOW per loaded window; most crops show motion."""
        k, crop = self.config.k, self.opts.crop
        per_window = 8
        out = []
        scales = self.acc.unwrap_model(self.model).scales
        while len(out) < self.opts.batch:
            z = normalize(torch.as_tensor(dataset[int(rng.integers(len(dataset)))]["coeffs"]), scales)
            hh, ww = z.shape[-2:]
            c = min(crop, hh, ww)
            for _ in range(16 * per_window):  # bounded re-draws
                y, x = int(rng.integers(hh - c + 1)), int(rng.integers(ww - c + 1))
                piece = z[int(rng.integers(k)), :, y:y + c, x:x + c]
                if (piece != 0).float().mean() < 0.2 and rng.random() < self.opts.moving_crops:
                    continue
                out.append(piece)
                if len(out) % per_window == 0 or len(out) == self.opts.batch:
                    break
        return torch.stack(out[:self.opts.batch]).to(self.acc.device)

    def _diffusion_batch(self, cache: LatentCache, dataset, rng):
        """unet: ``batch`` (window, frequency) slices; freq: ``batch // K`` whole windows (>= 1)."""
        k = self.config.k
        if self.opts.stage == "unet":  # SLICES_PER_PHOTO random frequencies of batch / SLICES_PER_PHOTO photos
            n = max(1, self.opts.batch // SLICES_PER_PHOTO)
            rows = np.repeat(rng.integers(len(cache), size=n), SLICES_PER_PHOTO)
            ks = np.concatenate([rng.choice(k, SLICES_PER_PHOTO, replace=False) for _ in range(n)])
            lat = torch.as_tensor(np.stack([cache.latents[r, q] for r, q in zip(rows, ks)]), dtype=torch.float32)
            photos = torch.stack([_photo(dataset, cache.indices[r]) for r in rows[::SLICES_PER_PHOTO]])
            t = torch.as_tensor(rng.integers(self.config.diffusion.num_train_timesteps, size=len(rows)))
            drop = torch.as_tensor(rng.random(n) < self.config.cond_drop)
            group = SLICES_PER_PHOTO
        else:
            n = max(1, self.opts.batch // k)
            rows = rng.integers(len(cache), size=n)
            lat = torch.as_tensor(np.asarray(cache.latents[rows]), dtype=torch.float32).flatten(0, 1)
            photos = torch.stack([_photo(dataset, cache.indices[r]) for r in rows])
            ks = np.tile(np.arange(k), n)
            t = torch.as_tensor(rng.integers(self.config.diffusion.num_train_timesteps, size=n)).repeat_interleave(k)
            drop = torch.as_tensor(rng.random(n) < self.config.cond_drop)
            group = k
        noise = torch.as_tensor(rng.standard_normal(lat.shape), dtype=torch.float32)
        dev = self.acc.device
        return (lat.to(dev), photos.to(dev), torch.as_tensor(ks).to(dev), t.to(dev), drop.to(dev), noise.to(dev),
                group)

    def _diffusion_loss(self, batch) -> torch.Tensor:
        lat, photos, ks, t, drop, noise, group = batch
        noisy = self.scheduler.add_noise(lat, noise, t.cpu()).to(lat.device)
        pred = self.model("denoise", noisy, t, ks, photos, drop, group)
        return F.mse_loss(pred, noise)

    def _loss(self, step: int, val: bool = False, salt: int = 0):
        rng = self._rng(step, salt)
        if self.opts.stage == "vae":
            x = self._vae_batch(self.val_set if val else self.train_set, rng)
            gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2 ** 31)))
            return vae_loss(self.model, x, self.opts, None if self.acc.device.type != "cpu" else gen)
        cache = self.val_latents if val else self.train_latents
        dataset = self.val_set if val else self.train_set
        loss = self._diffusion_loss(self._diffusion_batch(cache, dataset, rng))
        return loss, {}

    def _has_val(self) -> bool:
        return bool(len(self.val_set)) and (self.opts.stage == "vae" or bool(len(self.val_latents)))

