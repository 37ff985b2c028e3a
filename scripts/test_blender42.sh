#!/usr/bin/env bash
# Run the add-on's bpy tests on Blender 4.2 LTS (the oldest supported version) in a separate venv.
#
#   scripts/test_blender42.sh              # create build/venv-bpy42 once (bpy 4.2.x, ~370 MB), run the tests
#   scripts/test_blender42.sh -k render    # extra arguments go to pytest
#
# The project's own .venv keeps bpy 5.0.1; the same tests must pass on both.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/build/venv-bpy42"
PYTHON="${PYTHON:-python3.11}"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    # bpy 4.2 wheels exist only for Python 3.11: reuse the interpreter behind the project's venv.
    PYTHON="$ROOT/.venv/bin/python"
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV with bpy 4.2 (about 370 MB download)..."
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
fi
if ! "$VENV/bin/python" -c "import bpy, numpy, pytest, pytest_timeout, PIL, requests" >/dev/null 2>&1; then
    # pytest-timeout: pyproject.toml's addopts pass --timeout
    "$VENV/bin/pip" install --quiet "bpy==4.2.*" "numpy>=1.26,<2" "pytest>=8" "pytest-timeout>=2.3" "Pillow>=10" "requests>=2.31"
fi
"$VENV/bin/python" -c "import bpy; print('Blender', bpy.app.version_string)"
cd "$ROOT"
exec "$VENV/bin/python" -m pytest -p no:cacheprovider tests/test_addon_*.py tests/test_pokes_bpy.py tests/test_animate_bpy.py "$@"
