"""The renderer's training loop (used by ``scripts/train_renderer.py``; importable so tests can run it).

Samples (I_0, I_t, flow, weight) pairs, takes random crops (with horizontal flips: image mirrored, flow x
negated), renders Î_t = R(I_0, flow, W) and minimises L1 + SSIM + gradient losses with Adam and a cosine
learning-rate decay, keeping an exponential moving average (EMA) of the weights. Every ``checkpoint_seconds``
the full state (weights, EMA, optimizer, step) goes to ``<out>/last.pt`` (atomic), so a killed run resumes where
it stopped; the finished run writes ``<out>/renderer.pt`` with the EMA weights only (what ships).

Batches are drawn with a generator seeded by (seed, step): a resumed run sees the same batches it would have.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import time
from typing import Callable

import numpy as np
import torch

from . import checkpoint
from .config import RendererConfig
from .networks import build_renderer
from .losses import LossWeights, psnr, render_loss

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
    batch_size: int = 8
    crop: int = 128
    lr: float = 2e-3
    min_lr_fraction: float = 0.05
    weight_decay: float = 0.0
    ema: float = 0.995
    grad_clip: float = 1.0
    real_fraction: float = 0.5  # share of each batch drawn from real-clip pairs (when both kinds exist)
    flow_noise: float = 0.0  # synthetic pairs: smooth flow error, this fraction of the local RMS motion
    max_minutes: float = 0.0  # stop (and save) after this wall time; 0 = no limit
    checkpoint_seconds: float = 120.0
    log_every: int = 20
    snapshot_steps: tuple = ()  # also save the EMA weights as <out>/renderer_step<N>.pt at these steps
    seed: int = 0
    loss: LossWeights = LossWeights()

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.crop < 16:
            raise ValueError("steps and batch_size must be >= 1 and crop >= 16")
        if not 0 < self.ema < 1 or self.lr <= 0:
            raise ValueError("ema must be in (0, 1) and lr positive")
        if not 0 <= self.real_fraction <= 1:
            raise ValueError("real_fraction must be in [0, 1]")


def random_crop(sample: dict, crop: int, rng: np.random.Generator) -> dict:
    """Same random crop (and 50% horizontal flip) of i0, it, flow (2, H, W), weight (H, W)."""
    h, w = sample["i0"].shape[-2:]
    ch, cw = min(crop, h), min(crop, w)
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    out = {k: torch.as_tensor(sample[k])[..., y:y + ch, x:x + cw] for k in ("i0", "it", "flow", "weight")}
    if rng.uniform() < 0.5:
        out = {k: v.flip(-1) for k, v in out.items()}
        out["flow"] = out["flow"] * torch.tensor([-1.0, 1.0]).view(2, 1, 1)
    out["weight"] = out["weight"].reshape(1, ch, cw)
    return out


def _split_indices(dataset) -> tuple:
    """(real indices, synthetic indices) by the ``group`` of each item (groups starting with 'real:')."""
    groups = getattr(dataset, "groups", None)
    if callable(groups):
        groups = groups()
    if groups is None:
        groups = [dataset[i]["group"] for i in range(len(dataset))]
    real = np.array([i for i, g in enumerate(groups) if str(g).startswith("real:")], dtype=np.int64)
    synth = np.array([i for i, g in enumerate(groups) if not str(g).startswith("real:")], dtype=np.int64)
    return real, synth


def perturb_flow(sample: dict, fraction: float, rng: np.random.Generator) -> dict:
    """Add a smooth random error to the flow, ``fraction`` of the local RMS motion sqrt(W) (real flow from video
    is never exact: synthetic pairs with exact flow then teach the decoder to cope with flow errors too)."""
    flow = sample["flow"]
    h, w = flow.shape[-2:]
    coarse = torch.from_numpy(rng.standard_normal((1, 2, max(2, h // 16), max(2, w // 16))).astype(np.float32))
    noise = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0]
    rms = sample["weight"].clamp_min(0).sqrt().reshape(1, h, w)
    return {**sample, "flow": flow + fraction * noise * rms}


def make_batch(dataset, indices_real, indices_synth, cfg: TrainConfig, step: int) -> dict:
    rng = np.random.default_rng([cfg.seed, step])
    items = []
    for _ in range(cfg.batch_size):
        real = len(indices_synth) == 0 or (len(indices_real) > 0 and rng.uniform() < cfg.real_fraction)
        pool = indices_real if real else indices_synth
        item = random_crop(dataset[int(pool[rng.integers(len(pool))])], cfg.crop, rng)
        if cfg.flow_noise > 0 and not real:
            item = perturb_flow(item, cfg.flow_noise, rng)
        items.append(item)
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def learning_rate(cfg: TrainConfig, step: int) -> float:
    warm = min(1.0, (step + 1) / min(100.0, max(1.0, cfg.steps / 10.0)))  # linear warm-up
    cos = 0.5 * (1.0 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps))
    return cfg.lr * warm * (cfg.min_lr_fraction + (1.0 - cfg.min_lr_fraction) * cos)


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(decay).add_(p, alpha=1.0 - decay)
            else:
                e.copy_(p)


def evaluate(model, dataset, indices, device, limit: int = 32) -> float:
    """Mean PSNR (dB) of full-size renders over up to ``limit`` items of ``indices``."""
    if len(indices) == 0:
        return float("nan")
    pick = indices[np.linspace(0, len(indices) - 1, min(limit, len(indices))).astype(int)]
    values = []
    model.eval()
    with torch.no_grad():
        for i in pick:
            s = dataset[int(i)]
            i0, it = torch.as_tensor(s["i0"])[None].to(device), torch.as_tensor(s["it"])[None].to(device)
            flow = torch.as_tensor(s["flow"])[None].to(device)
            weight = torch.as_tensor(s["weight"]).reshape(1, 1, *flow.shape[-2:]).to(device)
            values.append(float(psnr(model(i0, flow, weight).clamp(0, 1), it)))
    return float(np.mean(values))


def train(model_config: RendererConfig, cfg: TrainConfig, train_set, out_dir: str, *, val_set=None,
          device="cpu", meta: dict | None = None, progress: Callable[[dict], None] | None = None,
          init: str | None = None) -> dict:
    """Train (or resume from ``<out_dir>/last.pt``). Returns a summary dict. ``progress(info)`` after each
    logged step (info: step, steps, loss parts, lr, steps_per_s, eta_s).

    ``init``: a finished renderer checkpoint (same config) whose weights start a new run (fine-tuning on new
    data); the optimizer and step start fresh. Ignored when ``<out_dir>/last.pt`` exists (that run resumes)."""
    cfg.validate()
    device = torch.device(device)
    os.makedirs(out_dir, exist_ok=True)
    last_path = os.path.join(out_dir, "last.pt")
    torch.manual_seed(cfg.seed)
    model = build_renderer(model_config).to(device)
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    history: list = []
    if os.path.isfile(last_path):
        payload = checkpoint.read(last_path)
        if RendererConfig.from_dict(payload["config"]) != model_config:
            raise ValueError(f"{last_path} was trained with config {payload['config']}, not "
                             f"{model_config.to_dict()}: use another --out folder or the same config")
        model.load_state_dict(payload["state_dict"])
        train_state = payload["train"]
        ema.load_state_dict(train_state["ema"])
        opt.load_state_dict(train_state["optimizer"])
        step = int(train_state["step"])
        history = list(train_state.get("history", []))
        log.info("resumed %s at step %d", last_path, step)
    elif init:
        state = checkpoint.load_for_finetune(init, model_config)
        model.load_state_dict(state)
        ema.load_state_dict(state)
        log.info("initialised from %s", init)
    real, synth = _split_indices(train_set)
    if len(real) + len(synth) == 0:
        raise ValueError("the training set is empty")
    val_real = _split_indices(val_set)[0] if val_set is not None else np.zeros(0, dtype=np.int64)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("training %s renderer (%d params) on %d real + %d synthetic pairs, %d steps", model_config.kind,
             n_params, len(real), len(synth), cfg.steps)

    def save_last():
        train_state = {"step": step, "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                       "history": history, "train_config": _plain(dataclasses.asdict(cfg))}
        checkpoint.save(last_path, model, meta=meta, train=train_state)

    start = time.perf_counter()
    last_save = start
    first_step = step
    window = []
    model.train()
    while step < cfg.steps:
        if cfg.max_minutes and time.perf_counter() - start > cfg.max_minutes * 60:
            log.info("time budget of %.1f min reached at step %d", cfg.max_minutes, step)
            break
        t0 = time.perf_counter()
        batch = {k: v.to(device) for k, v in make_batch(train_set, real, synth, cfg, step).items()}
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        pred = model(batch["i0"], batch["flow"], batch["weight"])
        loss, parts = render_loss(pred, batch["it"], cfg.loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        _ema_update(ema, model, cfg.ema if step > 50 else 0.0)
        step += 1
        window.append((float(loss.detach()), time.perf_counter() - t0))
        if step % cfg.log_every == 0 or step == cfg.steps:
            losses, times = zip(*window)
            rate = len(times) / sum(times)
            done_s = time.perf_counter() - start
            eta = (cfg.steps - step) / rate
            if cfg.max_minutes:
                eta = min(eta, max(0.0, cfg.max_minutes * 60 - done_s))
            info = {"step": step, "steps": cfg.steps, "loss": float(np.mean(losses)), **parts,
                    "lr": learning_rate(cfg, step - 1), "steps_per_s": rate, "eta_s": eta}
            history.append({"step": step, "loss": info["loss"]})
            window.clear()
            if progress is not None:
                progress(info)
        if step in cfg.snapshot_steps:
            checkpoint.save(os.path.join(out_dir, f"renderer_step{step}.pt"), ema, meta={**(meta or {}), "steps": step})
        if time.perf_counter() - last_save > cfg.checkpoint_seconds:
            save_last()
            last_save = time.perf_counter()
    save_last()
    val_psnr = evaluate(ema, val_set, val_real, device) if val_set is not None else float("nan")
    summary = {"steps": step, "steps_this_run": step - first_step, "seconds": time.perf_counter() - start,
               "params": n_params, "val_real_psnr": val_psnr, "real_pairs": int(len(real)),
               "synthetic_pairs": int(len(synth))}
    final_meta = dict(meta or {})
    final_meta.update({"steps": step, "val_real_psnr": val_psnr, "train_config": _plain(dataclasses.asdict(cfg))})
    checkpoint.save(os.path.join(out_dir, "renderer.pt"), ema, meta=final_meta)
    return summary


def _plain(d):
    """Dataclass dicts -> plain JSON-able values (for torch.load(weights_only=True))."""
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_plain(v) for v in d]
    return d
