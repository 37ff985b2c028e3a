"""Key values of the modal shape keys over time, baked as keyframes (see docs/addon.md for why keyframes).

One writer serves every kind of motion: :func:`write_modal_coordinates` takes complex modal coordinates
q_k(frame) per band and turns them into Bezier keyframes on the Re/Im keys with the sign convention of
``core.mesh.modal_key_values`` (value_re = Re q, value_im = -Im q). The seamless loop (:func:`write_plain_loop`) is
q_k = amplitude * exp(2 pi i k t / L); the poke simulation writes its own q_k(t) through the same function.
Which of the two a plane gets (loop, or loop + pokes) is decided in one place, ``pokes.write_motion``.
"""
from __future__ import annotations

import logging
import re

import bpy
import numpy as np

from . import compat, shapekeys
from .core import mesh as core_mesh
from .core import spectral

log = logging.getLogger(__name__)

ACTION_TAG = "imagedyn"  # on actions the add-on created for a mesh's Key datablock
_PATH_RE = re.compile(r'^key_blocks\["(IDyn_k\d+_(?:re|im))"\]\.value$')
_BEZIER = 2  # Keyframe.interpolation enum value
_ALIGNED = 3  # Keyframe.handle_*_type enum value


def data_path(block) -> str:
    return f'key_blocks["{block.name}"].value'


def _our_fcurves(obj):
    key = obj.data.shape_keys
    fcurves = None if key is None else compat.find_fcurves(key)
    if fcurves is None:
        return []
    tagged = set(key.get(shapekeys.TAG, []))
    return [fc for fc in fcurves if (m := _PATH_RE.match(fc.data_path)) and m.group(1) in tagged]


def write_modal_coordinates(obj, q: np.ndarray, frames, dq: np.ndarray | None = None,
                            cyclic: bool = False) -> None:
    """Animate the modal keys of ``obj`` with complex modal coordinates.

    ``q`` complex (K, F): q_k at each of ``frames`` (F,) scene frames (increasing; sub-frames allowed), one row per
    baked band k = 0..K-1. The plane then shows Re(sum_k A_k q_k(frame)). ``dq`` (K, F) are the derivatives dq/dframe
    used for the Bezier handles (exact curves between keys); without it they are estimated with central differences.
    ``cyclic`` adds a Cycles modifier so the curves repeat with period frames[-1] - frames[0] (give the closing
    frame, equal to the first, for a loop). Existing keyframes on these keys are replaced; other curves are kept.
    """
    bands = shapekeys.modal_keys(obj)
    q = np.asarray(q)
    frames = np.asarray(frames, dtype=np.float64)
    if q.ndim != 2 or q.shape[0] != len(bands) or q.shape[1] != frames.shape[0]:
        raise ValueError(f"q must have shape (K={len(bands)}, F={frames.shape[0]}), got {q.shape}")
    if frames.shape[0] < 2 or np.any(np.diff(frames) <= 0):
        raise ValueError("frames must be at least two increasing frame numbers")
    if dq is None:
        dq = np.gradient(q, frames, axis=1)
    values_re, values_im = core_mesh.modal_key_values(q)
    slopes_re, slopes_im = core_mesh.modal_key_values(dq)
    values = np.stack([values_re, values_im], axis=1).reshape(2 * len(bands), -1)  # (2K, F): k0re, k0im, ...
    slopes = np.stack([slopes_re, slopes_im], axis=1).reshape(2 * len(bands), -1)
    peak = float(np.abs(values).max()) if values.size else 0.0
    if peak > core_mesh.MAX_KEY_VALUE:
        log.warning("modal key values up to %.2f exceed Blender's shape-key limit %.0f and are clipped",
                    peak, core_mesh.MAX_KEY_VALUE)
    co, hl, hr = core_mesh.bezier_keyframes(frames, values, slopes)
    key = obj.data.shape_keys
    fcurves, action, created = compat.ensure_fcurves(key, f"IDyn_{obj.name}")
    if created:
        action[ACTION_TAG] = True
    n = frames.shape[0]
    interp = np.full(n, _BEZIER, dtype=np.int32)
    handle_type = np.full(n, _ALIGNED, dtype=np.int32)
    blocks = [b for _, re_block, im_block in bands for b in (re_block, im_block)]
    for row, block in enumerate(blocks):
        path = data_path(block)
        fc = fcurves.find(path) or fcurves.new(path)
        points = fc.keyframe_points
        points.clear()
        points.add(n)
        points.foreach_set("co", co[row].reshape(-1))
        points.foreach_set("handle_left", hl[row].reshape(-1))
        points.foreach_set("handle_right", hr[row].reshape(-1))
        points.foreach_set("interpolation", interp)
        points.foreach_set("handle_left_type", handle_type)
        points.foreach_set("handle_right_type", handle_type)
        for mod in [m for m in fc.modifiers if m.type == "CYCLES"]:
            fc.modifiers.remove(mod)
        if cyclic:
            fc.modifiers.new("CYCLES")
        fc.update()
    key.update_tag()


def loop_settings(obj):
    """(loop length L in frames, first frame, phase frame, amplitude) from the object's Image Dynamics settings.
    The amplitude includes the Loop Strength (0 = the plane is still until poked)."""
    props = obj.imagedyn
    length = core_mesh.effective_loop(props.loop_frames, props.speed)
    return length, props.loop_start, props.loop_start - props.start_offset, props.amplitude * props.loop_strength


def write_plain_loop(obj) -> int:
    """Animate the baked keys as one exact, cyclic loop (no pokes). Returns the loop length in frames."""
    bands = shapekeys.modal_keys(obj)
    if not bands:
        return 0
    length, start, phase, amplitude = loop_settings(obj)
    frames = np.arange(start, start + length + 1, dtype=np.float64)  # closing frame = first frame
    q, dq = spectral.loop_coordinates(len(bands), frames, length, amplitude, phase)  # (F, K)
    write_modal_coordinates(obj, q.T, frames, dq.T, cyclic=True)
    if length < 2 * len(bands):
        log.warning("loop of %d frames is shorter than 2K=%d: the fastest bands flicker from frame to frame",
                    length, 2 * len(bands))
    return length


def clear_modal_animation(obj) -> int:
    """Remove the add-on's F-curves (and its action once empty). Returns how many curves were removed."""
    key = obj.data.shape_keys
    if key is None:
        return 0
    doomed = _our_fcurves(obj)
    fcurves = compat.find_fcurves(key)
    for fc in doomed:
        fcurves.remove(fc)
    action = key.animation_data.action if key.animation_data else None
    if action is not None and action.get(ACTION_TAG) and compat.action_is_empty(action):
        key.animation_data.action = None
        bpy.data.actions.remove(action)
    return len(doomed)


def set_scene_range(scene, start: int, length: int, include_closing_frame: bool = False) -> None:
    """Make the scene's frame range exactly one loop: ``start .. start + length - 1`` (every frame once, so the
    rendered sequence repeats without a doubled frame), or ``.. start + length`` with the closing frame."""
    scene.frame_start = start
    scene.frame_end = start + length - (0 if include_closing_frame else 1)
