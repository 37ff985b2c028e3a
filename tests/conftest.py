"""Shared test set-up. Headless Blender (bpy) writes to the user's config and cache folders: point every such
location into build/test-home before anything imports bpy, so tests never touch the machine's own settings."""
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
_HOME = ROOT / "build" / "test-home"
for _var, _sub in (("BLENDER_USER_RESOURCES", "blender"), ("XDG_CONFIG_HOME", "config"),
                   ("XDG_CACHE_HOME", "cache"), ("MESA_SHADER_CACHE_DIR", "mesa")):
    os.environ.setdefault(_var, str(_HOME / _sub))
    os.makedirs(os.environ[_var], exist_ok=True)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
