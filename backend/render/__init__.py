"""Neural frames (paper §5): feature-pyramid softmax splatting and a synthesis decoder.

``build_renderer(RendererConfig(...))`` makes the network; :mod:`.checkpoint` saves and loads it with its config;
:mod:`.frames` turns a spectral volume and per-frame modal coordinates into flows; :mod:`.render` renders frames.
"""
from .config import RendererConfig
from .networks import build_renderer

__all__ = ["RendererConfig", "build_renderer"]
