#!/usr/bin/env bash
# Data set-up step for photo-textured procedural scenes: install Debian's wallpaper packages (as root; skipped when
# they are installed) and build the small photo library the scene generator reads (backend/data/photo_library.py).
# Usage: bash scripts/setup_photo_library.sh OUT_DIR        (about 45 s; 180 MB of packages, a 2 MB library)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/setup_photo_library.sh OUT_DIR}
pkgs="mate-backgrounds plasma-workspace-wallpapers gnome-backgrounds lomiri-wallpapers"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup_photo_library: installing$missing" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "setup_photo_library: error: missing packages:$missing; install them as root:" >&2
    echo "  apt-get install --no-install-recommends$missing" >&2
    exit 2
  fi
fi
PY=${PYTHON:-.venv/bin/python}
PYTHONPATH="${PYTHONPATH:-$PWD}" "$PY" scripts/build_photo_library.py "$out"
