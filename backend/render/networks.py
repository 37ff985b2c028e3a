"""The renderer network for a config: the one place that knows every kind (``RendererConfig.kind``)."""
from __future__ import annotations

from .baseline import BaselineSplatRenderer
from .config import RendererConfig
from .model import PyramidRenderer


def build_renderer(config: RendererConfig):
    """The network for ``config`` (random init; load weights with :func:`backend.render.checkpoint.load`)."""
    config.validate()
    if config.kind == "pyramid":
        return PyramidRenderer(config)
    return BaselineSplatRenderer(config)
