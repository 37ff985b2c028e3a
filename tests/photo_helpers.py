"""A made-up photo library for tests: textured pictures written as source files, a curated index for them, and the
real builder (scripts/build_photo_library.py) turning them into a library folder, as the set-up does with Debian's
wallpapers."""
import hashlib
import pathlib
import sys

import cv2
import numpy as np

from backend.data.photo_library import COLUMNS, dhash

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_photo_library  # noqa: E402

ROLES = {"stone": "backdrop", "sky": "backdrop", "room": "backdrop", "leaves": "foliage", "grass": "foliage",
         "petals": "petal", "fabric": "petal,backdrop", "graphic": "exclude"}


def picture(seed: int, width: int = 900, height: int = 600) -> np.ndarray:
    """uint8 RGB: smooth colour fields at several scales with sharp-edged shapes (something to see move)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.float32)
    for sigma, weight in ((60, 1.0), (15, 0.5), (3, 0.3)):
        img += weight * cv2.GaussianBlur(rng.standard_normal((height, width, 3)).astype(np.float32), (0, 0), sigma)
    img = (img - img.mean()) / img.std() * 0.18 + rng.uniform(0.3, 0.7, 3).astype(np.float32)
    for _ in range(40):
        c = tuple(float(v) for v in rng.uniform(0, 1, 3))
        x, y, r = int(rng.integers(width)), int(rng.integers(height)), int(rng.integers(5, 60))
        cv2.circle(img, (x, y), r, c, -1) if rng.uniform() < 0.5 else cv2.rectangle(img, (x, y), (x + r, y + r), c, -1)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def write_sources(folder: pathlib.Path, roles=ROLES) -> pathlib.Path:
    """Source pictures and their curated index (TSV); returns the index path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (name, role) in enumerate(roles.items()):
        rgb = picture(k)
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), rgb[..., ::-1])
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        rows.append([f"test_{name}", "made-up", str(path), digest, dhash(rgb), "CC0-1.0", "the tests", role,
                     f"made-up {name}"])
    index = folder / "index.tsv"
    index.write_text("\n".join("\t".join(r) for r in [list(COLUMNS)] + rows) + "\n")
    return index


def make_library(folder: pathlib.Path, max_side: int = 320) -> pathlib.Path:
    """A built library of the made-up pictures in ``folder / "library"``; returns its path."""
    index = write_sources(folder / "sources")
    out = folder / "library"
    assert build_photo_library.build(str(out), str(index), max_side, str(folder / "no-eval-photos")) == 0
    return out
