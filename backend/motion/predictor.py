"""One photo in, a spectral volume out: the entry point the CLI, the service and the evaluation use."""
from __future__ import annotations

import logging
import os
import time
from typing import Callable, Optional

import cv2
import numpy as np
import torch

from addon.core.files import file_digest
from addon.core.protocol import PredictParams
from addon.core.spectral import SpectralVolume
from backend.device import resolve_device
from backend.spectral import to_volume

from .checkpoint import load_checkpoint
from .config import tiny_config, tiny_v2_config
from .hint import floor_inside, gate, hint_map
from .models import MotionModel
from .sampler import decode_coeffs, sample_latents, sample_shape

log = logging.getLogger(__name__)

ASSETS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets")
DEFAULT_CHECKPOINT = os.path.join(ASSETS, "motion_default.pt")  # the shipped model (v2)
V1_CHECKPOINT = os.path.join(ASSETS, "motion_v1.pt")  # the first model, kept for comparison and old projects
MIN_PHOTO_SIDE = 16


class Cancelled(Exception):
    """Raised inside a progress callback to stop a prediction."""


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

    @property
    def architecture(self) -> str:
        return getattr(self.model, "architecture", "v1")

    def _sample(self, x: torch.Tensor, hints: Optional[torch.Tensor], params: PredictParams, seed: int,
                callback=None, loop: float = 0.0, recurrence: int = 1) -> torch.Tensor:
        """Photos (B, 3, H, W) at the map size (+ hints (B, 1, H, W)) -> coefficients (B, K, 4, H, W) in px."""
        kw = dict(steps=params.steps, guidance=params.guidance, loop=loop, recurrence=recurrence,
                  num_frames=params.num_frames, seed=seed, sampler=params.sampler, callback=callback)
        with torch.no_grad():
            if self.architecture == "v2":
                cond = self.model.condition(x, hints)
                coeffs = self.model.decode(sample_shape(self.model, cond, **kw), cond.log_energy)
            else:  # v1: no hint input; calibrated gains per step count
                gain = self.model.gain_for_steps(params.steps)
                coeffs = decode_coeffs(self.model, sample_latents(self.model, x, gain=gain, **kw), gain)
        coeffs, gain = floor_inside(gate(coeffs, hints), hints)
        if bool((gain > 1).any()):
            log.info("painted area predicted too still to see: motion raised x%s",
                     ", ".join(f"{g:.3g}" for g in gain.tolist()))
        return coeffs

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
        coeffs = self._sample(x, hint, params, params.seed, cb, params.loop, params.recurrence)[0]
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
        for s in range(n_samples):
            c = self._sample(x, hints, params, params.seed + s).cpu().numpy()
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
    if getattr(model, "architecture", "v1") == "v2":
        model.trunk  # noqa: B018 - load the installed ImageNet trunk now: a missing package fails here, clearly
    model_id = f"{model.config.name}@{file_digest(path)}"
    return MotionPredictor(model, model_id, dev, info={"path": os.path.abspath(path), **payload.get("extra", {})})


def tiny_v2_predictor(seed: int = 0, device: str = "cpu") -> MotionPredictor:
    """A random-init tiny v2 model (64x64 maps, random trunk: needs no installed weights) for tests."""
    from .models_v2 import MotionModelV2
    from .trunk import EfficientNetLite0

    torch.manual_seed(seed)
    model = MotionModelV2(tiny_v2_config()).attach_trunk(EfficientNetLite0().eval().requires_grad_(False))
    model.eps.fill_(0.05)
    return MotionPredictor(model, f"tiny-v2-random@seed{seed}", resolve_device(device))


def tiny_predictor(seed: int = 0, device: str = "cpu") -> MotionPredictor:
    """A random-init tiny model (64x48 maps) for tests and ``serve --model tiny``; well under a second per volume."""
    torch.manual_seed(seed)
    model = MotionModel(tiny_config())
    model.scales.fill_(2.0)
    return MotionPredictor(model, f"tiny-random@seed{seed}", resolve_device(device))
