"""Packaging: the extension zip builds with Blender's own tool, installs into headless Blender and works there.

The install runs in a subprocess (a fresh Blender), so the extension's registration never mixes with the
source-tree registration the other bpy tests use.
"""
import importlib.util
import json
import os
import subprocess
import sys
import zipfile

import pytest

from bpy_helpers import ROOT

pytestmark = pytest.mark.bpy

INSTALL_SCRIPT = r"""
import json, os, sys
import bpy
import numpy as np
zip_path, work = sys.argv[1], sys.argv[2]
bpy.ops.wm.read_factory_settings(use_empty=True)
result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
import addon_utils
module = "bl_ext.user_default.image_dynamics"
enabled = module in {m.module for m in bpy.context.preferences.addons}
prefs = bpy.context.preferences.addons[module].preferences
spectral = sys.modules[module + ".core.spectral"]
image = bpy.data.images.new("photo", 32, 20)
image.filepath_raw = os.path.join(work, "photo.png"); image.file_format = "PNG"; image.save()
bpy.ops.imagedyn.create_plane(filepath=image.filepath_raw, columns=16)
obj = bpy.context.active_object
coeffs = np.zeros((3, 4, 20, 32), np.float32); coeffs[1, 0] = 1.5
spectral.save_npz(os.path.join(work, "v.npz"), spectral.SpectralVolume(coeffs, fps=24, num_frames=24))
bpy.ops.imagedyn.load_volume(filepath=os.path.join(work, "v.npz"))
print("RESULT " + json.dumps({
    "install": sorted(result), "enabled": enabled, "port": prefs.backend_port,
    "keys": [b.name for b in obj.data.shape_keys.key_blocks],
    "frame_end": bpy.context.scene.frame_end, "blender": bpy.app.version_string}))
"""


def _build(tmp_path):
    spec = importlib.util.spec_from_file_location("build_extension", ROOT / "scripts" / "build_extension.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(tmp_path / "dist", stage_dir=tmp_path / "stage")


def test_built_zip_contains_the_package_without_caches(tmp_path):
    zip_path = _build(tmp_path)
    names = zipfile.ZipFile(zip_path).namelist()
    assert {"blender_manifest.toml", "__init__.py", "ops.py", "compat.py", "core/spectral.py",
            "core/mesh.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_installing_the_built_zip_enables_a_working_extension(tmp_path):
    pytest.importorskip("bpy")
    zip_path = _build(tmp_path)
    env = dict(os.environ)
    home = tmp_path / "home"  # a private Blender user folder: the install never touches other tests' settings
    env.update(BLENDER_USER_RESOURCES=str(home / "blender"), XDG_CONFIG_HOME=str(home / "config"),
               XDG_CACHE_HOME=str(home / "cache"))
    proc = subprocess.run([sys.executable, "-c", INSTALL_SCRIPT, str(zip_path), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["install"] == ["FINISHED"] and result["enabled"]
    assert result["port"] == 8765
    assert result["keys"] == ["Basis"] + [f"IDyn_k{k:02d}_{p}" for k in range(3) for p in ("re", "im")]
    assert result["frame_end"] == 24  # factory scenes run at 24 fps: the 1 s volume is a 24-frame loop
