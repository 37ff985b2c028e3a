"""Real photographs in the procedural scenes: a photo crop as the still backdrop, photo patches on the leaves,
petals and cloth of the moving objects (the library: ``photo_library.py``).

Everything here is static in the object's own coordinates: the backdrop never moves, and a patch is glued to the
material coordinates of its object, so the exact ground truth of the scene is unchanged by the photos.
"""
from __future__ import annotations

import numpy as np

from .photo_library import Photo, PhotoLibrary
from .scene_backgrounds import Backdrop
from .scene_cloth import Cloth
from .scene_objects import Sprite, Strip

PATCH = 96  # side of a texture patch (pixels)
# (role of the photos, patches per scene); cloth prints come from petal and backdrop photos
PATCHES = {"foliage": 4, "petal": 3, "cloth": 2}
# per object kind: (patch group, probability, photo_mix range, photo_scale range)
DRESS = {"leaf": ("foliage", 0.85, (0.55, 0.95), (0.5, 1.2)),
         "flower": ("petal", 0.75, (0.35, 0.8), (0.6, 1.4)),
         "blade": ("foliage", 0.5, (0.3, 0.7), (0.8, 2.0)),
         "cloth": ("cloth", 0.8, (0.5, 0.95), (0.4, 1.0))}


def _patch(rng, library: PhotoLibrary, photo: Photo) -> np.ndarray:
    """A PATCH x PATCH float32 piece of ``photo``: a random square of 48-200 px (of the library's <= 640 px
    photo), random flip and quarter turn, colour jitter."""
    ih, iw = photo.image.shape[:2]
    side = int(min(rng.uniform(48, 200), ih, iw))
    zoom = min(iw, ih) / side
    out = library.crop(rng, photo, PATCH, PATCH, zoom=(zoom, zoom), jitter=0.06)
    return np.ascontiguousarray(np.rot90(out, int(rng.integers(4))))


def _texture_groups(rng, library: PhotoLibrary):
    """Patches (N, S, S, 3) for every group and which photo each came from."""
    patches, index, sources = [], {}, []
    for group, n in PATCHES.items():
        pool = (library.by_role["petal"] + library.by_role["backdrop"] if group == "cloth"
                else library.by_role[group])
        index[group] = []
        for _ in range(n if pool else 0):
            photo = pool[int(rng.integers(len(pool)))]
            index[group].append(len(patches))
            patches.append(_patch(rng, library, photo))
            sources.append((photo, group))
    return (np.stack(patches) if patches else None), index, sources


def dress(rng, library: PhotoLibrary, kind: str, backdrop: Backdrop, objects: list, width: int, height: int,
          photo_fraction: float):
    """Give a designed scene its photos: with probability ``photo_fraction`` (always for the static kind) a
    backdrop crop replaces the procedural backdrop (darkened for candles), and leaves, flower heads, some grass
    blades and cloth get photo patches. Returns (patches or None, list of {name, use, licence} for scene.info)."""
    used = []
    if library.by_role["backdrop"] and (kind == "static" or rng.uniform() < photo_fraction):
        photo = library.pick(rng, "backdrop")
        img = library.crop(rng, photo, width, height)
        if kind == "candle":  # a room at night: the photo darkened and warmed, the flames' glow comes on top
            img = img * np.float32(rng.uniform(0.12, 0.3)) * np.array([1.0, 0.85, 0.7], np.float32)
        backdrop.image, backdrop.kind = np.ascontiguousarray(img, np.float32), "photo"
        used.append({"name": photo.name, "use": "backdrop", "licence": photo.licence})
    patches, index, sources = _texture_groups(rng, library)
    by_parent, hit = {}, set()
    for o in objects:
        kind_of = "cloth" if isinstance(o, Cloth) else o.kind
        if kind_of not in DRESS or not (isinstance(o, (Sprite, Strip, Cloth))):
            continue
        group, p, mix, scale = DRESS[kind_of]
        if not index.get(group) or rng.uniform() >= p:
            continue
        if kind_of == "leaf":  # the leaves of one stem or branch share a patch
            k = by_parent.setdefault(id(o.parent), index[group][int(rng.integers(len(index[group])))])
        else:
            k = index[group][int(rng.integers(len(index[group])))]
        o.photo, o.photo_mix, o.photo_scale = int(k), float(rng.uniform(*mix)), float(rng.uniform(*scale))
        hit.add(int(k))
    for k, (photo, group) in enumerate(sources):
        if k in hit:
            used.append({"name": photo.name, "use": group, "licence": photo.licence})
    unique = {(u["name"], u["use"]): u for u in used}
    return patches, [unique[key] for key in sorted(unique)]
