"""One photo in, a spectral volume out: the entry point the CLI, the service and the evaluation use."""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np
import torch

from addon.core.spectral import SpectralVolume
from backend.device import resolve_device
from backend.spectral import to_volume

from .checkpoint import file_digest, load_checkpoint
from .config import tiny_config
from .hint import gate, hint_map
from .models import MotionModel
from .sampler import SAMPLERS, decode_coeffs, sample_latents

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "motion_default.pt")
MIN_PHOTO_SIDE = 16


class Cancelled(Exception):
    """Raised inside a progress callback to stop a prediction."""


@dataclass(frozen=True)
class PredictParams:
    steps: int = 25           # denoising steps
    guidance: float = 1.5     # classifier-free guidance scale (1 = conditional prediction only)
    loop: float = 0.0         # loop self-guidance weight u (0 = off)
    seed: int = 0
    num_frames: int = 150     # loop length T of the volume
    fps: float = 30.0
    sampler: str = "ddim"     # ddim | dpm
    recurrence: int = 1       # self-recurrence per step (ddim, with loop guidance)

    def validate(self) -> None:
        checks = [
            ("steps", 1 <= self.steps <= 500, "use 1..500"),
            ("guidance", 0.0 <= self.guidance <= 20.0, "use 0..20 (1 = no guidance)"),
            ("loop", 0.0 <= self.loop <= 10.0, "use 0..10 (0 = off)"),
            ("seed", 0 <= self.seed < 2 ** 63, "use a non-negative integer"),
            ("num_frames", 2 <= self.num_frames <= 100000, "use 2..100000 frames"),
            ("fps", 0.0 < self.fps <= 1000.0, "use 0 < fps <= 1000"),
            ("sampler", self.sampler in SAMPLERS, f"use one of {', '.join(SAMPLERS)}"),
            ("recurrence", 1 <= self.recurrence <= 8, "use 1..8"),
        ]
        for name, ok, hint in checks:
            if not ok:
                raise ValueError(f"bad prediction parameter {name}={getattr(self, name)!r}: {hint}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PredictParams":
        known = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = set(d) - set(known)
        if unknown:
            raise ValueError(f"unknown prediction parameters: {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(known)})")
        p = cls(**d)
        p.validate()
        return p


def photo_to_tensor(photo: np.ndarray, width: int, height: int) -> torch.Tensor:
    """uint8 (H, W, 3) RGB -> (1, 3, height, width) float in [0, 1] (area-resampled)."""
    photo = np.asarray(photo)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"photo must be uint8 RGB (H, W, 3); got {photo.dtype} {photo.shape}")
    if min(photo.shape[:2]) < MIN_PHOTO_SIDE:
        raise ValueError(f"photo is {photo.shape[1]}x{photo.shape[0]}: use at least {MIN_PHOTO_SIDE} px per side")
    interp = cv2.INTER_AREA if photo.shape[1] > width else cv2.INTER_LINEAR
    small = cv2.resize(photo, (width, height), interpolation=interp)
    return torch.from_numpy(small).permute(2, 0, 1)[None].float() / 255.0


class MotionPredictor:
    """A loaded motion model on a device. ``predict`` is thread-compatible but not re-entrant: one call at a time."""

    def __init__(self, model: MotionModel, model_id: str, device: torch.device, info: Optional[dict] = None):
        self.model = model.eval().to(device)
        self.model_id = model_id
        self.device = device
        self.info = dict(info or {})

    @property
    def config(self):
        return self.model.config

    @property
    def map_size(self) -> tuple:
        return self.model.config.width, self.model.config.height

    def predict(self, photo: np.ndarray, params: PredictParams = PredictParams(),
                callback: Optional[Callable[[int, int], None]] = None,
                moves: Optional[np.ndarray] = None) -> SpectralVolume:
        """``moves``: the optional "moves here" hint (h, w) in [0, 1] at any size (``backend.motion.hint``);
        raises ``HintError`` (a ValueError) for an unusable one."""
        params.validate()
        cfg = self.model.config
        hint = None if moves is None else hint_map(moves, cfg.width, cfg.height, self.device)
        x = photo_to_tensor(photo, cfg.width, cfg.height).to(self.device)
        t0 = time.perf_counter()
        cb = None if callback is None else (lambda step, total, _preview: callback(step, total))
        gain = self.model.gain_for_steps(params.steps)
        latents = sample_latents(self.model, x, steps=params.steps, guidance=params.guidance, loop=params.loop,
                                 recurrence=params.recurrence, num_frames=params.num_frames, seed=params.seed,
                                 sampler=params.sampler, gain=gain, callback=cb)
        with torch.no_grad():
            coeffs = gate(decode_coeffs(self.model, latents, gain), hint)[0]
        log.info("predicted %s in %.1f s", self.model_id, time.perf_counter() - t0)
        return to_volume(coeffs, fps=params.fps, num_frames=params.num_frames,
                         source_size=(int(photo.shape[1]), int(photo.shape[0])), model=self.model_id,
                         seed=int(params.seed), steps=int(params.steps), guidance=float(params.guidance),
                         loop=float(params.loop), sampler=params.sampler, hint=int(moves is not None))

    def sample_batch(self, photos: torch.Tensor, params: PredictParams, n_samples: int = 1,
                     hints: Optional[torch.Tensor] = None) -> list:
        """Photos (B, 3, H, W) in [0, 1] at the map size -> per photo a list of ``n_samples`` coefficient arrays
        (K, 4, H, W) in pixels of the map, seeds ``params.seed + s`` (evaluation and calibration; no loop guidance).
        ``hints``: optional (B, 1, H, W) "moves here" maps at the map size."""
        params.validate()
        x = photos.to(self.device)
        hints = None if hints is None else hints.to(self.device)
        out = [[] for _ in range(x.shape[0])]
        gain = self.model.gain_for_steps(params.steps)
        for s in range(n_samples):
            lat = sample_latents(self.model, x, steps=params.steps, guidance=params.guidance, seed=params.seed + s,
                                 sampler=params.sampler, gain=gain)
            with torch.no_grad():
                c = gate(decode_coeffs(self.model, lat, gain), hints).cpu().numpy()
            for i in range(len(out)):
                out[i].append(c[i])
        return out


def load_predictor(path: Optional[str] = None, device: str = "auto") -> MotionPredictor:
    """Load a checkpoint (None = the shipped default). Raises FileNotFoundError / CheckpointError (a ValueError)."""
    path = path or DEFAULT_CHECKPOINT
    if path == DEFAULT_CHECKPOINT and not os.path.isfile(path):
        raise FileNotFoundError(f"the shipped motion checkpoint {path} is missing: reinstall, or pass --model with "
                                f"a checkpoint from scripts/train_motion.py")
    dev = resolve_device(device)
    model, payload = load_checkpoint(path, device=dev)
    model_id = f"{model.config.name}@{file_digest(path)}"
    return MotionPredictor(model, model_id, dev, info={"path": os.path.abspath(path), **payload.get("extra", {})})


def tiny_predictor(seed: int = 0, device: str = "cpu") -> MotionPredictor:
    """A random-init tiny model (64x48 maps) for tests and ``serve --model tiny``; well under a second per volume."""
    torch.manual_seed(seed)
    model = MotionModel(tiny_config())
    model.scales.fill_(2.0)
    return MotionPredictor(model, f"tiny-random@seed{seed}", resolve_device(device))
