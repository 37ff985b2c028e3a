"""Modal shape keys: write a spectral volume onto a UV-mapped plane as 2K shape keys (Re A_k, Im A_k offsets).

Keys made here are named ``IDyn_k03_re`` / ``IDyn_k03_im`` and listed on the mesh's Key datablock
(``key["imagedyn_keys"]``); re-baking and clearing touch only keys that carry both marks, so a user's own shape
keys, their values and their animation are kept.
"""
from __future__ import annotations

import logging
import re

import numpy as np

from .core import mesh as core_mesh

log = logging.getLogger(__name__)

PREFIX = "IDyn_"
TAG = "imagedyn_keys"  # on the Key datablock: names of the keys the add-on made
TAG_BASIS = "imagedyn_made_basis"  # on the Key datablock: the add-on created the Basis key
_NAME_RE = re.compile(r"^IDyn_k(\d+)_(re|im)$")
FLAT_TOLERANCE = 1e-3  # relative residual above which the plane is reported as not flat


class BakeError(RuntimeError):
    """A plane cannot be baked; the message says what to do."""


def key_name(k: int, part: str) -> str:
    return f"{PREFIX}k{k:02d}_{part}"


def _tagged_names(obj) -> set:
    key = obj.data.shape_keys
    if key is None:
        return set()
    return set(key.get(TAG, []))


def modal_keys(obj) -> list:
    """The add-on's keys as a list of (k, re_block, im_block) sorted by k (bands missing a part are skipped)."""
    key = obj.data.shape_keys
    if key is None:
        return []
    tagged = _tagged_names(obj)
    bands: dict = {}
    for block in key.key_blocks:
        m = _NAME_RE.match(block.name)
        if m and block.name in tagged:
            bands.setdefault(int(m.group(1)), {})[m.group(2)] = block
    return [(k, parts["re"], parts["im"]) for k, parts in sorted(bands.items()) if len(parts) == 2]


def has_modal_keys(obj) -> bool:
    return obj is not None and obj.type == "MESH" and bool(modal_keys(obj))


def vertex_uvs(me) -> np.ndarray:
    """Per-vertex UVs (N, 2) of the active UV map (the last loop's UV wins where a vertex has several)."""
    uv_layer = me.uv_layers.active
    if uv_layer is None:
        raise BakeError(f"Mesh '{me.name}' has no UV map: make the plane with 'Create Photo Plane' or "
                        "'Import Images as Planes', or unwrap it so the photo covers it")
    n_loops = len(me.loops)
    loop_uv = np.empty(n_loops * 2, dtype=np.float32)
    uv_layer.data.foreach_get("uv", loop_uv)
    loop_vert = np.empty(n_loops, dtype=np.int32)
    me.loops.foreach_get("vertex_index", loop_vert)
    uv = np.zeros((len(me.vertices), 2), dtype=np.float32)
    uv[loop_vert] = loop_uv.reshape(-1, 2)
    return uv


def rest_positions(obj) -> np.ndarray:
    """(N, 3) rest positions: the reference (Basis) key if there is one, else the mesh vertices."""
    me = obj.data
    n = len(me.vertices)
    co = np.empty(n * 3, dtype=np.float32)
    if me.shape_keys is not None:
        me.shape_keys.reference_key.data.foreach_get("co", co)
    else:
        me.vertices.foreach_get("co", co)
    return co.reshape(n, 3)


def plane_frame(obj):
    """(uv, rest, origin, eu, ev, flat) of a UV-mapped plane; ``flat`` False when the UVs are not affine in the
    rest positions (the motion directions are then an average)."""
    uv = vertex_uvs(obj.data)
    rest = rest_positions(obj)
    try:
        origin, eu, ev, residual = core_mesh.fit_uv_frame(rest, uv)
    except ValueError as exc:
        raise BakeError(f"Object '{obj.name}': {exc}") from None
    size = max(float(np.linalg.norm(eu)), float(np.linalg.norm(ev)), 1e-9)
    return uv, rest, origin, eu, ev, residual <= FLAT_TOLERANCE * size


def remove_modal_keys(obj) -> int:
    """Delete the add-on's keys (and the Basis it created when nothing else is left). Returns how many."""
    key = obj.data.shape_keys
    if key is None:
        return 0
    tagged = _tagged_names(obj)
    doomed = [b for b in key.key_blocks if b.name in tagged and _NAME_RE.match(b.name)]
    made_basis = bool(key.get(TAG_BASIS, False))
    for block in doomed:
        obj.shape_key_remove(block)
    key = obj.data.shape_keys
    if key is not None:
        key[TAG] = []
        if made_basis and len(key.key_blocks) == 1:
            obj.shape_key_clear()
    return len(doomed)


def bake_modal_keys(obj, coeffs: np.ndarray, anchor_group: str = "", progress=None) -> int:
    """Write ``coeffs`` (K, 4, H, W) as 2K shape keys on ``obj`` (replacing earlier ones). Returns K.

    ``progress(done, total)`` is called after every key. Raises :class:`BakeError` with what to do.
    """
    if obj is None or obj.type != "MESH":
        raise BakeError("Select the photo plane (a mesh object) first")
    if obj.mode != "OBJECT":
        raise BakeError("Switch to Object Mode before baking (shape keys cannot be written in Edit Mode)")
    remove_modal_keys(obj)
    if obj.data.shape_keys is not None:
        clash = [b.name for b in obj.data.shape_keys.key_blocks if _NAME_RE.match(b.name)]
        if clash:
            raise BakeError(f"Shape key '{clash[0]}' uses the add-on's naming but was not made by it: rename it "
                            "(keys named IDyn_kNN_re/im are reserved)")
    uv, rest, origin, eu, ev, flat = plane_frame(obj)
    if not flat:
        log.warning("'%s' is not a flat, linearly UV-mapped plane: motion directions are approximate", obj.name)
    offsets = core_mesh.modal_offsets(coeffs, uv, eu, ev)  # (K, 2, N, 3)
    k_count = offsets.shape[0]
    me = obj.data
    made_basis = me.shape_keys is None
    if made_basis:
        obj.shape_key_add(name="Basis", from_mix=False)
    key = me.shape_keys
    if made_basis:
        key[TAG_BASIS] = True
    group = anchor_group if anchor_group and anchor_group in obj.vertex_groups else ""
    names = []
    total = 2 * k_count
    for k in range(k_count):
        for part_index, part in enumerate(("re", "im")):
            block = obj.shape_key_add(name=key_name(k, part), from_mix=False)
            block.slider_min = -core_mesh.MAX_KEY_VALUE
            block.slider_max = core_mesh.MAX_KEY_VALUE
            block.relative_key = key.reference_key
            block.vertex_group = group
            block.value = 0.0
            block.data.foreach_set("co", (rest + offsets[k, part_index]).reshape(-1))
            names.append(block.name)
            if progress is not None:
                progress(len(names), total)
    key[TAG] = names
    me.update()
    return k_count


def set_anchor_group(obj, group: str) -> None:
    """Pin the add-on's keys with a vertex group (weight 0 = still, 1 = full motion); '' removes the pin."""
    for _, re_block, im_block in modal_keys(obj):
        re_block.vertex_group = group
        im_block.vertex_group = group
