"""The import rules of the house, in one place (CONVENTIONS.md, "Layout and the one-way dependency rule").

    scripts/  ->  backend/  ->  addon/core/          (arrows point to what a layer may import)
                  addon/*.py (bpy layer)  ->  addon/core/

* ``addon/`` runs inside Blender: it never imports torch, diffusers, OpenCV, Pillow or the backend.
* ``addon/core/`` is pure Python + numpy: it never imports bpy (nor Blender's other modules).
* ``backend/`` never imports Blender's modules, and of the add-on only the bpy-free ``addon.core``.
* Job kinds live in ``backend/service/``: the models, the renderer, the data and the tools below the service never
  import it (only the CLI, which wires the commands, sits above it).
* ``scripts/`` import the installed package: they never edit ``sys.path``.

Every import counts, also one inside a function (an import hidden in a function is still an arrow), and relative
imports are resolved to the module they name.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLENDER_MODULES = ("bpy", "bpy_extras", "bmesh", "mathutils", "gpu", "gpu_extras", "blf", "aud", "idprop")
NOT_IN_BLENDER = ("torch", "diffusers", "cv2", "PIL", "backend")
SERVICE_USERS = ("backend/service/", "backend/cli.py")  # who may import backend.service


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: pathlib.Path, source: str | None = None) -> list:
    """(line, absolute module name) of every import in ``path`` (or in ``source`` as if it were that file),
    including those inside functions."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # "from pkg import sub" may import a submodule: count pkg.sub too
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def _files(folder: str) -> list:
    return sorted((ROOT / folder).rglob("*.py"))


def _top(name: str) -> str:
    return name.split(".")[0]


def _violations(folder: str, forbidden) -> list:
    out = []
    for path in _files(folder):
        for line, name in imports_of(path):
            reason = forbidden(path, name)
            if reason:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {name} ({reason})")
    return sorted(set(out))


def test_the_addon_never_imports_torch_opencv_pillow_or_the_backend():
    def forbidden(_path, name):
        return "the add-on runs inside Blender" if _top(name) in NOT_IN_BLENDER else None

    assert _violations("addon", forbidden) == []


def test_addon_core_never_imports_blender():
    def forbidden(_path, name):
        return "addon/core stays bpy-free" if _top(name) in BLENDER_MODULES else None

    assert _violations("addon/core", forbidden) == []


def test_the_backend_never_imports_blender_or_the_addons_bpy_layer():
    def forbidden(_path, name):
        if _top(name) in BLENDER_MODULES:
            return "the backend runs without Blender"
        if _top(name) == "addon" and name != "addon" and not name.startswith("addon.core"):
            return "only addon.core is bpy-free"
        return None

    assert _violations("backend", forbidden) == []


def test_only_the_service_and_the_cli_import_the_service():
    def forbidden(path, name):
        rel = path.relative_to(ROOT).as_posix()
        if (name == "backend.service" or name.startswith("backend.service.")) and not rel.startswith(SERVICE_USERS):
            return "job kinds and the service's plumbing live in backend/service"
        return None

    assert _violations("backend", forbidden) == []


def test_scripts_never_edit_sys_path():
    problems = []
    for path in _files("scripts"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                    and node.value.id == "sys"):
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert problems == [], f"scripts import the installed package; sys.path is edited at {problems}"


@pytest.mark.parametrize("source, expected", [
    ("import torch.nn as nn", ["torch.nn"]),
    ("from ..service import jobs", ["backend.service", "backend.service.jobs"]),
    ("from . import frames", ["backend.render", "backend.render.frames"]),
    ("def f():\n    from addon.core.spectral import to_complex", ["addon.core.spectral",
                                                                 "addon.core.spectral.to_complex"]),
])
def test_imports_are_found_everywhere_and_relative_ones_resolved(source, expected):
    path = ROOT / "backend" / "render" / "probe.py"  # need not exist: the source is given
    assert [name for _line, name in imports_of(path, source)] == expected
