"""Image Dynamics: animate photo backdrops with natural oscillating motion (Blender extension).

This package must stay importable without Blender: the backend imports ``addon.core`` from plain Python. All bpy
modules are imported inside :func:`register`.
"""
from __future__ import annotations

_registered: list = []


def _modules():
    from . import animate_ops, neural_ops, poke_ops, pokes, ops, prefs, props, server_ops, steer_ops, ui, wind

    return prefs, props, pokes, wind, ops, poke_ops, steer_ops, animate_ops, server_ops, neural_ops, ui


def register():
    import bpy

    from . import jobs, live, pokes, props, ui, wind

    for module in _modules():
        for cls in module.classes:
            bpy.utils.register_class(cls)
            _registered.append(cls)
    props.register_properties()
    pokes.register_properties()
    wind.register_properties()
    live.register()
    jobs.register()
    ui.register_status_bar()


def unregister():
    import bpy

    from . import jobs, live, pokes, props, ui, wind

    ui.unregister_status_bar()
    jobs.unregister()  # cancels jobs, removes the timer, stops a backend the add-on started
    live.unregister()
    wind.unregister_properties()
    pokes.unregister_properties()
    props.unregister_properties()
    for cls in reversed(_registered):
        bpy.utils.unregister_class(cls)
    _registered.clear()
