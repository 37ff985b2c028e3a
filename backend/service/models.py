"""Loaded models of both kinds, motion models and neural renderers: load (checkpoint path, 'default' or 'tiny'),
unload, list, and for motion models pick the default.

Motion models load through ``backend.motion.predictor`` (``load_predictor`` / ``tiny_predictor``), renderers through
``backend.render.checkpoint``; other ``loader`` / ``renderer_loader`` functions can be passed in (tests). A render
job asks for its renderer by source (:meth:`ModelManager.renderer`): it is loaded on first use and then listed,
reused and unloadable like any model. Thread-safe: HTTP requests load and unload while the worker runs a job (a
job keeps its own reference, so unloading never breaks a running job).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading

from .errors import ServiceError

log = logging.getLogger(__name__)

MOTION = "motion"
RENDERER = "renderer"
KINDS = (MOTION, RENDERER)
TINY = "tiny"  # a random-init tiny model of either kind (tests, benchmarks): fast, meaningless
DEFAULT = "default"  # the shipped checkpoint of the kind


@dataclasses.dataclass
class LoadedModel:
    """``model`` is a ``MotionPredictor`` (kind motion) or a renderer module in eval mode (kind renderer)."""

    id: str
    source: str
    model: object
    kind: str = MOTION
    device: str = "cpu"

    @property
    def map_size(self) -> list[int] | None:
        """(W, H) of the motion map a motion model predicts; None for a renderer (it renders any size)."""
        if self.kind != MOTION:
            return None
        return [int(v) for v in getattr(self.model, "map_size", (0, 0))]


def default_loader(source: str, device: str):
    """A motion predictor: ``tiny`` → a random tiny model; ``default`` → the shipped checkpoint; else a path."""
    from backend.motion import predictor as motion

    if source == TINY:
        from backend.device import resolve_device

        return motion.tiny_predictor(seed=0, device=str(resolve_device(device)))
    return motion.load_predictor(None if source == DEFAULT else source, device=device)


def default_renderer_loader(source: str, device: str) -> tuple:
    """(renderer in eval mode, id, device): ``tiny`` → untrained tiny renderer (forward warping with hole filling);
    ``default`` → the shipped checkpoint; else a path."""
    import torch

    from backend.device import resolve_device
    from backend.render import checkpoint
    from backend.render.config import RendererConfig
    from backend.render.networks import build_renderer

    dev = resolve_device(device)
    if source == TINY:
        torch.manual_seed(0)
        return build_renderer(RendererConfig(channels=(4, 6, 8))).to(dev).eval(), "gid-renderer@tiny", dev
    model, meta = checkpoint.load(None if source == DEFAULT else source, device=dev)
    return model, meta["model_id"], dev


def shipped_default_exists() -> bool:
    try:
        from backend.motion import predictor as motion
    except ImportError:
        return False
    return os.path.isfile(getattr(motion, "DEFAULT_CHECKPOINT", ""))


class ModelManager:
    def __init__(self, device: str = "auto", loader=None, renderer_loader=None):
        self.device = device
        self._loader = loader or default_loader
        self._renderer_loader = renderer_loader or default_renderer_loader
        self._lock = threading.Lock()
        self._models: dict[str, LoadedModel] = {}
        self._default: str | None = None  # the default motion model

    def load(self, source: str, make_default: bool = True, kind: str = MOTION) -> LoadedModel:
        """Load ``source`` as a model of ``kind``; a model whose id is already loaded is reused. 422
        ``invalid_model`` when the file is missing, corrupt or not a checkpoint of that kind (the message says
        which). ``make_default`` applies to motion models."""
        if kind not in KINDS:
            raise ServiceError(422, "invalid_model", f"Unknown model kind '{kind}': use one of {', '.join(KINDS)}")
        noun = "model" if kind == MOTION else "renderer"
        try:
            if kind == MOTION:
                predictor = self._loader(source, self.device)
                model = LoadedModel(str(predictor.model_id), source, predictor, MOTION,
                                    str(getattr(predictor, "device", "cpu")))
            else:
                module, model_id, device = self._renderer_loader(source, self.device)
                model = LoadedModel(str(model_id), source, module, RENDERER, str(device))
        except FileNotFoundError as exc:
            raise ServiceError(422, "invalid_model", f"Cannot load {noun} '{source}': {exc}. Give the path of a "
                                                     "checkpoint on the backend's machine") from None
        except (ValueError, OSError, RuntimeError, KeyError) as exc:
            raise ServiceError(422, "invalid_model", f"Cannot load {noun} '{source}': {exc}") from None
        with self._lock:
            model = self._models.setdefault(model.id, model)
            if kind == MOTION and (make_default or self._default is None):
                self._default = model.id
        log.info("%s %s loaded from %s on %s", kind, model.id, source, model.device)
        return model

    def renderer(self, source: str | None) -> LoadedModel:
        """The renderer loaded from ``source`` (None = the shipped one), loading it on first use."""
        source = source or DEFAULT
        with self._lock:
            for model in self._models.values():
                if model.kind == RENDERER and model.source == source:
                    return model
        return self.load(source, kind=RENDERER)

    def unload(self, model_id: str) -> LoadedModel:
        with self._lock:
            model = self._models.pop(model_id, None)
            if model is None:
                raise self._unknown(model_id, 404)
            if self._default == model_id:
                self._default = next((m.id for m in self._models.values() if m.kind == MOTION), None)
        log.info("%s %s unloaded", model.kind, model_id)
        return model

    def get(self, model_id: str | None = None) -> LoadedModel:
        """The motion model ``model_id`` (None = the default). 409 ``no_model`` when none is loaded, 422
        ``unknown_model`` for an id that is not a loaded motion model."""
        with self._lock:
            if model_id is None:
                if self._default is None:
                    raise ServiceError(409, "no_model", "No motion model is loaded: start the backend with "
                                                        "'image-dynamics serve --model PATH' or load one with "
                                                        "POST /v1/models")
                return self._models[self._default]
            model = self._models.get(model_id)
        if model is None:
            raise self._unknown(model_id, 422)
        if model.kind != MOTION:
            raise ServiceError(422, "unknown_model", f"Model '{model_id}' is a {model.kind}, not a motion model: "
                                                     "give the id of a motion model from GET /v1/models")
        return model

    def list(self) -> tuple[list[LoadedModel], str | None]:
        """Every loaded model (both kinds) and the default motion model's id."""
        with self._lock:
            return list(self._models.values()), self._default

    def _unknown(self, model_id: str, status: int) -> ServiceError:
        loaded = ", ".join(f"{m.id} ({m.kind})" for m in self._models.values()) or "none"
        return ServiceError(status, "unknown_model", f"Model '{model_id}' is not loaded (loaded: {loaded}); list "
                                                     "them with GET /v1/models or load it with POST /v1/models")
