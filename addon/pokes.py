"""Pokes in Blender: Empty arrows parented to a photo plane, simulated into the plane's modal shape keys.

Convention (docs/pokes.md):

* A poke is an Empty (display "Single Arrow") parented to the photo plane and marked ``imagedyn_poke.is_poke``.
* **When**: every keyframe on its ``Trigger`` property (``imagedyn_poke.trigger``) with a value above 0 fires the
  poke at that keyframe's frame; the value scales its force. Moving the key in the Dope Sheet / Timeline retimes
  the poke; several keys poke several times. No trigger key = no poke.
* **Where**: the arrow's base (the Empty's origin) in the plane's local space -> UV -> pixel of the volume map (the
  bake's mapping, y down). **How hard**: the arrow as drawn, local +Z x Display Size x Scale, projected onto the
  plane: the poke drags the photo point under the base to the point under the tip (map pixels). The Empty's own
  location/rotation/scale keys are evaluated at the trigger frame (constraints and drivers are not).
* Simulate = ``core.pokes_bake.motion``: loop (times Loop Strength) + pokes over the scene's frame range, keyed
  every frame into the same modal keys through ``animation.write_modal_coordinates``.

* The pokes excite the motion the keys hold: the volume turned by the plane's wind arrows (``wind.effective_coeffs``).

Auto-simulation: live.py's ``depsgraph_update_post`` handler notices edits (poke Empties, actions, scene range,
deletions) and (re)starts a short ``bpy.app.timers`` countdown; the timer calls :func:`refresh`, which re-simulates
only planes whose :class:`~core.pokes_bake.PokeRequest` signature changed (stored on the plane), so our own writes
never loop.
"""
from __future__ import annotations

import logging

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty
from mathutils import Vector

from . import animation, arrows, compat, shapekeys, volumes, wind
from .core import mesh as core_mesh
from .core import modal, pokes_bake

log = logging.getLogger(__name__)

TRIGGER_PATH = "imagedyn_poke.trigger"
SIGNATURE_KEY = "_imagedyn_pokes"  # on the plane: signature of the simulated request ('_' hides it in the UI)
_ERRORS: dict = {}  # plane name -> last auto-simulation problem (shown in the panel)


KINDS = (("drag", "Drag", "The point is dragged along the arrow and released at rest"),
         ("impulse", "Flick", "The point is flicked along the arrow (it starts moving from rest)"))


class PokeError(RuntimeError):
    """Pokes cannot be simulated; the message says what to do."""


def _touch(self, context):
    self.id_data.update_tag()  # the depsgraph handler (live.py) sees the poke changed and re-simulates


def kind_property(update=None):
    """The poke's Kind, as a poke setting (``update``) and as an option of the operators that make pokes."""
    return EnumProperty(name="Kind", default="drag", update=update, items=KINDS,
                        description="How the poke moves the photo: a drag released at its frame, or a flick")


class IMAGEDYN_PG_poke(bpy.types.PropertyGroup):
    is_poke: BoolProperty(
        name="Is Poke", default=False,
        description="This Empty is an Image Dynamics poke of its parent photo plane")
    enabled: BoolProperty(
        name="Enabled", default=True, update=_touch,
        description="Include this poke in the simulation (off: it is kept but ignored)")
    kind: kind_property(update=_touch)
    trigger: FloatProperty(
        name="Trigger", default=1.0, min=0.0, soft_max=2.0,
        description="Keyframe this at the poke's frame (I over the field): every key above 0 fires the poke, "
                    "scaled by its value; move keys in the Dope Sheet to retime")


# ----------------------------------------------------------------------------------------------------------------
# Finding pokes and reading them
# ----------------------------------------------------------------------------------------------------------------

def is_poke(obj) -> bool:
    return obj is not None and obj.type == "EMPTY" and obj.imagedyn_poke.is_poke


def plane_pokes(plane) -> list:
    """Enabled poke Empties of a plane (its children)."""
    return [c for c in plane.children if is_poke(c) and c.imagedyn_poke.enabled]


def has_pokes(plane) -> bool:
    return plane is not None and plane.type == "MESH" and bool(plane_pokes(plane))


def plane_for(context):
    """The photo plane the pokes tools act on: the active plane, or the active poke's plane."""
    obj = context.active_object
    if is_poke(obj):
        obj = obj.parent
    return obj if shapekeys.has_modal_keys(obj) else None


def trigger_keys(empty) -> list:
    """[(frame, value)] of the poke's trigger keys with value > 0 (muted curve = none)."""
    fcurves = compat.find_fcurves(empty)
    fc = None if fcurves is None else fcurves.find(TRIGGER_PATH)
    if fc is None or fc.mute:
        return []
    return [(float(k.co[0]), float(k.co[1])) for k in fc.keyframe_points if k.co[1] > 0.0]


def load_volume(plane):
    """(volume, source) of the plane's spectral volume (read once per file version); PokeError when it is gone."""
    try:
        return volumes.plane_volume(plane, "pokes need it to simulate")
    except volumes.VolumeUnavailable as exc:
        raise PokeError(str(exc)) from None


def build_request(plane, scene):
    """(PokeRequest, coeffs, warnings) for a plane: its pokes, settings and the scene's range and frame rate, and
    the coefficients its keys hold (the volume turned by its wind arrows) that the pokes excite."""
    volume, source = load_volume(plane)
    coeffs = wind.effective_coeffs(plane, volume, source)
    winds = wind.signature(plane, volume.width, volume.height)
    if winds:
        source = f"{source}|wind:{winds}"
    bands = shapekeys.modal_keys(plane)
    if len(bands) != volume.k:
        raise PokeError(f"'{plane.name}' has {len(bands)} baked bands but its volume has {volume.k}: press Bake "
                        "Motion to re-bake the volume")
    try:
        _uv, _rest, origin, eu, ev, _flat = shapekeys.plane_frame(plane)
    except shapekeys.BakeError as exc:
        raise PokeError(str(exc)) from None
    props = plane.imagedyn
    length, _start, phase, amplitude = animation.loop_settings(plane)
    warnings, pokes = [], []
    for empty in sorted(plane_pokes(plane), key=lambda o: o.name):
        for frame, value in trigger_keys(empty):
            base, tip = arrows.arrow_in_plane(empty, plane, frame)
            try:
                pokes.append(pokes_bake.arrow_poke(base, tip, frame, origin, eu, ev, volume.width, volume.height,
                                                   empty.imagedyn_poke.kind, value))
            except ValueError as exc:
                warnings.append(f"Poke '{empty.name}' at frame {frame:g} is ignored: {exc}")
    params = modal.ModalParams(alpha=props.poke_alpha, beta=props.poke_beta, speed=1.0,
                               strength=props.poke_strength, floor=props.poke_floor)
    request = pokes_bake.PokeRequest(frame_start=scene.frame_start, frame_end=scene.frame_end,
                                     fps=scene.render.fps / scene.render.fps_base, loop_frames=length,
                                     phase_frame=float(phase), loop_amplitude=float(amplitude), params=params,
                                     pokes=tuple(pokes), source=source)
    return request, coeffs, warnings


# ----------------------------------------------------------------------------------------------------------------
# Simulating and writing
# ----------------------------------------------------------------------------------------------------------------

def simulate(plane, scene=None) -> list:
    """Re-simulate ``plane``: loop + pokes over the scene range into its modal keys (the plain cyclic loop when it
    has no pokes). Returns warnings for the user; raises PokeError with what to do."""
    scene = scene or bpy.context.scene
    request, coeffs, warnings = build_request(plane, scene)
    if not request.pokes:
        animation.write_plain_loop(plane)
        if SIGNATURE_KEY in plane:
            del plane[SIGNATURE_KEY]
    else:
        frames, q, dq = pokes_bake.motion(coeffs, request)
        peak = pokes_bake.peak_key_value(q)
        if peak > core_mesh.MAX_KEY_VALUE:
            warnings.append(f"The pokes drive the motion to {peak:.1f} times the volume's amplitude, beyond "
                            f"Blender's shape-key limit of {core_mesh.MAX_KEY_VALUE:g}: the peaks are clipped. "
                            "Lower Poke Strength or use shorter arrows")
        animation.write_modal_coordinates(plane, q, frames, dq, cyclic=False)
        plane[SIGNATURE_KEY] = request.signature()
    _ERRORS.pop(plane.name, None)
    log.info("simulated %d pokes on '%s' over frames %d-%d", len(request.pokes), plane.name,
             request.frame_start, request.frame_end)
    return warnings


def write_motion(plane) -> int:
    """THE place that decides what a baked plane's keys play: loop + pokes over the scene range when it has poke
    Empties (falling back to the plain loop, with the problem kept for the panel, when they cannot be simulated),
    else the plain cyclic loop. Returns the loop length in frames (0 for a plane without modal keys)."""
    if not shapekeys.modal_keys(plane):
        return 0
    if not has_pokes(plane):
        return animation.write_plain_loop(plane)
    try:
        for warning in simulate(plane):
            log.warning(warning)
    except (PokeError, ValueError) as exc:
        log.warning("pokes of '%s' not simulated: %s", plane.name, exc)
        _ERRORS[plane.name] = str(exc)
        animation.write_plain_loop(plane)
    return animation.loop_settings(plane)[0]


def is_stale(plane, scene) -> bool:
    """True when the plane's keys do not show its current pokes and settings."""
    if not has_pokes(plane) and SIGNATURE_KEY not in plane:
        return False
    request, _coeffs, _warnings = build_request(plane, scene)
    if not request.pokes:
        return SIGNATURE_KEY in plane
    return plane.get(SIGNATURE_KEY) != request.signature()


def poke_planes(scene) -> list:
    """Planes of ``scene`` with poke Empties or a simulation on their keys, in name order."""
    planes = {o.parent for o in scene.objects if is_poke(o) and o.parent is not None}
    planes |= {o for o in scene.objects if o.type == "MESH" and SIGNATURE_KEY in o}
    return sorted(planes, key=lambda o: o.name)


def refresh_plane(plane, scene) -> bool:
    """Re-simulate ``plane`` when it is auto-simulated and its pokes changed. Returns whether it was; a problem is
    kept for the panel (and logged once)."""
    if not (plane.imagedyn.auto_simulate and shapekeys.has_modal_keys(plane)):
        return False
    try:
        if not is_stale(plane, scene):
            return False
        for warning in simulate(plane, scene):
            log.warning(warning)
        return True
    except (PokeError, ValueError) as exc:
        if _ERRORS.get(plane.name) != str(exc):  # say it once, not after every edit
            log.warning("pokes of '%s' not simulated: %s", plane.name, exc)
        _ERRORS[plane.name] = str(exc)
        return False


def refresh(scene) -> list:
    """Re-simulate every auto-simulated plane of ``scene`` whose pokes changed. Returns the planes simulated."""
    return [plane for plane in poke_planes(scene) if refresh_plane(plane, scene)]


# ----------------------------------------------------------------------------------------------------------------
# Making pokes
# ----------------------------------------------------------------------------------------------------------------

def make_poke(empty, frame: float, kind: str = "drag") -> None:
    """Turn an arrow Empty into a poke fired at ``frame`` (a constant trigger key of value 1)."""
    settings = empty.imagedyn_poke
    settings.is_poke = True
    settings.kind = kind
    settings.trigger = 1.0
    empty.keyframe_insert(TRIGGER_PATH, frame=frame)
    for key in compat.find_fcurves(empty).find(TRIGGER_PATH).keyframe_points:
        key.interpolation = "CONSTANT"


def add_poke(plane, base, tip, frame: float, kind: str = "drag", name: str = "Poke"):
    """New poke Empty on ``plane``: an arrow from ``base`` to ``tip`` (plane-local points) fired at ``frame``.
    Does not simulate. Raises PokeError for a zero-length arrow."""
    if (Vector(tip) - Vector(base)).length <= 1e-9:
        raise PokeError("The poke has no direction: drag from the point you poke towards where it is pushed")
    empty = arrows.new_arrow(plane, base, tip, name)
    make_poke(empty, frame, kind)
    return empty


def remove_pokes(plane) -> int:
    """Delete every poke Empty of ``plane`` (and its trigger action when nothing else uses it)."""
    doomed = [c for c in plane.children if is_poke(c)]
    for empty in doomed:
        action = empty.animation_data.action if empty.animation_data else None
        bpy.data.objects.remove(empty)
        if action is not None and action.users == 0:
            bpy.data.actions.remove(action)
    return len(doomed)


def last_error(plane) -> str:
    """The last automatic simulation's problem on ``plane`` ('' when it went fine)."""
    return _ERRORS.get(plane.name, "")


classes = (IMAGEDYN_PG_poke,)


def register_properties():
    bpy.types.Object.imagedyn_poke = bpy.props.PointerProperty(
        type=IMAGEDYN_PG_poke, name="Image Dynamics Poke",
        description="Image Dynamics poke settings of this Empty (when it is a poke of a photo plane)")


def unregister_properties():
    volumes.forget()
    _ERRORS.clear()
    del bpy.types.Object.imagedyn_poke
