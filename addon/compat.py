"""Every Blender-version difference the add-on depends on, in one place (Blender 4.2 LTS ... 5.x).

* Blender 4.4 introduced layered actions and 5.0 removed ``Action.fcurves``: F-curves now live in a channelbag
  per action slot (``bpy_extras.anim_utils.action_ensure_channelbag_for_slot``). 4.2 only has ``Action.fcurves``.
* The Eevee engine id is ``BLENDER_EEVEE_NEXT`` in 4.2 - 4.5 and ``BLENDER_EEVEE`` again from 5.0.
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
