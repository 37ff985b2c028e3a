"""Modal shape keys: write a spectral volume onto a UV-mapped plane as 2K shape keys (Re A_k, Im A_k offsets).

Keys made here are named ``IDyn_k03_re`` / ``IDyn_k03_im`` and listed on the mesh's Key datablock
(``key["imagedyn_keys"]``); re-baking and clearing touch only keys that carry both marks, so a user's own shape
keys, their values and their animation are kept.

Depth from motion (``Object.imagedyn.depth_from_motion`` > 0) adds one more tagged key, ``IDyn_depth``, always at
value 1 and never animated: it lifts each vertex along the plane's front normal by its share of the strongest
motion (``core.mesh.depth_offsets``), so where a moving part folds over a still one the moving part renders in
front. The user's Basis is never edited.
"""
from __future__ import annotations

import logging
import re

import numpy as np

from .core import edges
from .core import mesh as core_mesh

log = logging.getLogger(__name__)

PREFIX = "IDyn_"
TAG = "imagedyn_keys"  # on the Key datablock: names of the keys the add-on made
TAG_BASIS = "imagedyn_made_basis"  # on the Key datablock: the add-on created the Basis key
_NAME_RE = re.compile(r"^IDyn_k(\d+)_(re|im)$")
DEPTH_KEY = "IDyn_depth"  # the always-on depth-from-motion key (value 1)
DEPTH_HELD = "imagedyn_depth"  # on the Key datablock: the Depth from Motion the depth key was written for
BAKED_SIGNATURE = "_imagedyn_baked"  # on the plane: what its keys hold (volume version, wind arrows, Pin Edges)
FLAT_TOLERANCE = 1e-3  # relative residual above which the plane is reported as not flat
BAKE_MODES = ("OBJECT", "WEIGHT_PAINT")  # keys can be written in these modes (not in Edit Mode)


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


def _is_reserved(name: str) -> bool:
    return bool(_NAME_RE.match(name)) or name == DEPTH_KEY


def depth_key(obj):
    """The add-on's depth-from-motion key block, or None."""
    key = obj.data.shape_keys
    if key is None or DEPTH_KEY not in _tagged_names(obj):
        return None
    return key.key_blocks.get(DEPTH_KEY)


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


def group_weights(obj, name: str) -> np.ndarray:
    """(N,) weight of every vertex in vertex group ``name`` (0 where a vertex is not in it)."""
    index = obj.vertex_groups[name].index
    out = np.zeros(len(obj.data.vertices), dtype=np.float64)
    for v in obj.data.vertices:
        for g in v.groups:
            if g.group == index:
                out[v.index] = g.weight
                break
    return out


def rest_positions(obj) -> np.ndarray:
    """(N, 3) rest positions: the reference (Basis) key if there is one, else the mesh vertices."""
    me = obj.data
    n = len(me.vertices)
    co = np.empty(n * 3, dtype=np.float32)
    if me.shape_keys is not None:
        me.shape_keys.reference_key.points.foreach_get("co", co)
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
    doomed = [b for b in key.key_blocks if b.name in tagged and _is_reserved(b.name)]
    made_basis = bool(key.get(TAG_BASIS, False))
    for block in doomed:
        obj.shape_key_remove(block)
    key = obj.data.shape_keys
    if key is not None:
        key[TAG] = []
        if DEPTH_HELD in key:
            del key[DEPTH_HELD]
        if made_basis and len(key.key_blocks) == 1:
            obj.shape_key_clear()
    return len(doomed)


def key_offsets(obj, coeffs: np.ndarray, pin_rows: int = 0, frame=None, vertices=None) -> np.ndarray:
    """The modal keys' offsets (K, 2, N, 3) float32 for ``coeffs`` (K, 4, H, W) sampled at the vertex UVs, with the
    border pinned over ``pin_rows`` rows (``core.edges``; 0 = free). ``frame``: the plane's :func:`plane_frame` when
    the caller has it; ``vertices``: only these vertex indices (N = their count)."""
    uv, _rest, _origin, eu, ev, _flat = frame or plane_frame(obj)
    factors = edges.edge_factors(uv, pin_rows) if pin_rows > 0 else None
    if vertices is not None:
        uv = uv[vertices]
        factors = None if factors is None else factors[vertices]
    return core_mesh.modal_offsets(coeffs, uv, eu, ev, factors)


def _check_mode(obj) -> None:
    if obj is None or obj.type != "MESH":
        raise BakeError("Select the photo plane (a mesh object) first")
    if obj.mode not in BAKE_MODES:
        raise BakeError("Switch to Object Mode before baking (shape keys cannot be written in Edit Mode)")


def bake_modal_keys(obj, coeffs: np.ndarray, anchor_group: str = "", progress=None, depth: float = 0.0,
                    pin_rows: int = 0) -> int:
    """Write ``coeffs`` (K, 4, H, W) as 2K shape keys on ``obj`` (replacing earlier ones). Returns K.

    ``pin_rows`` > 0 pins the border (:func:`key_offsets`); the rest is :func:`write_modal_keys`."""
    _check_mode(obj)
    frame = plane_frame(obj)
    return write_modal_keys(obj, key_offsets(obj, coeffs, pin_rows, frame), frame, anchor_group, progress, depth)


def write_modal_keys(obj, offsets: np.ndarray, frame, anchor_group: str = "", progress=None,
                     depth: float = 0.0) -> int:
    """Write ``offsets`` (K, 2, N, 3) as 2K shape keys on ``obj`` (replacing earlier ones). Returns K.

    ``frame`` is the plane's :func:`plane_frame`. ``depth`` > 0 adds the depth-from-motion key (see
    :func:`write_depth_key`). ``progress(done, total)`` is called after every modal key. Raises :class:`BakeError`
    with what to do.
    """
    _check_mode(obj)
    _uv, rest, _origin, eu, ev, flat = frame
    if not flat:
        log.warning("'%s' is not a flat, linearly UV-mapped plane: motion directions are approximate", obj.name)
    remove_modal_keys(obj)
    if obj.data.shape_keys is not None:
        clash = [b.name for b in obj.data.shape_keys.key_blocks if _is_reserved(b.name)]
        if clash:
            raise BakeError(f"Shape key '{clash[0]}' uses the add-on's naming but was not made by it: rename it "
                            f"(keys named IDyn_kNN_re/im and {DEPTH_KEY} are reserved)")
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
            block.points.foreach_set("co", (rest + offsets[k, part_index]).reshape(-1))
            names.append(block.name)
            if progress is not None:
                progress(len(names), total)
    key[TAG] = names
    if depth > 0.0:
        _store_depth(obj, rest, core_mesh.depth_offsets(offsets, eu, ev, depth), depth, group)
    me.update()
    return k_count


def rewrite_modal_keys(obj, co: np.ndarray, frame) -> bool:
    """Re-bake in place: write the key positions ``co`` (K, 2, N, 3) (rest + offsets) into the plane's existing
    modal keys, and recompute its depth key, keeping names, values, anchor group and animation. The live path
    (wind arrows, Pin Edges): no keys are removed or added. False (nothing written) when the plane's keys do not
    have K bands."""
    _check_mode(obj)
    bands = modal_keys(obj)
    if not bands or len(bands) != co.shape[0]:
        return False
    for i, (_k, re_block, im_block) in enumerate(bands):
        re_block.points.foreach_set("co", co[i, 0].reshape(-1))
        im_block.points.foreach_set("co", co[i, 1].reshape(-1))
    held = float(obj.data.shape_keys.get(DEPTH_HELD, 0.0))
    if depth_key(obj) is not None and held > 0.0:
        _uv, rest, _origin, eu, ev, _flat = frame
        lift = core_mesh.depth_offsets(co - rest, eu, ev, held)
        _store_depth(obj, rest, lift, held, bands[0][1].vertex_group)
    obj.data.update()
    return True


def _remove_depth(obj) -> None:
    block = depth_key(obj)
    key = obj.data.shape_keys
    if block is not None:
        obj.shape_key_remove(block)
        key = obj.data.shape_keys
        key[TAG] = [name for name in key.get(TAG, []) if name != DEPTH_KEY]
    if key is not None and DEPTH_HELD in key:
        del key[DEPTH_HELD]


def _store_depth(obj, rest: np.ndarray, lift: np.ndarray, depth: float, group: str) -> None:
    """Write ``rest + lift`` (N, 3) into the depth key (made and tagged when missing, value 1)."""
    key = obj.data.shape_keys
    block = depth_key(obj)
    if block is None:
        if key.key_blocks.get(DEPTH_KEY) is not None:
            raise BakeError(f"Shape key '{DEPTH_KEY}' was not made by Image Dynamics: rename it to use Depth from "
                            "Motion")
        block = obj.shape_key_add(name=DEPTH_KEY, from_mix=False)
        block.relative_key = key.reference_key
        block.slider_min, block.slider_max = 0.0, 1.0
        block.vertex_group = group
        key[TAG] = list(key.get(TAG, [])) + [DEPTH_KEY]
    block.value = 1.0
    block.points.foreach_set("co", (rest + lift).reshape(-1))
    key[DEPTH_HELD] = float(depth)


def baked_offsets(obj, rest: np.ndarray) -> np.ndarray:
    """Offsets (K, 2, N, 3) float32 the modal keys hold over the reference key: [:, 0] Re A_k, [:, 1] Im A_k."""
    bands = modal_keys(obj)
    n = rest.shape[0]
    out = np.empty((len(bands), 2, n, 3), dtype=np.float32)
    co = np.empty(n * 3, dtype=np.float32)
    for i, (_, re_block, im_block) in enumerate(bands):
        for part, block in enumerate((re_block, im_block)):
            block.points.foreach_get("co", co)
            out[i, part] = co.reshape(n, 3) - rest
    return out


def write_depth_key(obj, depth: float) -> bool:
    """Lift the baked plane's vertices toward its front by ``depth`` object units times their share of the
    strongest motion (the depth key), or remove the lift when ``depth`` <= 0. Does nothing on a plane without
    modal keys (the bake writes the key). Returns whether the depth key exists afterwards.

    A new key is computed from the modal keys (~0.15 s at 40k vertices); an existing one is rescaled (~15 ms), so
    dragging the slider stays interactive."""
    bands = modal_keys(obj)
    if not bands:
        return False
    if depth <= 0.0:
        _remove_depth(obj)
        obj.data.update()
        return False
    rest = rest_positions(obj)
    block = depth_key(obj)
    held = float(obj.data.shape_keys.get(DEPTH_HELD, 0.0))
    if block is not None and held > 0.0:
        co = np.empty(rest.size, dtype=np.float32)
        block.points.foreach_get("co", co)
        lift = (co.reshape(rest.shape) - rest) * np.float32(depth / held)
    else:
        _uv, _rest, _origin, eu, ev, _flat = plane_frame(obj)
        lift = core_mesh.depth_offsets(baked_offsets(obj, rest), eu, ev, depth)
    _store_depth(obj, rest, lift, depth, bands[0][1].vertex_group)
    obj.data.update()
    return True


def set_anchor_group(obj, group: str) -> None:
    """Pin the add-on's keys (modal and depth) with a vertex group (weight 0 = still, 1 = full motion); ''
    removes the pin."""
    for _, re_block, im_block in modal_keys(obj):
        re_block.vertex_group = group
        im_block.vertex_group = group
    block = depth_key(obj)
    if block is not None:  # a pinned region is still: it stays at the back
        block.vertex_group = group
