"""Show Motion: a heat overlay of how much the photo moves, in the viewport only (never in renders).

How it stays out of renders, even on a render farm without the add-on:

* the colours live in a colour attribute ``IDyn_motion`` on the plane's mesh (point domain, RGBA, alpha = opacity;
  ``core.heat``), the mesh's active colour, so Solid mode shows it with *Viewport Shading > Color > Attribute*;
* a Geometry Nodes modifier ``IDyn Show Motion`` that is on in the viewport and off in renders (``show_render``
  False) stores a flag attribute ``IDyn_viewport`` = 1 on every point;
* the plane's materials mix an emission of ``IDyn_motion`` over their surface with factor flag x alpha: in Material
  Preview and Rendered viewports the flag is 1; in a final render the modifier does not run, the attribute is
  missing, the Attribute node gives 0 and the material is exactly what it was.

The colours are each vertex's RMS motion over the loop as the plane plays it - the modal keys (volume, wind arrows,
Pin Edges) times Amplitude, Loop Strength and the Anchor group - as a fraction of the photo's height. After the
motion brush was painted and before Animate Photo predicts with it, the brush's weights preview its effect (the
motion fades where it is painted still). :func:`refresh` runs after Animate Photo and every bake, when arrows or
Pin Edges re-bake, when Amplitude / Loop Strength / Anchor change, and (live.py) after painting.
"""
from __future__ import annotations

import hashlib
import logging
import time

import bpy
import numpy as np

from . import brush, shapekeys
from .core import heat
from .core import mesh as core_mesh

log = logging.getLogger(__name__)

ATTRIBUTE = "IDyn_motion"  # the heat colours (FLOAT_COLOR, POINT)
FLAG = "IDyn_viewport"  # 1 on every point, stored only in the viewport by the modifier
MODIFIER = "IDyn Show Motion"
GROUP = "IDyn Show Motion"
NODE_PREFIX = "IDyn Motion Overlay"  # material nodes: "<prefix> Mix", " Flag", " Heat", " Factor", " Emission"
SIGNATURE = "_imagedyn_overlay"  # on the plane: the inputs the colours were computed from
_RMS: dict = {}  # plane name -> (keys signature, (N,) RMS of the keys at amplitude 1): Amplitude changes are cheap
_last = {"seconds": 0.0}


# ----------------------------------------------------------------------------------------------------------------
# Viewport-only plumbing: node group, modifier, material nodes
# ----------------------------------------------------------------------------------------------------------------

def _flag_group():
    group = bpy.data.node_groups.get(GROUP)
    if group is not None and group.bl_idname == "GeometryNodeTree":
        return group
    group = bpy.data.node_groups.new(GROUP, "GeometryNodeTree")
    group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes = group.nodes
    inp, out = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    store = nodes.new("GeometryNodeStoreNamedAttribute")
    store.data_type, store.domain = "FLOAT", "POINT"
    store.inputs["Name"].default_value = FLAG
    store.inputs["Value"].default_value = 1.0
    inp.location, store.location, out.location = (-300, 0), (0, 0), (300, 0)
    group.links.new(inp.outputs[0], store.inputs["Geometry"])
    group.links.new(store.outputs[0], out.inputs[0])
    return group


def _add_modifier(obj) -> None:
    mod = obj.modifiers.get(MODIFIER)
    if mod is None:
        mod = obj.modifiers.new(MODIFIER, "NODES")
    mod.node_group = _flag_group()
    mod.show_viewport, mod.show_render = True, False


def _output_link(tree):
    """The link into the active Material Output's Surface, or None."""
    outputs = [n for n in tree.nodes if n.type == "OUTPUT_MATERIAL"]
    out = next((n for n in outputs if n.is_active_output), outputs[0] if outputs else None)
    if out is None or not out.inputs["Surface"].is_linked:
        return None
    return out.inputs["Surface"].links[0]


def _add_material_nodes(mat) -> bool:
    tree = mat.node_tree if mat is not None else None
    if tree is None or f"{NODE_PREFIX} Mix" in tree.nodes:
        return tree is not None
    link = _output_link(tree)
    if link is None:
        return False
    surface, out_socket = link.from_socket, link.to_socket
    x, y = link.to_node.location.x, link.to_node.location.y
    nodes = tree.nodes
    flag = nodes.new("ShaderNodeAttribute")
    flag.attribute_type, flag.attribute_name = "GEOMETRY", FLAG
    colour = nodes.new("ShaderNodeAttribute")
    colour.attribute_type, colour.attribute_name = "GEOMETRY", ATTRIBUTE
    factor = nodes.new("ShaderNodeMath")
    factor.operation = "MULTIPLY"
    emission = nodes.new("ShaderNodeEmission")
    mix = nodes.new("ShaderNodeMixShader")
    for node, suffix, (dx, dy) in ((flag, "Flag", (-600, -250)), (colour, "Heat", (-600, -450)),
                                   (factor, "Factor", (-350, -250)), (emission, "Emission", (-350, -450)),
                                   (mix, "Mix", (-150, 0))):
        node.name = node.label = f"{NODE_PREFIX} {suffix}"
        node.location = (x + dx, y + dy)
    tree.links.new(flag.outputs[2], factor.inputs[0])  # Fac (4.x) / Factor (5.0)
    tree.links.new(colour.outputs["Alpha"], factor.inputs[1])
    tree.links.new(colour.outputs["Color"], emission.inputs["Color"])
    tree.links.new(factor.outputs[0], mix.inputs[0])
    tree.links.new(surface, mix.inputs[1])
    tree.links.new(emission.outputs[0], mix.inputs[2])
    tree.links.new(mix.outputs[0], out_socket)
    return True


def _remove_material_nodes(mat) -> None:
    tree = mat.node_tree if mat is not None else None
    if tree is None:
        return
    mix = tree.nodes.get(f"{NODE_PREFIX} Mix")
    if mix is not None and mix.inputs[1].is_linked:
        surface = mix.inputs[1].links[0].from_socket
        for link in list(mix.outputs[0].links):
            tree.links.new(surface, link.to_socket)
    for node in [n for n in tree.nodes if n.name.startswith(NODE_PREFIX)]:
        tree.nodes.remove(node)


def is_shown(obj) -> bool:
    return obj is not None and obj.type == "MESH" and obj.modifiers.get(MODIFIER) is not None


# ----------------------------------------------------------------------------------------------------------------
# The colours
# ----------------------------------------------------------------------------------------------------------------

def _key_rms(obj) -> np.ndarray:
    """(N,) RMS motion of the modal keys at amplitude 1, object units (cached per baked key set)."""
    token = str(obj.get(shapekeys.BAKED_SIGNATURE, "")) + f"|{len(obj.data.vertices)}"
    cached = _RMS.get(obj.name)
    if cached is not None and cached[0] == token and token.split("|")[0]:
        return cached[1]
    rest = shapekeys.rest_positions(obj)
    rms = core_mesh.rms_motion(shapekeys.baked_offsets(obj, rest)) if shapekeys.modal_keys(obj) else \
        np.zeros(rest.shape[0])
    if len(_RMS) >= 8:
        _RMS.clear()
    _RMS[obj.name] = (token, rms)
    return rms


def vertex_motion(obj) -> np.ndarray:
    """(N,) RMS motion of every vertex over the loop as the plane plays it, as a fraction of the photo's height
    (with the motion brush's preview while it is newer than the prediction)."""
    props = obj.imagedyn
    rms = _key_rms(obj) * (props.amplitude * props.loop_strength)
    group = props.anchor_group
    if group and group in obj.vertex_groups:
        rms = rms * shapekeys.group_weights(obj, group)
    painted = brush.painted_weights(obj)
    if painted is not None and brush.digest(painted) != obj.get(brush.PREDICTED_WITH, ""):
        rms = rms * painted[0]
    try:
        _uv, _rest, _origin, _eu, ev, _flat = shapekeys.plane_frame(obj)
        height = float(np.linalg.norm(ev))
    except shapekeys.BakeError:
        height = max(obj.dimensions.y, 1e-9)
    return rms / max(height, 1e-12)


def _write_colours(obj, colours: np.ndarray) -> None:
    me = obj.data
    attr = me.color_attributes.get(ATTRIBUTE)
    if attr is not None and (attr.domain != "POINT" or attr.data_type != "FLOAT_COLOR"):
        me.color_attributes.remove(attr)
        attr = None
    if attr is None:
        attr = me.color_attributes.new(ATTRIBUTE, "FLOAT_COLOR", "POINT")
    attr.data.foreach_set("color", colours.reshape(-1))
    me.color_attributes.active_color = attr
    me.update()


def refresh(obj, force: bool = False) -> bool:
    """Recompute the colours of a plane whose overlay is shown, when what they depend on changed (or ``force``).
    Returns whether they were written."""
    if not is_shown(obj):
        return False
    t0 = time.perf_counter()
    relative = vertex_motion(obj)
    token = hashlib.sha1(relative.astype(np.float32).tobytes()).hexdigest()[:16]
    if not force and obj.get(SIGNATURE) == token and ATTRIBUTE in obj.data.color_attributes:
        return False
    _write_colours(obj, heat.heat_colours(relative))
    obj[SIGNATURE] = token
    obj.imagedyn.motion_peak = float(relative.max()) if relative.size else 0.0
    _last["seconds"] = time.perf_counter() - t0
    return True


def show(obj) -> None:
    """Turn the overlay on: colours, the viewport-only modifier and the material nodes."""
    _add_modifier(obj)
    for slot in obj.material_slots:
        if slot.material is not None and not _add_material_nodes(slot.material):
            log.warning("material '%s' of '%s' has no Material Output surface: Show Motion appears in Solid mode "
                        "(Color: Attribute) only", slot.material.name, obj.name)
    refresh(obj, force=True)


def hide(obj) -> None:
    """Turn the overlay off and remove everything it added (the materials are as before)."""
    mod = obj.modifiers.get(MODIFIER)
    if mod is not None:
        obj.modifiers.remove(mod)
    for slot in obj.material_slots:
        _remove_material_nodes(slot.material)
    attr = obj.data.color_attributes.get(ATTRIBUTE)
    if attr is not None:
        obj.data.color_attributes.remove(attr)
    if SIGNATURE in obj:
        del obj[SIGNATURE]
    group = bpy.data.node_groups.get(GROUP)
    if group is not None and group.users == 0:
        bpy.data.node_groups.remove(group)
    obj.data.update()


def last_seconds() -> float:
    """How long the last colour update took (benchmarks)."""
    return _last["seconds"]


def forget() -> None:
    _RMS.clear()
