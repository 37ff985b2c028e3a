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
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from addon.core.files import atomic_path
from addon.core.spectral import normalization_scales
from backend.data.shards import write_json

from .checkpoint import CheckpointError, load_checkpoint
from .config import MotionV2Config, config_differences
from .models_v2 import MotionModelV2, amplitude, area, energy_and_shape, training_hint, trunk_features
from .sampler import make_scheduler
from .training import EMA, TrainerBase, dataset_key

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
    real_fraction: float = 0.5      # share of each batch drawn from real windows (when there are any)
    diffusion_weight: float = 1.0
    energy_loss: str = "poisson"    # poisson: the mean amplitude (+ 0.25 x L1 of log); l1log: the median in log
    level_targets: bool = True      # bring every window's motion level toward the typical one (``level_scale``)
    still_windows: bool = True      # train on fully still windows too (False: batches skip them; ``still_rows``)
    precision: str = "bf16"         # bf16 autocast (CPU and CUDA) or fp32
    init: Optional[str] = None      # start from this v2 model.pt (fine-tuning); the config must match
    max_minutes: Optional[float] = None
    max_windows: Optional[int] = None
    real_crops: int = 0             # zoomed crops (1.25-2x) of every real window added to the cache (``zoom_crop``)
    real_mosaics: int = 0           # 2 x 2 mosaics at half size per real window added to the cache (``mosaic``)
    real_recolours: int = 0         # strongly recoloured copies of every real window added to the cache (``recolour``)
    cache: Optional[str] = None     # folder of the feature caches (default <out>/cache); runs on the same data and
    #                                 settings can share one (a run with other settings rebuilds it there)

    def validate(self):
        if self.steps < 1 or self.batch < 1:
            raise ValueError("steps and batch must be >= 1")
        if not 0.0 <= self.real_fraction <= 1.0:
            raise ValueError("real_fraction must be in [0, 1]")
        if self.precision not in ("bf16", "fp32"):
            raise ValueError("precision must be bf16 or fp32")
        if self.energy_loss not in ("poisson", "l1log"):
            raise ValueError("energy_loss must be poisson or l1log")
        if not all(0 <= n <= 8 for n in (self.real_crops, self.real_mosaics, self.real_recolours)):
            raise ValueError("real_crops, real_mosaics and real_recolours must be in 0..8")


def _name(key) -> str:
    return f"f{key}" if isinstance(key, int) else str(key)


class FeatureCache:
    """Trunk maps and targets of ``dataset`` windows: two rows per window (as is, mirrored), and with ``real_crops``
    two more per zoomed crop of a real window (``zoom_crop``), with ``real_mosaics`` two more per mosaic of the real
    window and three other real windows at half size (``mosaic``), with ``real_recolours`` two more per recoloured
    copy (``recolour``), in window order. ``row_sources`` names every row's source (real / synthetic)."""

    ARRAYS = ("photo", "energy", "shape", "amp", "trust4", "trust8") + tuple(_name(k) for k in TRUNK_KEYS)

    def __init__(self, folder: str, dataset, config: MotionV2Config, eps: torch.Tensor, key: str,
                 trunk=None, max_windows: Optional[int] = None, progress: bool = True, level: float = 0.0,
                 real_crops: int = 0, real_mosaics: int = 0, real_recolours: int = 0):
        n = len(dataset) if max_windows is None else min(len(dataset), max_windows)
        self.indices = np.linspace(0, len(dataset) - 1, n).round().astype(np.int64) if n else np.zeros(0, np.int64)
        self.folder = folder
        # extra views per real window; a count of 0 is left out of the key (caches written before it still load)
        self.extra = {"real_crops": int(real_crops), "real_mosaics": int(real_mosaics),
                      "real_recolours": int(real_recolours)}
        full_key = json.dumps({"key": key, "n": n, "version": CACHE_VERSION, "size": [config.width, config.height],
                               "k": config.k, "eps": [round(float(e), 8) for e in eps],
                               "level": round(float(level), 6), **{k: v for k, v in self.extra.items() if v}},
                              sort_keys=True)
        self.level = float(level)
        meta = os.path.join(folder, "meta.json")
        if not (os.path.isfile(meta) and json.load(open(meta)).get("key") == full_key):
            self._build(dataset, config, eps, trunk, progress)
            write_json(meta, {"key": full_key, "sources": self._sources, "row_sources": self._row_sources})
        saved = json.load(open(meta))  # caches written before the crops name sources per window (two rows each)
        self.row_sources = np.asarray(saved.get("row_sources") or np.repeat(saved["sources"], 2).tolist())
        self.arrays = {a: np.load(os.path.join(folder, f"{a}.npy"), mmap_mode="r") for a in self.ARRAYS}

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def num_rows(self) -> int:
        return len(self.row_sources)

    def _views(self, source: str) -> int:
        """Views of a window in the cache: the window itself, and for a real one its crops, mosaics and recolours."""
        return 1 + (sum(self.extra.values()) if source == "real" else 0)

    def _window(self, dataset, i: int) -> tuple:
        """(photo, coeffs, trust) of window ``i`` as batches of one, its motion brought toward the typical level."""
        s = dataset[int(i)]
        photo = torch.as_tensor(s["photo"])[None]
        coeffs = torch.as_tensor(s["coeffs"])[None]
        trust = torch.as_tensor(s["trust"])[None, None]
        if self.level > 0:
            coeffs = coeffs * level_scale(coeffs, trust, self.level)
        return photo, coeffs, trust

    def _build(self, dataset, config, eps, trunk, progress):
        from tqdm import tqdm

        os.makedirs(self.folder, exist_ok=True)
        every = window_sources(dataset)
        reals = [int(i) for i in self.indices if every[int(i)] == "real"]
        n_rows = 2 * sum(self._views(every[int(i)]) for i in self.indices)
        arrays = None
        row = 0
        self._sources, self._row_sources = [], []
        with contextlib.ExitStack() as stack:  # every array appears complete or not at all
            tmp = {a: stack.enter_context(atomic_path(os.path.join(self.folder, f"{a}.npy"))) for a in self.ARRAYS}
            for j, i in enumerate(tqdm(self.indices, desc=f"caching {os.path.basename(self.folder)}",
                                       unit="window", disable=not progress)):
                source = every[int(i)]
                self._sources.append(source)
                window = self._window(dataset, i)
                gen = torch.Generator().manual_seed(int(i))  # crops, mosaics, recolours: adding one keeps the others
                n = self.extra if source == "real" else dict.fromkeys(self.extra, 0)
                views = [window] + [zoom_crop(*window, gen) for _ in range(n["real_crops"])]
                for _ in range(n["real_mosaics"]):
                    others = [reals[int(torch.randint(len(reals), (), generator=gen))] for _ in range(3)]
                    views.append(mosaic([window] + [self._window(dataset, j) for j in others]))
                views += [recolour(*window, gen) for _ in range(n["real_recolours"])]
                for view in views:
                    for flip in (0, 1):
                        if flip:
                            view = mirror(*view)
                        rows = self._row(*view, config, eps, trunk)
                        if arrays is None:
                            arrays = {a: np.lib.format.open_memmap(tmp[a], mode="w+", dtype=v.dtype,
                                                                   shape=(n_rows, *v.shape)) for a, v in rows.items()}
                        for a, v in rows.items():
                            arrays[a][row] = v
                        row += 1
                        self._row_sources.append(source)
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


LEVEL_QUANTILE = 90.0  # a window's motion level: this percentile of its trusted pixels' amplitude
LEVEL_RANGE = (0.25, 4.0)  # how far a window's level is moved toward the typical level


def motion_level(coeffs: torch.Tensor, trust: torch.Tensor) -> float:
    """How strongly a window moves (px): the LEVEL_QUANTILE-th percentile of the amplitude sqrt(sum_k>=1 |c_k|^2)
    over its trusted pixels (every pixel when fewer than 1% are trusted)."""
    amp = amplitude(coeffs)[0, 0]
    mask = trust[0, 0] > 0.5
    values = amp[mask] if float(mask.float().mean()) >= 0.01 else amp.flatten()
    return float(torch.quantile(values.float(), LEVEL_QUANTILE / 100.0))


def level_scale(coeffs: torch.Tensor, trust: torch.Tensor, typical: float) -> float:
    """The factor that brings a window's motion level to the typical one (clipped to LEVEL_RANGE; still windows
    stay as they are). A photo does not show how strong the wind was: trained on level-matched targets, the energy
    head predicts where and how much relative to the typical level of the training footage, instead of memorising
    each clip's wind."""
    level = motion_level(coeffs, trust)
    if level < 1e-3:
        return 1.0
    return float(np.clip(typical / level, *LEVEL_RANGE))


def window_sources(dataset) -> list:
    """The source (real / synthetic) of every window of ``dataset`` (a MotionDataset or a ConcatDataset of them),
    in index order, from the index alone (no window is read)."""
    parts = getattr(dataset, "datasets", [dataset])
    return [m["source"] for part in parts for m in part.index.samples]


def typical_level(dataset, n: int = 200) -> float:
    """The median motion level of up to ``n`` real windows of ``dataset`` (all windows when it has none)."""
    sources = window_sources(dataset)
    idx = [i for i, s in enumerate(sources) if s == "real"] or list(range(len(dataset)))
    idx = [idx[j] for j in np.linspace(0, len(idx) - 1, min(n, len(idx))).round().astype(int)]
    levels = []
    for i in idx:
        s = dataset[int(i)]
        levels.append(motion_level(torch.as_tensor(s["coeffs"])[None], torch.as_tensor(s["trust"])[None, None]))
    return float(np.median(levels))


STILL_PX = 1e-3  # a window whose amplitude stays below this everywhere (px of the map) is fully still


def still_rows(cache: FeatureCache, chunk: int = 256) -> np.ndarray:
    """Rows of ``cache`` whose window does not move anywhere (max amplitude < STILL_PX): the procedural build's
    "static" scenes, a photo and nothing moving. A photo does not show whether the wind blew; trained on them, the
    model learns that some photos (landscapes, skies: the scenes' backdrops) stand still as a whole, and predicts
    near-zero motion for a real photo of that look where an artist asked for motion."""
    amp = cache.arrays["amp"]
    peak = [np.asarray(amp[i:i + chunk], np.float32).max(axis=(1, 2)) for i in range(0, len(amp), chunk)]
    return np.flatnonzero(np.concatenate(peak) < STILL_PX) if peak else np.zeros(0, np.int64)


ZOOM = (1.25, 2.0)  # how far ``zoom_crop`` zooms in


def resize_view(photo, coeffs, trust, size: tuple, mode: str) -> tuple:
    """A window (photo, coeffs, trust) resampled to ``size`` (h, w) with ``mode`` (bilinear or area); displacements
    are in map pixels, so the motion scales with the picture (x by the width's factor, y by the height's)."""
    h, w = photo.shape[-2:]
    extra = {"align_corners": False} if mode == "bilinear" else {}

    def resample(x):
        return torch.nn.functional.interpolate(x, size=size, mode=mode, **extra)

    c = resample(coeffs.flatten(1, 2)).unflatten(1, coeffs.shape[1:3])
    c[:, :, 0:2] *= size[1] / w
    c[:, :, 2:4] *= size[0] / h
    return resample(photo), c, resample(trust)


def zoom_crop(photo, coeffs, trust, generator: torch.Generator) -> tuple:
    """A zoomed crop of a window, as if filmed closer: a random part of 1/ZOOM of the width and height (aspect kept)
    enlarged back to the map size; the motion enlarges with it (displacements in map pixels times the zoom)."""
    _, _, h, w = photo.shape
    zoom = ZOOM[0] + (ZOOM[1] - ZOOM[0]) * float(torch.rand((), generator=generator))
    cw, ch = max(2, round(w / zoom)), max(2, round(h / zoom))
    x0 = int(torch.randint(0, w - cw + 1, (), generator=generator))
    y0 = int(torch.randint(0, h - ch + 1, (), generator=generator))
    crop = [x[..., y0:y0 + ch, x0:x0 + cw] for x in (photo, coeffs, trust)]
    p, c, t = resize_view(*crop, (h, w), "bilinear")
    return p.clamp(0.0, 1.0), c, t


def mosaic(windows: list) -> tuple:
    """Four windows (photo, coeffs, trust) as one, 2 x 2, each shrunk to a quarter of the area, as if filmed from
    twice as far: the motion shrinks with it (displacements in map pixels times the tile's scale). Teaches that
    small, distant plants move too (a wide landscape), which the zoomed crops cannot."""
    _, _, h, w = windows[0][0].shape
    hs, ws = (h // 2, h - h // 2), (w // 2, w - w // 2)
    tiles = [resize_view(*window, (hs[n // 2], ws[n % 2]), "area") for n, window in enumerate(windows[:4])]

    def grid(j):
        return torch.cat([torch.cat([tiles[0][j], tiles[1][j]], -1), torch.cat([tiles[2][j], tiles[3][j]], -1)], -2)

    return grid(0), grid(1), grid(2)


RECOLOUR = {"gain": (0.6, 1.4), "contrast": (0.6, 1.4), "saturation": (0.0, 1.6), "white": (0.8, 1.2),
            "gamma": (0.7, 1.4)}


def recolour(photo, coeffs, trust, generator: torch.Generator) -> tuple:
    """A window in other colours (motion and trust unchanged): brightness gain, contrast about the mean, saturation
    (0 = grey), per-channel white balance and gamma drawn from RECOLOUR, far beyond a camera's jitter, so that a
    sky, a wall or foliage of a colour no training clip had is not taken for "still"."""
    def draw(key, n=1):
        lo, hi = RECOLOUR[key]
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    gain, contrast, saturation, white, gamma = (draw("gain"), draw("contrast"), draw("saturation"),
                                                draw("white", 3), draw("gamma"))
    x = photo.clamp(0.0, 1.0) ** gamma
    grey = x.mean(1, keepdim=True)
    x = grey + (x - grey) * saturation
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (mean + (x - mean) * contrast) * gain * white[None, :, None, None]
    return x.clamp(0.0, 1.0), coeffs, trust


def mirror(photo, coeffs, trust):
    """Mirror a window left-right: images flip, and the x components of every coefficient change sign."""
    c = coeffs.flip(-1).clone()
    c[:, :, 0:2] = -c[:, :, 0:2]
    return photo.flip(-1), c, trust.flip(-1)


def energy_loss(log_e: torch.Tensor, energy: torch.Tensor, eps: torch.Tensor, scales: torch.Tensor,
                trust: torch.Tensor, kind: str = "poisson") -> torch.Tensor:
    """Trust-weighted loss of the energy head's log(E + eps) (B, K-1, h, w) against the true energy E.

    ``l1log``: L1 of the logs; its minimiser is the median of log E, which for a pixel that may be still or may move
    sits far below the mean (the amplitude comes out too small). ``poisson``: the Poisson deviance of mu = E + eps
    in units of s_k, whose minimiser is the mean E, plus 0.25 x the L1 of the logs for the ranking of small
    amplitudes."""
    e = energy + eps[None, :, None, None]
    l1 = (log_e - e.log()).abs()
    if kind == "poisson":
        s = scales[None, :, None, None].clamp_min(1e-6)
        mu = log_e.exp() / s
        y = e / s
        l1 = (mu - y * (log_e - s.log()) - (y - y * y.clamp_min(1e-12).log())) + 0.25 * l1
    w = trust[:, None]
    return (l1 * w).sum() / (w.sum() * log_e.shape[1] + 1e-6)


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


class TrainerV2(TrainerBase):
    config_class = MotionV2Config
    stage = "v2"

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
        fresh = not os.path.isfile(self.state_path) and not opts.init  # a new run computes its data statistics
        if fresh:
            stats = data_statistics(train_set, self.config)
            self.model.scales.copy_(torch.as_tensor(stats["scales"]))
            self.model.eps.copy_(torch.as_tensor(stats["eps"]))
        self.scheduler = make_scheduler(self.config.diffusion)
        self.trainable = [p for p in self.model.parameters()]
        self.ema = EMA(self.trainable, opts.ema_decay)
        self.optim = torch.optim.AdamW(self.trainable, lr=opts.lr, weight_decay=1e-4)
        self.step, self.best_val = 0, math.inf
        self._resume()  # before the caches: their targets are computed with the run's own eps
        key = lambda ds: f"{dataset_key(ds)}:{trunk_key or 'custom'}"  # noqa: E731
        cache = self.opts.cache or os.path.join(self.dir, "cache")
        self.level = typical_level(train_set) if opts.level_targets else 0.0
        self.train_cache = FeatureCache(os.path.join(cache, "train"), train_set, self.config, self.model.eps,
                                        key(train_set), trunk, opts.max_windows, progress, self.level,
                                        opts.real_crops, opts.real_mosaics, opts.real_recolours)
        self.val_cache = FeatureCache(os.path.join(cache, "val"), val_set, self.config, self.model.eps,
                                      key(val_set), trunk, 64, progress, self.level)
        if fresh:  # buffers, not parameters: the EMA does not hold them
            std, kappa = shape_statistics(self.train_cache, self.config.k)
            self.model.shape_std.copy_(torch.as_tensor(std))
            self.model.coherence.copy_(torch.as_tensor(kappa))
        self.model, self.optim = self.acc.prepare(self.model, self.optim)
        self.real_rows = np.flatnonzero(self.train_cache.row_sources == "real")
        self.all_rows = np.arange(self.train_cache.num_rows)
        if not opts.still_windows:
            still = still_rows(self.train_cache)
            self.real_rows = np.setdiff1d(self.real_rows, still)
            self.all_rows = np.setdiff1d(self.all_rows, still)
            if not len(self.all_rows):
                raise ValueError("every training window is still: train with the still windows")
            log.info("batches skip %d still rows of %d", len(still), self.train_cache.num_rows)

    def _build(self, config: MotionV2Config) -> MotionModelV2:
        if not self.opts.init:
            return MotionModelV2(config)
        prev, _ = load_checkpoint(self.opts.init)
        diff = config_differences(prev.config, config)
        if getattr(prev, "architecture", "v1") != "v2" or diff:
            raise CheckpointError(f"--init {self.opts.init} is not a v2 model of this config ({'; '.join(diff[:6])})")
        return prev.train()

    def _extra(self) -> dict:
        return {"windows": len(self.train_cache), "typical_level_px": round(self.level, 4),
                "still_windows": self.opts.still_windows, "real_crops": self.opts.real_crops,
                "real_mosaics": self.opts.real_mosaics, "real_recolours": self.opts.real_recolours,
                "init": self.opts.init}

    # ---- batches and losses
    def _rows(self, rng, cache: FeatureCache, val: bool) -> np.ndarray:
        b = self.opts.batch
        if val or not len(self.real_rows) or self.opts.real_fraction == 0:
            return rng.integers(cache.num_rows, size=b)
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
        l_energy = energy_loss(log_e, d["energy"], raw.eps, raw.scales[1:], d["trust4"], self.opts.energy_loss)
        w8 = d["trust8"][:, None]
        l_diff = ((v - v_target) ** 2 * w8).sum() / (w8.sum() * v.shape[1] + 1e-6)
        loss = l_energy + self.opts.diffusion_weight * l_diff
        return loss, {"energy": l_energy.item(), "diffusion": l_diff.item()}

    def _has_val(self) -> bool:
        return bool(len(self.val_cache))
