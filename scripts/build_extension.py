"""Build the installable Blender extension zip (no Blender needed).

Stages ``blender_manifest.toml`` beside the contents of ``addon/`` (without __pycache__), then validates and builds
with Blender's own extension tool, ``bl_pkg/cli/blender_ext.py``, found inside the installed ``bpy`` package:

    .venv/bin/python scripts/build_extension.py            # -> dist/image_dynamics-<version>.zip
    .venv/bin/python scripts/build_extension.py --blender-ext /path/to/blender_ext.py --output-dir dist
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
log = logging.getLogger("build_extension")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache")


def find_blender_ext() -> pathlib.Path:
    """Path of blender_ext.py inside the installed bpy package (any Blender version folder)."""
    spec = importlib.util.find_spec("bpy")  # locates the package without importing Blender
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: the 'bpy' package is not installed in this Python, so Blender's extension tool "
                         "(bl_pkg/cli/blender_ext.py) cannot be found. Run with .venv/bin/python, install "
                         "bpy (pip install bpy==5.0.1), or pass --blender-ext PATH (it ships with every Blender "
                         "4.2+ under <version>/scripts/addons_core/bl_pkg/cli/)")
    for location in spec.submodule_search_locations:
        hits = sorted(glob.glob(os.path.join(location, "*", "scripts", "addons_core", "bl_pkg", "cli",
                                             "blender_ext.py")))
        if hits:
            return pathlib.Path(hits[-1])
    raise SystemExit(f"error: bpy is installed at {list(spec.submodule_search_locations)} but has no "
                     "*/scripts/addons_core/bl_pkg/cli/blender_ext.py; pass --blender-ext PATH")


def stage(stage_dir: pathlib.Path) -> dict:
    """Copy the manifest and addon/'s contents into ``stage_dir``; returns the parsed manifest."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    shutil.copytree(ROOT / "addon", stage_dir, ignore=IGNORE)
    shutil.copy2(ROOT / "blender_manifest.toml", stage_dir / "blender_manifest.toml")
    with open(stage_dir / "blender_manifest.toml", "rb") as fh:
        return tomllib.load(fh)


def run_tool(tool: pathlib.Path, *args: str) -> None:
    cmd = [sys.executable, str(tool), *args]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    if output:
        print(output)
    if proc.returncode != 0:
        raise SystemExit(f"error: '{args[0]}' failed (exit {proc.returncode}); see the messages above")


def build(output_dir: pathlib.Path, tool: pathlib.Path | None = None,
          stage_dir: pathlib.Path | None = None) -> pathlib.Path:
    """Stage, validate and build; returns the path of the zip in ``output_dir``."""
    tool = tool or find_blender_ext()
    stage_dir = stage_dir or ROOT / "build" / "extension"
    manifest = stage(stage_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    zip_path = output_dir / f"{manifest['id']}-{manifest['version']}.zip"
    if zip_path.exists():
        zip_path.unlink()
    run_tool(tool, "validate", str(stage_dir))
    run_tool(tool, "build", "--source-dir", str(stage_dir), "--output-filepath", str(zip_path))
    run_tool(tool, "validate", str(zip_path))
    return zip_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=pathlib.Path, default=ROOT / "dist",
                        help="where the zip is written (default: dist/)")
    parser.add_argument("--blender-ext", type=pathlib.Path, default=None,
                        help="path of Blender's bl_pkg/cli/blender_ext.py (default: found inside bpy)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    zip_path = build(args.output_dir, args.blender_ext)
    print(f"built {zip_path} ({zip_path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
