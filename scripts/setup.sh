#!/usr/bin/env bash
# One-time set-up: a virtual environment in .venv with everything the project needs, and the project installed
# (console script `image-dynamics`). Safe to re-run. Usage: bash scripts/setup.sh [--no-blender]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (bpy and the torch CPU wheel are built for it)"'

# System libraries that headless Blender (bpy) loads; software GL for Eevee/Workbench renders.
libs="libx11-6 libxi6 libxfixes3 libxrender1 libxkbcommon0 libsm6 libice6 libgl1 libegl1 libegl-mesa0 libgl1-mesa-dri"
missing=""
for p in $libs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing system libraries for bpy:$missing" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "setup: warning: missing system libraries for bpy:$missing (install them with apt-get as root)" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch pinned first so pip takes the CPU wheel on disk instead of a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
extras="dev,blender"
[ "${1:-}" = "--no-blender" ] && extras="dev"
.venv/bin/python -m pip install -q -e ".[${extras}]"
echo "setup: done ($(.venv/bin/python -c 'import torch, numpy; print("torch", torch.__version__, "numpy", numpy.__version__)'))" >&2
