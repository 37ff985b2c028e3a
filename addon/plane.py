"""Photo planes: a subdivided, UV-mapped grid with the photo's aspect ratio and an emissive photo material.

Works from an image file (new plane) or from an existing image-textured plane such as one made by Blender's
"Import Images as Planes" (its mesh is replaced by a grid spanning the same corners and UVs; material kept).
"""
from __future__ import annotations

import logging
import os

import bpy
import numpy as np

from . import animation, compat, shapekeys
from .core import mesh as core_mesh

log = logging.getLogger(__name__)


class PlaneError(RuntimeError):
    """A photo plane cannot be made; the message says what to do."""


def load_image(filepath: str):
    """Load (or reuse) an image datablock; PlaneError when the file is missing or not an image."""
    path = bpy.path.abspath(filepath)
    if not os.path.isfile(path):
        raise PlaneError(f"Image file '{filepath}' does not exist: choose a photo (PNG, JPEG, EXR, ...)")
    try:
        image = bpy.data.images.load(path, check_existing=True)
    except RuntimeError as exc:
        raise PlaneError(f"Could not read '{filepath}' as an image ({exc}): choose a PNG, JPEG, TIFF or EXR "
                         "photo") from None
    if image.size[0] < 1 or image.size[1] < 1:  # Blender loads unreadable files as empty images
        if image.users == 0:
            bpy.data.images.remove(image)
        raise PlaneError(f"Could not read '{filepath}' as an image: choose a PNG, JPEG, TIFF or EXR photo")
    return image


def find_image(obj):
    """The photo of an image-textured object: the first Image Texture node with an image in its materials."""
    if obj is None:
        return None
    for slot in getattr(obj, "material_slots", []):
        mat = slot.material
        if mat is None or mat.node_tree is None:
            continue
        for node in mat.node_tree.nodes:
            if node.type == "TEX_IMAGE" and node.image is not None:
                return node.image
    return None


def photo_material(image, name: str | None = None):
    """Emission material showing ``image`` unlit (looks like the photo under the Standard view transform)."""
    mat = bpy.data.materials.new(name or f"IDyn_{image.name}")
    compat.use_nodes(mat)
    tree = mat.node_tree
    tree.nodes.clear()
    tex = tree.nodes.new("ShaderNodeTexImage")
    tex.image = image
    tex.interpolation = "Linear"
    tex.extension = "EXTEND"
    tex.location = (-500, 0)
    emit = tree.nodes.new("ShaderNodeEmission")
    emit.inputs["Strength"].default_value = 1.0
    emit.location = (-200, 0)
    out = tree.nodes.new("ShaderNodeOutputMaterial")
    out.location = (100, 0)
    tree.links.new(tex.outputs["Color"], emit.inputs["Color"])
    tree.links.new(emit.outputs["Emission"], out.inputs["Surface"])
    return mat


def write_grid(me, columns: int, rows: int, origin, eu, ev, uv_range=((0.0, 0.0), (1.0, 1.0))) -> None:
    """Replace ``me``'s geometry with a ``columns x rows`` grid (materials kept); UVs span ``uv_range``."""
    loop_vertex, loop_start, uv01 = core_mesh.grid_topology(columns, rows)
    (u0, v0), (u1, v1) = uv_range
    uv = uv01 * np.array([u1 - u0, v1 - v0], dtype=np.float32) + np.array([u0, v0], dtype=np.float32)
    co = core_mesh.grid_positions(uv01, origin, eu, ev)
    uv_name = me.uv_layers.active.name if me.uv_layers.active is not None else "UVMap"
    me.clear_geometry()
    me.vertices.add(co.shape[0])
    me.vertices.foreach_set("co", co.reshape(-1))
    me.loops.add(loop_vertex.shape[0])
    me.loops.foreach_set("vertex_index", loop_vertex)
    me.polygons.add(loop_start.shape[0])
    me.polygons.foreach_set("loop_start", loop_start)
    layer = me.uv_layers.get(uv_name) or me.uv_layers.new(name=uv_name)
    layer.data.foreach_set("uv", uv[loop_vertex].reshape(-1))
    me.update(calc_edges=True)
    me.validate(verbose=False)


def create_plane(context, image, columns: int, height: float = 1.0):
    """New photo plane object for ``image``: ``height`` units tall, photo aspect, ``columns`` vertices across."""
    w, h = image.size
    cols, rows = core_mesh.default_grid_size(w, h, columns)
    width = height * w / h
    me = bpy.data.meshes.new(f"IDyn_{image.name}")
    write_grid(me, cols, rows, *core_mesh.centered_frame(width, height))
    me.materials.append(photo_material(image))
    obj = bpy.data.objects.new(os.path.splitext(image.name)[0] or "Photo", me)
    context.collection.objects.link(obj)
    obj.location = context.scene.cursor.location
    for other in context.view_layer.objects:
        other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj
    return obj


def regrid_plane(obj, columns: int):
    """Turn an image-textured plane (e.g. from "Import Images as Planes") into a grid with the same corners,
    UV range and material. Refuses planes carrying the user's own shape keys (a new grid would destroy them)."""
    if obj is None or obj.type != "MESH":
        raise PlaneError("Select an image-textured plane (a mesh object) first")
    if obj.mode != "OBJECT":
        raise PlaneError("Switch to Object Mode first")
    image = find_image(obj)
    if image is None:
        raise PlaneError(f"'{obj.name}' has no image texture: make it with 'Import Images as Planes' or use "
                         "'Create Photo Plane' with an image file")
    me = obj.data
    key = me.shape_keys
    if key is not None:
        ours = set(key.get(shapekeys.TAG, []))
        foreign = [b.name for b in key.key_blocks[1:] if b.name not in ours]
        if foreign:
            raise PlaneError(f"'{obj.name}' has shape keys of its own ('{foreign[0]}'): a new grid would destroy "
                             "them; duplicate the plane without shape keys and convert the copy")
        animation.clear_modal_animation(obj)
        obj.shape_key_clear()
    try:
        uv, rest, origin, eu, ev, flat = shapekeys.plane_frame(obj)
    except shapekeys.BakeError as exc:
        raise PlaneError(str(exc)) from None
    if not flat:
        raise PlaneError(f"'{obj.name}' is not a flat, UV-mapped plane: convert a plane from 'Import Images as "
                         "Planes' or create one from an image file")
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    corner = origin + lo[0] * eu + lo[1] * ev
    span_u, span_v = eu * (hi[0] - lo[0]), ev * (hi[1] - lo[1])
    w_units, h_units = float(np.linalg.norm(span_u)), float(np.linalg.norm(span_v))
    cols, rows = core_mesh.default_grid_size(max(w_units, 1e-9), max(h_units, 1e-9), columns)
    write_grid(me, cols, rows, corner, span_u, span_v, (tuple(lo), tuple(hi)))
    return image
