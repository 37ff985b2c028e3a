"""The sample clip: a procedural meadow with flowers (256x160, 150 frames at 30 fps, H.264) that ``image-dynamics
extract`` uses when no video is given. It is not shipped: the scene generator (``backend.data.scenes``, a natural
clip: frequencies off the loop's bins, decaying gusts) renders it the first time it is needed (about 4 s on 2 cores)
and it is kept in the user's cache under a name that hashes the scene settings and the generator's source, so a
changed generator renders a new clip and an unchanged one is never rendered twice.

    path = sample_clip()            # $XDG_CACHE_HOME/image-dynamics/sample/sample_meadow-<hash>.mp4
    write_sample_clip("demo.mp4")   # the same clip anywhere (scripts/make_sample_clip.py)
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
from typing import Callable, Optional

from backend.paths import user_cache_dir

SCENE = {"kind": "meadow", "seed": 14, "num_frames": 150, "exact": False}  # 54 blades, 7 flowers
CRF = 16  # x264 quality: about 0.5 MB
_SOURCES = ("scene*.py",)  # backend/data modules that draw the clip (scenes.py, scene_*.py)


def clip_key(scene: dict = SCENE, crf: int = CRF) -> str:
    """12 hex digits of SHA-256 over the scene settings, the quality and the source of the modules that render."""
    h = hashlib.sha256(json.dumps({"scene": scene, "crf": crf}, sort_keys=True).encode())
    data_dir = os.path.join(os.path.dirname(__file__), "data")
    for pattern in _SOURCES:
        for path in sorted(glob.glob(os.path.join(data_dir, pattern))):
            with open(path, "rb") as fh:
                h.update(os.path.basename(path).encode() + b"\0" + fh.read())
    return h.hexdigest()[:12]


def write_sample_clip(path: str, scene: Optional[dict] = None, crf: int = CRF,
                      progress: Optional[Callable[[int, int], None]] = None) -> str:
    """Render the sample scene (``SCENE`` updated by ``scene``) and write it to ``path`` as H.264 mp4. The file
    appears complete or not at all (written next to it, then renamed). Returns ``path``."""
    from backend.data.scene_render import render_scene
    from backend.data.scenes import SceneConfig
    from backend.video import write_video

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    clip = render_scene(SceneConfig(**{**SCENE, **(scene or {})}), progress=progress)
    write_video(path, clip.frames, clip.fps, crf=crf, preset="slow")
    return path


def sample_clip(cache_dir: Optional[str] = None, progress: Optional[Callable[[int, int], None]] = None) -> str:
    """Path of the sample clip, rendered into ``cache_dir`` (default ``user_cache_dir("sample")``) if missing."""
    folder = cache_dir or user_cache_dir("sample")
    path = os.path.join(folder, f"sample_meadow-{clip_key()}.mp4")
    if not os.path.isfile(path):
        try:
            write_sample_clip(path, progress=progress)
        except (OSError, RuntimeError) as exc:
            raise RuntimeError(f"could not write the sample clip to '{folder}' ({exc}); set XDG_CACHE_HOME to a "
                          "writable folder or give a VIDEO") from exc
    return path
