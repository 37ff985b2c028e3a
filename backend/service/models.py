"""Loaded motion models: load (checkpoint path, 'default' or 'tiny'), unload, list, pick the default.

Loading goes through ``backend.motion.predictor`` (``load_predictor`` / ``tiny_predictor``); a different
``loader`` can be passed in (tests). Thread-safe: HTTP requests load and unload while the worker predicts (a job
keeps its own reference, so unloading never breaks a running job).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading

from .errors import ServiceError

log = logging.getLogger(__name__)

TINY = "tiny"
DEFAULT = "default"


@dataclasses.dataclass
class LoadedModel:
    id: str
    source: str
    predictor: object

    @property
    def device(self) -> str:
        return str(getattr(self.predictor, "device", "cpu"))

    @property
    def map_size(self) -> list[int]:
        return [int(v) for v in getattr(self.predictor, "map_size", (0, 0))]


def default_loader(source: str, device: str):
    """``tiny`` → a random tiny model; ``default`` → the shipped checkpoint; else a checkpoint path."""
    from backend.motion import predictor as motion

    if source == TINY:
        from backend.device import resolve_device

        return motion.tiny_predictor(seed=0, device=str(resolve_device(device)))
    return motion.load_predictor(None if source == DEFAULT else source, device=device)


def shipped_default_exists() -> bool:
    try:
        from backend.motion import predictor as motion
    except ImportError:
        return False
    return os.path.isfile(getattr(motion, "DEFAULT_CHECKPOINT", ""))


class ModelManager:
    def __init__(self, device: str = "auto", loader=None):
        self.device = device
        self._loader = loader or default_loader
        self._lock = threading.Lock()
        self._models: dict[str, LoadedModel] = {}
        self._default: str | None = None

    def load(self, source: str, make_default: bool = True) -> LoadedModel:
        """Load ``source``; a model whose id is already loaded is reused. 422 ``invalid_model`` when the file is
        missing, corrupt or not a motion checkpoint (the message says which)."""
        try:
            predictor = self._loader(source, self.device)
        except FileNotFoundError as exc:
            raise ServiceError(422, "invalid_model", f"Cannot load model '{source}': {exc}. Give the path of a "
                                                     "checkpoint on the backend's machine") from None
        except (ValueError, OSError, RuntimeError, KeyError) as exc:
            raise ServiceError(422, "invalid_model", f"Cannot load model '{source}': {exc}") from None
        model = LoadedModel(str(predictor.model_id), source, predictor)
        with self._lock:
            model = self._models.setdefault(model.id, model)
            if make_default or self._default is None:
                self._default = model.id
        log.info("model %s loaded from %s on %s", model.id, source, model.device)
        return model

    def unload(self, model_id: str) -> LoadedModel:
        with self._lock:
            model = self._models.pop(model_id, None)
            if model is None:
                raise self._unknown(model_id, 404)
            if self._default == model_id:
                self._default = next(iter(self._models), None)
        log.info("model %s unloaded", model_id)
        return model

    def get(self, model_id: str | None = None) -> LoadedModel:
        """The model ``model_id`` (None = the default). 409 ``no_model`` when none is loaded, 422
        ``unknown_model`` for an id that is not loaded."""
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
        return model

    def list(self) -> tuple[list[LoadedModel], str | None]:
        with self._lock:
            return list(self._models.values()), self._default

    def _unknown(self, model_id: str, status: int) -> ServiceError:
        loaded = ", ".join(self._models) or "none"
        return ServiceError(status, "unknown_model", f"Model '{model_id}' is not loaded (loaded: {loaded}); "
                                                     "list them with GET /v1/models or load it with "
                                                     "POST /v1/models")
