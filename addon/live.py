"""Keeping planes current while the artist edits: one ``depsgraph_update_post`` handler and one debounced timer.

The handler notices edits that change what a plane shows - poke and wind-arrow Empties moved, rotated, scaled,
added, deleted or retimed, actions edited, the scene range changed, the motion brush painted - and (re)starts a
short countdown; a burst of edits (a drag) runs the update once. The timer calls :func:`refresh`, which per plane:

1. re-bakes its keys in place when its wind arrows or Pin Edges changed (``bake.rebake_keys``),
2. re-simulates its pokes when they changed (``pokes.refresh``),
3. recomputes its Show Motion colours when what they show changed (``overlay.refresh``).

Each step compares a signature stored on the plane with the current one, so the add-on's own writes (which the
handler also sees) end the chain instead of looping. Operators and property updates call :func:`update_plane`
directly for an immediate result. Undo restores the keys together with their signatures: nothing is re-done.
"""
from __future__ import annotations

import logging

import bpy

from . import animation, bake, overlay, pokes, shapekeys, volumes, wind

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.15
_state = {"busy": False}


def _say_once(plane, message: str) -> None:
    if wind.last_error(plane) != message:
        log.warning("'%s' not updated: %s", plane.name, message)
    wind.set_error(plane, message)


def update_plane(plane, scene=None, rebake: bool = False) -> bool:
    """Bring one plane up to date: re-bake its keys when its wind arrows or Pin Edges changed (or ``rebake``),
    re-simulate its pokes when they (or the keys they excite) changed, refresh its Show Motion colours. Returns
    whether keys or pokes were re-made. Problems (volume gone, plane not bakeable) are kept for the panel."""
    scene = scene or bpy.context.scene
    changed = False
    _state["busy"] = True
    try:
        try:
            if shapekeys.has_modal_keys(plane):
                # the plane's UV frame (~40 ms at 40k vertices) only where arrows need it, computed once
                frame = shapekeys.plane_frame(plane) if wind.has_winds(plane) else None
                if rebake or bake.keys_stale(plane, frame):
                    bake.rebake_keys(plane, frame)
                    changed = True
            wind.set_error(plane, "")
        except (volumes.VolumeUnavailable, shapekeys.BakeError, ValueError) as exc:
            _say_once(plane, str(exc))
        changed = pokes.refresh_plane(plane, scene) or changed
        try:
            overlay.refresh(plane)
        except (shapekeys.BakeError, ValueError) as exc:
            log.warning("Show Motion of '%s' not updated: %s", plane.name, exc)
    finally:
        _state["busy"] = False
    return changed


def _planes(scene) -> list:
    found = {o.parent for o in scene.objects if wind.is_wind(o) and o.parent is not None and o.parent.type == "MESH"}
    found |= {o for o in scene.objects if o.type == "MESH" and (shapekeys.BAKED_SIGNATURE in o
                                                               or overlay.is_shown(o))}
    found |= set(pokes.poke_planes(scene))
    return sorted(found, key=lambda o: o.name)


def refresh(scene) -> list:
    """What the timer runs: bring every plane of ``scene`` up to date. Returns the planes whose keys or pokes were
    re-made."""
    return [plane for plane in _planes(scene) if update_plane(plane, scene)]


def _check_timer():
    scene = bpy.context.scene
    if scene is not None:
        refresh(scene)
    return None  # run once


def schedule_check(delay: float = DEBOUNCE_SECONDS) -> None:
    """(Re)start the countdown to :func:`refresh` (debounce: a burst of edits updates once)."""
    if bpy.app.timers.is_registered(_check_timer):
        bpy.app.timers.unregister(_check_timer)
    bpy.app.timers.register(_check_timer, first_interval=delay)


def _relevant(update) -> bool:
    data = update.id
    if isinstance(data, bpy.types.Object):
        obj = data.original
        if pokes.is_poke(obj) or wind.is_wind(obj):
            return True
        # painting the motion brush (or the anchor) while Show Motion is on
        return obj.type == "MESH" and obj.mode == "WEIGHT_PAINT" and overlay.is_shown(obj)
    if isinstance(data, bpy.types.Action):
        return not data.original.get(animation.ACTION_TAG)
    return isinstance(data, (bpy.types.Scene, bpy.types.Collection))


@bpy.app.handlers.persistent
def on_depsgraph_update(scene, depsgraph):
    if _state["busy"]:
        return
    if any(_relevant(u) for u in depsgraph.updates):
        schedule_check()


def register() -> None:
    if on_depsgraph_update not in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.append(on_depsgraph_update)


def unregister() -> None:
    if on_depsgraph_update in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.remove(on_depsgraph_update)
    if bpy.app.timers.is_registered(_check_timer):
        bpy.app.timers.unregister(_check_timer)
    overlay.forget()
    bake.forget()

