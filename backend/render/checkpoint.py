"""Renderer checkpoints: weights + the config that built them (checked on load) + metadata (data card summary).

File (``torch.save``, read with ``weights_only=True``)::

    {"format": "image-dynamics-renderer", "format_version": 1, "config": RendererConfig.to_dict(),
     "state_dict": {...}, "meta": {...}}

Training checkpoints (``scripts/train_renderer.py``) add a ``"train"`` entry (optimizer, EMA, step, RNG); the
shipped file holds only the EMA weights.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os

import torch

from addon.core.files import atomic_path, file_digest

from .config import RendererConfig
from .networks import build_renderer

log = logging.getLogger(__name__)

FORMAT = "image-dynamics-renderer"
FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "renderer_default.pt")


def save(path, model, meta: dict | None = None, train: dict | None = None, state_dict: dict | None = None) -> None:
    """Write ``model`` (or ``state_dict`` for it) with its config; atomic (temp file + rename)."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config.to_dict(),
               "state_dict": {k: v.detach().cpu() for k, v in (state_dict or model.state_dict()).items()},
               "meta": json.loads(json.dumps(dict(meta or {}), default=str))}  # plain values: weights_only loads
    if train is not None:
        payload["train"] = train
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read(path) -> dict:
    """The raw checkpoint dict, validated; FileNotFoundError / ValueError saying what to do."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"renderer checkpoint '{path}' does not exist: train one with "
                                "'python scripts/train_renderer.py' or leave the path empty for the shipped default")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch's unpicklers raise anything (IndexError, KeyError...) on junk
        raise ValueError(f"renderer checkpoint '{path}' cannot be read ({type(exc).__name__}: {exc}); "
                         "it is damaged or not a torch file: re-download or re-train it") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"'{path}' is not an image-dynamics renderer checkpoint (format "
                         f"{payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r})")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"renderer checkpoint '{path}' has format version {payload.get('format_version')}, this "
                         f"version of image-dynamics reads {FORMAT_VERSION}")
    return payload


def model_id(path) -> str:
    """Content-hash id of a checkpoint file, e.g. ``gid-renderer@1a2b3c4d5e6f``."""
    return f"gid-renderer@{file_digest(path)}"


def load(path=None, device="cpu", expect: RendererConfig | None = None):
    """(model in eval mode on ``device``, meta) from ``path`` (None = the shipped default).

    ``expect``: a config the checkpoint must match (ValueError naming the differing fields otherwise). Missing or
    unexpected weights, or weights of the wrong shape, raise ValueError.
    """
    path = DEFAULT_CHECKPOINT if path is None else path
    payload = read(path)
    try:
        config = RendererConfig.from_dict(payload["config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"renderer checkpoint '{path}' has a bad config: {exc}") from None
    if expect is not None and expect != config:
        diff = {k: (v, getattr(config, k)) for k, v in expect.to_dict().items() if config.to_dict()[k] != v}
        raise ValueError(f"renderer checkpoint '{path}' was trained with another config: {diff} "
                         "(expected, found)")
    model = build_renderer(config)
    own = model.state_dict()
    state = payload["state_dict"]
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or extra or wrong:
        raise ValueError(f"renderer checkpoint '{path}' does not fit its config {config}: missing {missing[:3]}, "
                         f"unexpected {extra[:3]}, wrong shape {wrong[:3]}")
    model.load_state_dict(state)
    meta = dict(payload.get("meta", {}))
    meta.setdefault("model_id", model_id(path))
    log.debug("loaded renderer %s (%s) from %s", meta["model_id"], config.kind, path)
    return model.to(device).eval(), meta


def load_for_finetune(path, config: RendererConfig) -> dict:
    """Weights from the checkpoint at ``path`` for a new run of ``config`` (``train_renderer.py --init``).

    The checkpoint's config must equal ``config``, except that it may lack ``source_inputs`` or have fewer
    ``decoder_blocks``: the new side convolution starts at zero and the new blocks as the identity, so the new
    model renders exactly what the checkpoint did. Anything else raises ValueError naming the differing fields."""
    start, _ = load(path)
    found = start.config
    grows = (found.source_inputs <= config.source_inputs and found.decoder_blocks <= config.decoder_blocks
             and dataclasses.replace(found, source_inputs=config.source_inputs,
                                     decoder_blocks=config.decoder_blocks) == config)
    if not grows:
        diff = {k: (v, getattr(found, k)) for k, v in config.to_dict().items() if found.to_dict()[k] != v}
        raise ValueError(f"renderer checkpoint '{path}' was trained with another config: {diff} (expected, found)")
    if found == config:
        return start.state_dict()
    model = build_renderer(config)
    model.load_state_dict(start.state_dict(), strict=False)  # every old weight has its place; the new ones stay
    return model.state_dict()
