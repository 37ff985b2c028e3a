"""Every Blender-version difference the add-on depends on, in one place (Blender 4.2 LTS ... 5.x).

* Blender 4.4 introduced layered actions and 5.0 removed ``Action.fcurves``: F-curves now live in a channelbag
  per action slot (``bpy_extras.anim_utils.action_ensure_channelbag_for_slot``). 4.2 only has ``Action.fcurves``.
* The Eevee engine id is ``BLENDER_EEVEE_NEXT`` in 4.2 - 4.5 and ``BLENDER_EEVEE`` again from 5.0.
* The compositor: 4.x keeps it in ``Scene.node_tree`` (made by ``Scene.use_nodes``, with a Composite output node);
  5.0 in a node group ``Scene.compositing_node_group`` whose Group Output is the result. Alpha Over's inputs are
  (Fac, Image, Image) in 4.x and (Background, Foreground, Factor) in 5.0.
"""
from __future__ import annotations

import logging

import bpy

log = logging.getLogger(__name__)

VERSION = bpy.app.version
LAYERED_ACTIONS = "fcurves" not in bpy.types.Action.bl_rna.properties  # True from Blender 5.0


def eevee_engine_id() -> str:
    """Render-engine id of Eevee for this Blender."""
    return "BLENDER_EEVEE_NEXT" if (4, 2, 0) <= VERSION < (5, 0, 0) else "BLENDER_EEVEE"


def _slot_for(id_data, action):
    """The action slot animating ``id_data`` (assigned, first suitable, or a new one)."""
    from bpy_extras import anim_utils

    adt = id_data.animation_data
    slot = adt.action_slot
    if slot is None:
        slot = anim_utils.action_get_first_suitable_slot(action, id_data.id_type)
        if slot is None:
            slot = action.slots.new(id_type=id_data.id_type, name=id_data.name)
        adt.action_slot = slot
    return slot


def ensure_fcurves(id_data, action_name: str):
    """F-curve collection (``.new``, ``.find``, ``.remove``, iteration) animating ``id_data``.

    Uses the ID's current action when it has one (the user's animation is kept), otherwise creates
    ``action_name``. Returns ``(fcurves, action, created)``.
    """
    adt = id_data.animation_data or id_data.animation_data_create()
    created = False
    action = adt.action
    if action is None:
        action = bpy.data.actions.new(action_name)
        adt.action = action
        created = True
    if not LAYERED_ACTIONS:
        return action.fcurves, action, created
    from bpy_extras import anim_utils

    channelbag = anim_utils.action_ensure_channelbag_for_slot(action, _slot_for(id_data, action))
    return channelbag.fcurves, action, created


def find_fcurves(id_data):
    """F-curve collection animating ``id_data``, or None when it has no action (never creates anything)."""
    adt = id_data.animation_data
    if adt is None or adt.action is None:
        return None
    if not LAYERED_ACTIONS:
        return adt.action.fcurves
    from bpy_extras import anim_utils

    channelbag = anim_utils.animdata_get_channelbag_for_assigned_slot(adt)
    return None if channelbag is None else channelbag.fcurves


def action_is_empty(action) -> bool:
    """True when an action holds no F-curves in any slot."""
    if not LAYERED_ACTIONS:
        return len(action.fcurves) == 0
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                if len(bag.fcurves):
                    return False
    return True


def use_nodes(material) -> None:
    """Give a material a node tree (always on from 5.0, where ``use_nodes`` is deprecated)."""
    if VERSION < (5, 0, 0):
        material.use_nodes = True


def set_view_transform(scene, name: str = "Standard") -> bool:
    """Set the scene's colour-management view transform; False when this Blender does not know ``name``."""
    try:
        scene.view_settings.view_transform = name
    except TypeError:
        log.warning("view transform %r is not available in this Blender", name)
        return False
    scene.view_settings.look = "None"
    return True


COMPOSITOR_GROUPS = "compositing_node_group" in bpy.types.Scene.bl_rna.properties  # True from Blender 5.0


def find_compositor_tree(scene):
    """The scene's compositor node tree, or None when it has none (never creates one)."""
    if COMPOSITOR_GROUPS:
        return scene.compositing_node_group
    return scene.node_tree if scene.use_nodes else None


def compositor_tree(scene):
    """``(tree, created)``: the scene's compositor node tree, made when it has none. A made tree is Render Layers
    -> output, as Blender sets it up."""
    tree = find_compositor_tree(scene)
    if tree is not None:
        return tree, False
    if COMPOSITOR_GROUPS:
        tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        layers = tree.nodes.new("CompositorNodeRLayers")
        out = tree.nodes.new("NodeGroupOutput")
        out.location = (400, 0)
        tree.links.new(layers.outputs["Image"], out.inputs[0])
        scene.compositing_node_group = tree
        return tree, True
    scene.use_nodes = True  # 4.x fills a new tree with Render Layers -> Composite
    return scene.node_tree, True


def compositor_output(tree):
    """The node whose input is the compositor's result (Group Output in 5.0, Composite in 4.x), or None."""
    kind = "GROUP_OUTPUT" if COMPOSITOR_GROUPS else "COMPOSITE"
    return next((n for n in tree.nodes if n.type == kind), None)


def alpha_over_inputs(node) -> tuple:
    """(background, foreground) input sockets of a compositor Alpha Over node."""
    if "Background" in node.inputs:
        return node.inputs["Background"], node.inputs["Foreground"]
    return node.inputs[1], node.inputs[2]
