"""Real photographs for the procedural scenes: a small library made from Debian's wallpaper packages.

The curated index ``backend/data/photo_library.tsv`` (checked in) names every image of the packages
``mate-backgrounds``, ``plasma-workspace-wallpapers``, ``gnome-backgrounds`` and ``lomiri-wallpapers`` (its photos
are in ``lomiri-wallpapers-16.04`` / ``-20.04``), one row each: ``name``, ``package``, ``source`` (installed path),
``sha256`` of that file, ``dhash`` (64-bit difference hash of the picture, to find copies of it at any size),
``licence``, ``copyright`` (from ``/usr/share/doc/<pkg>/copyright``; for plasma from the wallpaper's
``metadata.json``), ``roles`` and a content ``note``. Roles, decided by looking at each photo:

* ``backdrop``: a still scene (sky, rock, walls, ground, calm water, buildings) that may stand behind the moving
  objects and must not move. Photos whose subject moves in the wind (plants, trees, flowers, grass, water in
  motion) are never backdrops: the model would learn that such things stay still.
* ``foliage`` / ``petal``: patches of this photo texture the leaves / the petals and flower heads (and cloth) of the
  procedural moving objects.
* ``exclude``: not used: abstract or graphic wallpapers, near-duplicates, and the sources of the evaluation photos
  in ``shared/data/photos`` (excluded by content hash and by name).

``scripts/setup_photo_library.sh OUT_DIR`` installs the packages (as root) and runs
``scripts/build_photo_library.py OUT_DIR``, which checks each source's hash, resizes it (longest side 640) and
writes ``OUT_DIR/index.json``. :func:`open_library` loads such a folder once per process.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import json
import os
from typing import Optional

import cv2
import numpy as np

INDEX = os.path.join(os.path.dirname(__file__), "photo_library.tsv")
PACKAGES = ("mate-backgrounds", "plasma-workspace-wallpapers", "gnome-backgrounds", "lomiri-wallpapers")
ROLES = ("backdrop", "foliage", "petal", "exclude")
COLUMNS = ("name", "package", "source", "sha256", "dhash", "licence", "copyright", "roles", "note")
FORMAT = "photo-library"


class PhotoLibraryError(ValueError):
    """A photo library folder or index that cannot be used; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    package: str
    source: str
    sha256: str
    dhash: str
    licence: str
    copyright: str
    roles: tuple
    note: str

    @property
    def used(self) -> bool:
        return "exclude" not in self.roles


def read_index(path: str = INDEX) -> list:
    """The curated index as a list of :class:`Entry`; raises PhotoLibraryError on a malformed row."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
                if r and not r[0].startswith("#")]
    if not rows or tuple(rows[0]) != COLUMNS:
        raise PhotoLibraryError(f"{path}: the first row must be the header {' '.join(COLUMNS)}")
    out, names = [], set()
    for n, r in enumerate(rows[1:], 2):
        if len(r) != len(COLUMNS):
            raise PhotoLibraryError(f"{path} row {n}: {len(r)} columns, expected {len(COLUMNS)}")
        d = dict(zip(COLUMNS, (v.strip() for v in r)))
        roles = tuple(x for x in d["roles"].split(",") if x)
        bad = [x for x in roles if x not in ROLES]
        if not roles or bad or ("exclude" in roles and len(roles) > 1):
            raise PhotoLibraryError(f"{path} row {n} ({d['name']}): roles '{d['roles']}' must be 'exclude' or a "
                                    f"comma list of {', '.join(ROLES[:-1])}")
        if not d["licence"] or len(d["sha256"]) != 64 or len(d["dhash"]) != 16 or d["name"] in names:
            raise PhotoLibraryError(f"{path} row {n} ({d['name']}): needs a licence, a sha256, a dhash and a unique "
                                    "name")
        names.add(d["name"])
        out.append(Entry(**{**d, "roles": roles}))
    return out


def dhash(rgb_or_bgr: np.ndarray) -> str:
    """64-bit difference hash (16 hex digits) of a picture: signs of horizontal steps of its 9x8 grey thumbnail.
    Survives resizing and re-encoding; two copies of one photo differ in a few bits, different photos in ~32."""
    grey = rgb_or_bgr.mean(axis=2).astype(np.float32) if rgb_or_bgr.ndim == 3 else rgb_or_bgr.astype(np.float32)
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hamming(a: str, b: str) -> int:
    """Differing bits of two :func:`dhash` values."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")


# ------------------------------------------------------------------------------------------------ the built library
@dataclasses.dataclass
class Photo:
    name: str
    image: np.ndarray  # uint8 (H, W, 3) RGB, longest side <= the build's max side
    roles: tuple
    licence: str
    copyright: str = ""
    package: str = ""


class PhotoLibrary:
    """The photos of a built library folder, in memory (uint8), grouped by role."""

    def __init__(self, root: str, photos: list):
        self.root = root
        self.photos = photos
        self.by_role = {role: [p for p in photos if role in p.roles] for role in ROLES[:-1]}

    def __len__(self) -> int:
        return len(self.photos)

    def card(self, names=None) -> list:
        """For a data card: name, package, licence, copyright and roles of the photos (of ``names`` if given)."""
        keep = None if names is None else set(names)
        return [{"name": p.name, "package": p.package, "licence": p.licence, "copyright": p.copyright,
                 "roles": list(p.roles)} for p in self.photos if keep is None or p.name in keep]

    def pick(self, rng: np.random.Generator, role: str) -> Optional[Photo]:
        group = self.by_role.get(role) or []
        return group[int(rng.integers(len(group)))] if group else None

    def crop(self, rng: np.random.Generator, photo: Photo, width: int, height: int, zoom=(1.0, 1.6),
             jitter: float = 0.08) -> np.ndarray:
        """A random crop of ``photo`` resized to (height, width) float32 RGB in [0, 1]: the crop keeps the output's
        aspect ratio and covers 1/zoom of the largest such crop; random horizontal flip and colour jitter (gain per
        channel 1 +- jitter, contrast and brightness)."""
        img = photo.image
        ih, iw = img.shape[:2]
        scale = min(iw / width, ih / height) / rng.uniform(*zoom)
        cw, ch = max(2, min(iw, int(round(width * scale)))), max(2, min(ih, int(round(height * scale))))
        x0, y0 = int(rng.integers(0, iw - cw + 1)), int(rng.integers(0, ih - ch + 1))
        patch = img[y0:y0 + ch, x0:x0 + cw]
        interp = cv2.INTER_AREA if cw >= width else cv2.INTER_LINEAR
        out = cv2.resize(patch, (width, height), interpolation=interp).astype(np.float32) * np.float32(1 / 255)
        if rng.uniform() < 0.5:
            out = out[:, ::-1]
        gain = (1 + rng.uniform(-jitter, jitter, 3)).astype(np.float32)
        contrast = np.float32(1 + rng.uniform(-1.5 * jitter, 1.5 * jitter))
        mean = out.mean(axis=(0, 1), keepdims=True)
        out = (out - mean) * contrast + mean * np.float32(1 + rng.uniform(-jitter, jitter))
        return np.ascontiguousarray(np.clip(out * gain, 0, 1))


def _load(root: str) -> PhotoLibrary:
    path = os.path.join(root, "index.json")
    try:
        with open(path, encoding="utf-8") as fh:
            index = json.load(fh)
    except (OSError, ValueError) as e:
        raise PhotoLibraryError(f"no photo library at '{root}' ({e}); build one with "
                                f"'bash scripts/setup_photo_library.sh {root}'") from e
    if index.get("format") != FORMAT:
        raise PhotoLibraryError(f"'{path}' is not a photo library index (format '{index.get('format')}'); rebuild it "
                                f"with 'bash scripts/setup_photo_library.sh {root}'")
    photos = []
    for e in index["photos"]:
        bgr = cv2.imread(os.path.join(root, e["file"]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise PhotoLibraryError(f"photo library '{root}': cannot read '{e['file']}'; rebuild it with "
                                    f"'bash scripts/setup_photo_library.sh {root}'")
        photos.append(Photo(e["name"], np.ascontiguousarray(bgr[..., ::-1]), tuple(e["roles"]), e["licence"],
                            e.get("copyright", ""), e.get("package", "")))
    if not photos:
        raise PhotoLibraryError(f"photo library '{root}' holds no photo; rebuild it with "
                                f"'bash scripts/setup_photo_library.sh {root}'")
    return PhotoLibrary(root, photos)


@functools.lru_cache(maxsize=4)
def _cached(root: str, stamp: float) -> PhotoLibrary:
    return _load(root)


def open_library(root: str) -> PhotoLibrary:
    """The library in folder ``root`` (built by ``scripts/build_photo_library.py``), loaded once per process and
    kept (reloaded when its index changes)."""
    root = os.path.abspath(os.fspath(root))
    try:
        stamp = os.path.getmtime(os.path.join(root, "index.json"))
    except OSError:
        stamp = -1.0
    return _cached(root, stamp)
