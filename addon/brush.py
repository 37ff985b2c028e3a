"""The motion brush in Blender: the vertex group ``IDyn_moves`` says where the photo moves, and Animate Photo sends
it to the backend as a hint image drawn through the plane's UVs (``core.hint``).

* *Paint Motion* makes the group empty (= automatic: no hint is sent, exactly as without the group) and enters
  Weight Paint mode. Weight 1 = moves, 0 = still (Blender shows unpainted vertices at 0, blue).
* Once any vertex is in the group it counts as painted and Animate Photo sends the hint; a painted group whose
  weights are all 0 is refused before anything is sent (nothing would move).
* Versus the Anchor group: the brush steers the *prediction* (the model decides how things move inside the painted
  area, and keeps the rest still); the Anchor is a multiplier applied in Blender to whatever motion the plane has,
  with no prediction - use it to hold a region still in an extracted or already predicted volume.
"""
from __future__ import annotations

import hashlib

import numpy as np

from .core import hint, png

GROUP = "IDyn_moves"
PREDICTED_WITH = "_imagedyn_brush"  # on the plane: digest of the brush the current volume was predicted with


def group_membership(obj, name: str):
    """(weights (N,) float64, assigned (N,) bool) of vertex group ``name`` (weight 0 where not assigned)."""
    index = obj.vertex_groups[name].index
    n = len(obj.data.vertices)
    weights = np.zeros(n, dtype=np.float64)
    assigned = np.zeros(n, dtype=bool)
    for v in obj.data.vertices:
        for g in v.groups:
            if g.group == index:
                weights[v.index] = g.weight
                assigned[v.index] = True
                break
    return weights, assigned


def painted_weights(obj):
    """``(weights, assigned)`` of the brush when the plane has a painted brush group, else None (automatic)."""
    if obj is None or obj.type != "MESH" or GROUP not in obj.vertex_groups:
        return None
    weights, assigned = group_membership(obj, GROUP)
    return (weights, assigned) if hint.is_painted(assigned) else None


def digest(painted) -> str:
    """Identifies a painted brush (weights and which vertices are in the group); '' for none."""
    if painted is None:
        return ""
    weights, assigned = painted
    data = np.round(weights, 4).astype(np.float32).tobytes() + np.packbits(assigned).tobytes()
    return hashlib.sha1(data).hexdigest()[:16]


def corner_triangles(me):
    """Triangles of the mesh as (corner UVs (T, 3, 2) of the active UV map, vertex indices (T, 3))."""
    uv_layer = me.uv_layers.active
    if uv_layer is None:
        raise hint.HintError(f"Mesh '{me.name}' has no UV map, so the motion brush cannot be placed on the photo: "
                             "make the plane with 'Create Photo Plane' or unwrap it")
    me.calc_loop_triangles()
    count = len(me.loop_triangles)
    loops = np.empty(count * 3, dtype=np.int32)
    vertices = np.empty(count * 3, dtype=np.int32)
    me.loop_triangles.foreach_get("loops", loops)
    me.loop_triangles.foreach_get("vertices", vertices)
    loop_uv = np.empty(len(me.loops) * 2, dtype=np.float32)
    uv_layer.data.foreach_get("uv", loop_uv)
    return loop_uv.reshape(-1, 2)[loops].reshape(count, 3, 2), vertices.reshape(count, 3)


def hint_image(obj, photo_size):
    """``(png bytes, mask, report, painted)`` of the plane's brush for a photo of ``photo_size`` (W, H), or None
    when the brush is not painted (automatic motion: send nothing). HintError says what to do."""
    painted = painted_weights(obj)
    if painted is None:
        return None
    weights, _assigned = painted
    hint.check_weights(weights, GROUP)
    tri_uv, tri_vertices = corner_triangles(obj.data)
    width, height = hint.hint_size(*photo_size)
    mask, report = hint.moves_hint(tri_uv, weights[tri_vertices], width, height)
    if float(mask.max()) <= hint.STILL:
        raise hint.HintError(f"The painted part of '{GROUP}' does not reach the photo (its faces lie outside the "
                             "photo's UVs): paint weight 1 on the visible photo")
    return png.encode_mask(mask), mask, report, painted


def ensure_group(obj):
    """The brush group (made empty when missing) as the active vertex group."""
    group = obj.vertex_groups.get(GROUP) or obj.vertex_groups.new(name=GROUP)
    obj.vertex_groups.active_index = group.index
    return group


def remove_group(obj) -> bool:
    group = obj.vertex_groups.get(GROUP)
    if group is None:
        return False
    obj.vertex_groups.remove(group)
    if PREDICTED_WITH in obj:
        del obj[PREDICTED_WITH]
    return True
