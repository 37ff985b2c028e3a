"""Pokes in Blender (addon/pokes.py, addon/poke_ops.py, addon/core/pokes_bake.py): a poke Empty moves the plane only
from its frame on, the evaluated mesh equals the numpy simulation, deleting or retiming a poke updates the motion
(through the depsgraph handler's check), loop + pokes add up, and the viewport drag works from fake events."""
import types

import numpy as np
import pytest

from bpy_helpers import fresh_scene, make_baked_plane, pinned, positions_at, random_volume

TOL = 1e-4  # object units
FRAMES = (1, 90)


# ----------------------------------------------------------------------------------------------------------------
# Pure helpers (no bpy)
# ----------------------------------------------------------------------------------------------------------------

def test_plane_pixel_mapping_round_trips_and_matches_the_bake():
    from addon.core import mesh, pokes_bake

    origin, eu, ev = np.array([0.3, -1.0, 2.0]), np.array([1.6, 0.2, 0.0]), np.array([0.0, 0.4, 1.0])
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 64, 20), rng.uniform(0, 40, 20)
    points = pokes_bake.pixels_to_plane(x, y, origin, eu, ev, 64, 40)
    bx, by = pokes_bake.plane_to_pixels(points, origin, eu, ev, 64, 40)
    assert np.allclose(bx, x) and np.allclose(by, y)
    normal = np.cross(eu, ev)
    bx, by = pokes_bake.plane_to_pixels(points + 0.7 * normal, origin, eu, ev, 64, 40)  # off the plane: projected
    assert np.allclose(bx, x) and np.allclose(by, y)
    uv = np.array([[0.25, 0.75]])
    assert np.allclose(np.concatenate(mesh.uv_to_pixels(uv, 64, 40)), [16.0, 10.0])  # the bake's mapping
    corner = pokes_bake.pixels_to_plane(np.array([16.0]), np.array([10.0]), origin, eu, ev, 64, 40)[0]
    assert np.allclose(corner, origin + 0.25 * eu + 0.75 * ev)


def test_ray_hits_and_arrows():
    from addon.core import pokes_bake

    origin, eu, ev = np.array([-0.8, -0.5, 0.0]), np.array([1.6, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    hit = pokes_bake.ray_plane_hit([0.1, 0.2, 5.0], [0.0, 0.0, -1.0], origin, eu, ev)
    assert np.allclose(hit, [0.1, 0.2, 0.0])
    assert pokes_bake.ray_plane_hit([0.1, 0.2, 5.0], [0.0, 0.0, 1.0], origin, eu, ev) is None  # behind
    assert pokes_bake.ray_plane_hit([0.1, 0.2, 5.0], [1.0, 0.0, 0.0], origin, eu, ev) is None  # parallel
    poke = pokes_bake.arrow_poke([0.0, 0.0, 0.0], [0.16, -0.1, 0.3], 12.5, origin, eu, ev, 64, 40, "impulse", 2.0)
    assert (poke.frame, poke.x, poke.y, poke.kind) == (12.5, 32.0, 20.0, "impulse")
    assert poke.force_x == pytest.approx(2 * 6.4) and poke.force_y == pytest.approx(2 * 4.0)  # y down
    with pytest.raises(ValueError, match="off the photo"):
        pokes_bake.arrow_poke([1.0, 0.0, 0.0], [1.1, 0.0, 0.0], 1, origin, eu, ev, 64, 40)


def test_motion_is_the_loop_plus_the_simulation():
    from addon.core import modal, pokes_bake, spectral

    volume = random_volume(k=5, num_frames=60)
    params = modal.ModalParams(alpha=0.3, beta=0.05, strength=1.5)
    poke = modal.Poke(frame=20, x=10.0, y=12.0, force_x=3.0, force_y=-1.0)
    request = pokes_bake.PokeRequest(frame_start=5, frame_end=80, fps=24.0, loop_frames=48, phase_frame=2.0,
                                     loop_amplitude=0.5, params=params, pokes=(poke,))
    frames, q, dq = pokes_bake.motion(volume.coeffs, request)
    assert np.array_equal(frames, np.arange(5, 81)) and q.shape == (5, 76)
    loop, _ = spectral.loop_coordinates(5, frames, 48, 0.5, 2.0)  # (F, K)
    sim = modal.simulate(volume.coeffs, np.arange(5) * 24.0 / 48, [poke], 76, 24.0, params, frame_start=5)
    assert np.abs(q - (loop + sim).T).max() < 1e-12
    eps = 1e-4  # dq (per frame, for the Bezier handles) is the exact derivative after the poke
    shifted = [(spectral.loop_coordinates(5, frames + e, 48, 0.5, 2.0)[0] + modal.simulate(
        volume.coeffs, np.arange(5) * 24.0 / 48, [poke], 76, 24.0, params, frame_start=5 + e)).T for e in (eps, -eps)]
    assert np.abs((shifted[0] - shifted[1]) / (2 * eps) - dq)[:, 16:].max() < 1e-5
    assert request.signature() != pokes_bake.PokeRequest(**{**request.__dict__, "frame_end": 81}).signature()


# ----------------------------------------------------------------------------------------------------------------
# Blender
# ----------------------------------------------------------------------------------------------------------------

@pytest.fixture
def bpy():
    return fresh_scene(fps=30)


def _plane(bpy, tmp_path, loop_strength=0.0, k=6):
    volume = random_volume(k=k, num_frames=60, scale=2.0)
    obj = make_baked_plane(tmp_path, volume)
    obj.imagedyn.loop_strength = loop_strength
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = FRAMES
    return obj, volume


def _frame(obj):
    from addon import shapekeys

    uv, rest, origin, eu, ev, _flat = shapekeys.plane_frame(obj)
    return uv, rest, origin, eu, ev


def _predicted(obj, volume, pokes=(), frames=None, loop_strength=0.0, strength=1.0, fps=30.0):
    """numpy: vertex positions (F, N, 3) of loop + pokes over the scene range (pokes as modal.Poke)."""
    from addon.core import mesh, modal, spectral

    uv, rest, _origin, eu, ev = _frame(obj)
    start, end = FRAMES
    n, k, loop = end - start + 1, volume.k, 60
    q = spectral.loop_coordinates(k, np.arange(start, end + 1), loop, loop_strength, start)[0]  # (F, K)
    if pokes:
        q = q + modal.simulate(volume.coeffs, np.arange(k) * fps / loop, pokes, n, fps,
                               modal.ModalParams(strength=strength), frame_start=start)
    off = pinned(mesh.modal_offsets(volume.coeffs, uv, eu, ev), obj).astype(np.float64)  # (K, 2, N, 3)
    pos = rest + np.einsum("fk,knc->fnc", q.real, off[:, 0]) - np.einsum("fk,knc->fnc", q.imag, off[:, 1])
    return pos if frames is None else pos[np.asarray(frames) - start]


def _poke_at(obj, volume, u, v, du, dv, frame, kind="drag"):
    """A poke Empty at photo (u, v) pushing by (du, dv) photo fractions; returns (empty, the modal.Poke)."""
    from addon import pokes
    from addon.core import modal

    _uv, _rest, origin, eu, ev = _frame(obj)
    base = origin + u * eu + v * ev
    empty = pokes.add_poke(obj, base, base + du * eu + dv * ev, frame, kind)
    w, h = volume.width, volume.height
    return empty, modal.Poke(frame=frame, x=u * w, y=(1 - v) * h, force_x=du * w, force_y=-dv * h, kind=kind)


@pytest.mark.bpy
def test_poke_moves_the_plane_from_its_frame_on_exactly_as_numpy(bpy, tmp_path):
    from addon import pokes
    from addon.core import modal

    obj, volume = _plane(bpy, tmp_path)
    rest = _frame(obj)[1]
    assert np.abs(positions_at(obj, 40) - rest).max() == 0.0  # loop off: still
    _, poke = _poke_at(obj, volume, 0.55, 0.4, 0.08, 0.03, frame=30)
    assert pokes.simulate(obj) == []
    for frame in (1, 20, 29):  # nothing before the poke
        assert np.abs(positions_at(obj, frame) - rest).max() == 0.0, frame
    expected = _predicted(obj, volume, [poke])
    uv = _frame(obj)[0]
    near = np.hypot(uv[:, 0] - 0.55, (uv[:, 1] - 0.4) * 40 / 64) < 0.1
    for frame in (30, 31, 37, 55, 90):
        got = positions_at(obj, frame)
        assert np.abs(got - expected[frame - 1]).max() < TOL, frame
        if frame < 40:
            assert np.abs(got - rest)[near].max() > 0.01, frame  # visibly moving near the poke
    # released at frame 30, the drag has moved the poked point by the arrow's length along the arrow
    q = modal.simulate(volume.coeffs, np.arange(6) * 30.0 / 60, [poke], 90, 30.0, frame_start=1)
    xy = modal.response_at(volume.coeffs, q, poke.x, poke.y)  # (F, 2) map pixels
    d = np.array([poke.force_x, poke.force_y])
    assert np.abs(xy[:29]).max() == 0.0 and xy[29] @ d / np.linalg.norm(d) == pytest.approx(np.linalg.norm(d))
    assert obj.get(pokes.SIGNATURE_KEY)


@pytest.mark.bpy
def test_deleting_retiming_and_moving_pokes_resimulate_through_the_handler(bpy, tmp_path):
    from addon import compat, live, pokes

    obj, volume = _plane(bpy, tmp_path, loop_strength=1.0)
    loop_only = [positions_at(obj, f) for f in (10, 45, 70)]
    empty, poke = _poke_at(obj, volume, 0.4, 0.6, -0.05, 0.02, frame=30)
    bpy.context.view_layer.update()  # the depsgraph handler notices the new poke and starts the countdown
    assert bpy.app.timers.is_registered(live._check_timer)
    assert [p.name for p in pokes.refresh(bpy.context.scene)] == [obj.name]  # what the timer runs
    assert pokes.refresh(bpy.context.scene) == []  # nothing changed: no re-simulation (no feedback loop)
    assert np.abs(positions_at(obj, 45) - loop_only[1]).max() > 0.01
    assert np.abs(positions_at(obj, 45) - _predicted(obj, volume, [poke], [45], 1.0)[0]).max() < TOL

    # retime: drag the trigger key from 30 to 50 as in the Dope Sheet
    key = compat.find_fcurves(empty).find(pokes.TRIGGER_PATH).keyframe_points[0]
    key.co.x, key.handle_left.x, key.handle_right.x = 50.0, 49.0, 51.0
    bpy.context.view_layer.update()
    assert [p.name for p in pokes.refresh(bpy.context.scene)] == [obj.name]
    retimed = poke.__class__(**{**poke.__dict__, "frame": 50.0})
    assert np.abs(positions_at(obj, 45) - loop_only[1]).max() < TOL  # before the new frame: the loop alone
    for frame in (50, 61):
        assert np.abs(positions_at(obj, frame) - _predicted(obj, volume, [retimed], [frame], 1.0)[0]).max() < TOL

    # move the Empty: the poke acts where it now is
    _uv, _rest, origin, eu, ev = _frame(obj)
    empty.location = origin + 0.7 * eu + 0.3 * ev
    bpy.context.view_layer.update()
    assert pokes.refresh(bpy.context.scene)
    moved = poke.__class__(**{**retimed.__dict__, "x": 0.7 * 32, "y": 0.7 * 20})
    assert np.abs(positions_at(obj, 61) - _predicted(obj, volume, [moved], [61], 1.0)[0]).max() < TOL

    # delete it: back to exactly the loop-only result, as a cyclic loop again
    bpy.data.objects.remove(empty)
    bpy.context.view_layer.update()
    assert bpy.app.timers.is_registered(live._check_timer)
    assert [p.name for p in pokes.refresh(bpy.context.scene)] == [obj.name]
    assert pokes.SIGNATURE_KEY not in obj
    for frame, before in zip((10, 45, 70), loop_only):
        assert np.abs(positions_at(obj, frame) - before).max() < 1e-6
    assert all(fc.modifiers[0].type == "CYCLES" for fc in compat.find_fcurves(obj.data.shape_keys))


@pytest.mark.bpy
def test_loop_and_pokes_add_up_and_settings_are_live(bpy, tmp_path):
    from addon import pokes

    obj, volume = _plane(bpy, tmp_path, loop_strength=0.5)
    empty, poke = _poke_at(obj, volume, 0.5, 0.5, 0.0, 0.05, frame=12)
    _, second = _poke_at(obj, volume, 0.3, 0.7, 0.04, 0.0, frame=20.5, kind="impulse")
    pokes.simulate(obj)
    for frame in (5, 12, 21, 60):
        expected = _predicted(obj, volume, [poke, second], [frame], loop_strength=0.5)[0]
        assert np.abs(positions_at(obj, frame) - expected).max() < TOL, frame
    obj.imagedyn.poke_strength = 2.0  # live: re-simulated at once
    expected = _predicted(obj, volume, [poke, second], [40], loop_strength=0.5, strength=2.0)[0]
    assert np.abs(positions_at(obj, 40) - expected).max() < TOL
    obj.imagedyn.loop_strength = 0.0
    assert np.abs(positions_at(obj, 8) - _frame(obj)[1]).max() == 0.0
    empty.imagedyn_poke.enabled = False
    pokes.simulate(obj)
    expected = _predicted(obj, volume, [second], [40], strength=2.0)[0]
    assert np.abs(positions_at(obj, 40) - expected).max() < TOL
    # two trigger keys: the same Empty pokes twice, the second key's value scales its force
    empty.imagedyn_poke.enabled = True
    empty.imagedyn_poke.trigger = 0.5
    empty.keyframe_insert(pokes.TRIGGER_PATH, frame=50)
    pokes.simulate(obj)
    twice = [poke, second, poke.__class__(**{**poke.__dict__, "frame": 50.0, "force_y": 0.5 * poke.force_y})]
    expected = _predicted(obj, volume, twice, [70], strength=2.0)[0]
    assert np.abs(positions_at(obj, 70) - expected).max() < TOL
    # too strong: Blender clamps key values at 10 -> the user is told
    obj.imagedyn.poke_strength = 500.0
    warnings = pokes.simulate(obj)
    assert len(warnings) == 1 and "shape-key limit of 10" in warnings[0]


@pytest.mark.bpy
def test_animated_empty_is_read_at_its_trigger_frame(bpy, tmp_path):
    from addon import pokes

    obj, volume = _plane(bpy, tmp_path)
    empty, poke = _poke_at(obj, volume, 0.5, 0.5, 0.05, 0.0, frame=40)
    _uv, _rest, origin, eu, ev = _frame(obj)
    empty.location = origin + 0.2 * eu + 0.2 * ev
    empty.keyframe_insert("location", frame=1)
    empty.location = origin + 0.6 * eu + 0.5 * ev
    empty.keyframe_insert("location", frame=80)
    bpy.context.scene.frame_set(5)  # the current frame does not matter
    request, _volume, warnings = pokes.build_request(obj, bpy.context.scene)
    (got,) = request.pokes
    at_40 = 0.2 + (0.6 - 0.2) * np.interp(40, [1, 80], [0, 1])
    assert warnings == [] and got.frame == 40.0 and abs(got.x / 32 - at_40) < 0.05  # Bezier ease: near linear
    assert got.force_x == pytest.approx(poke.force_x) and got.force_y == pytest.approx(0.0, abs=1e-9)
    empty.location = origin + 1.5 * eu  # off the photo at every frame: skipped with a warning
    fcurves = pokes.compat.find_fcurves(empty)
    for fc in [fc for fc in fcurves if fc.data_path == "location"]:
        fcurves.remove(fc)
    request, _volume, warnings = pokes.build_request(obj, bpy.context.scene)
    assert request.pokes == () and "off the photo" in warnings[0]


@pytest.mark.bpy
def test_operators_add_simulate_and_remove(bpy, tmp_path):
    from addon import compat, pokes

    obj, volume = _plane(bpy, tmp_path)
    bpy.context.scene.frame_set(25)
    assert bpy.ops.imagedyn.poke_add(u=0.3, v=0.6, angle=np.pi / 2, length=0.1) == {"FINISHED"}
    (empty,) = pokes.plane_pokes(obj)
    assert empty.parent == obj and empty.empty_display_type == "SINGLE_ARROW"
    assert pokes.trigger_keys(empty) == [(25.0, 1.0)]
    fc = compat.find_fcurves(empty).find(pokes.TRIGGER_PATH)
    assert fc.keyframe_points[0].interpolation == "CONSTANT"
    (poke,) = pokes.build_request(obj, bpy.context.scene)[0].pokes
    assert (poke.x, poke.y) == pytest.approx((0.3 * 32, 0.4 * 20))
    assert (poke.force_x, poke.force_y) == pytest.approx((0.0, -0.1 * 1.6 * 20), abs=1e-6)  # 0.1 width, up
    assert np.abs(positions_at(obj, 40) - _predicted(obj, volume, [poke], [40])[0]).max() < TOL
    bpy.context.view_layer.objects.active = empty  # the tools also work with the poke selected
    assert bpy.ops.imagedyn.poke_simulate() == {"FINISHED"}
    assert bpy.ops.imagedyn.poke_clear() == {"FINISHED"}
    assert pokes.plane_pokes(obj) == [] and bpy.context.active_object == obj
    assert np.abs(positions_at(obj, 40) - _frame(obj)[1]).max() == 0.0
    obj.imagedyn.volume_path = str(tmp_path / "gone.npz")
    for name in ("poke_add", "poke_simulate"):
        with pytest.raises(RuntimeError, match="is missing: pokes need it to simulate; load it again"):
            getattr(bpy.ops.imagedyn, name)()
    assert pokes.plane_pokes(obj) == []


class _View:
    """A 3D viewport region looking straight down -Z from z = 4 (stands in for Region + RegionView3D)."""

    def __init__(self):
        from mathutils import Matrix

        self.region = types.SimpleNamespace(width=400, height=300)
        near, far, f, aspect = 0.1, 100.0, 2.0, 400 / 300
        window = Matrix(((f / aspect, 0, 0, 0), (0, f, 0, 0), (0, 0, (far + near) / (near - far),
                                                                2 * far * near / (near - far)), (0, 0, -1, 0)))
        view = Matrix.Translation((0.0, 0.0, -4.0))
        self.rv3d = types.SimpleNamespace(is_perspective=True, view_matrix=view, perspective_matrix=window @ view,
                                          view_perspective="PERSP")

    def pixel(self, world):
        from bpy_extras import view3d_utils

        return tuple(view3d_utils.location_3d_to_region_2d(self.region, self.rv3d, world))

    def context(self, scene):
        return types.SimpleNamespace(region=self.region, region_data=self.rv3d, scene=scene, screen=None,
                                     workspace=None, area=None)


def _event(kind, value, xy):
    return types.SimpleNamespace(type=kind, value=value, mouse_region_x=xy[0], mouse_region_y=xy[1])


@pytest.mark.bpy
def test_viewport_drag_from_region_pixels_to_a_poke(bpy, tmp_path):
    from mathutils import Vector

    from addon import poke_ops, pokes

    obj, volume = _plane(bpy, tmp_path)
    obj.location = (0.1, -0.05, 0.5)
    obj.rotation_euler = (0.2, 0.0, 0.3)
    bpy.context.view_layer.update()
    view, scene = _View(), bpy.context.scene
    _uv, _rest, origin, eu, ev = _frame(obj)
    world = lambda local: obj.matrix_world @ Vector(local)  # noqa: E731
    a, b = origin + 0.6 * eu + 0.3 * ev, origin + 0.7 * eu + 0.35 * ev
    hit = poke_ops.region_to_plane(view.region, view.rv3d, obj, view.pixel(world(a)))
    assert np.allclose(hit, a, atol=1e-5)
    assert poke_ops.region_to_plane(view.region, view.rv3d, obj, (2, 2)) is None  # beside the photo

    scene.frame_set(33)
    ctx = view.context(scene)
    reports = []
    op = types.SimpleNamespace(session=poke_ops.DragSession(obj, 33, "drag"),
                               report=lambda kind, text: reports.append((kind, text)))
    assert poke_ops.drag_modal(op, ctx, _event("LEFTMOUSE", "PRESS", (2, 2))) == {"RUNNING_MODAL"}  # missed
    assert "Press on the photo plane" in reports[-1][1] and not op.session.started
    assert poke_ops.drag_modal(op, ctx, _event("WHEELUPMOUSE", "PRESS", (2, 2))) == {"PASS_THROUGH"}  # navigate
    assert poke_ops.drag_modal(op, ctx, _event("LEFTMOUSE", "PRESS", view.pixel(world(a)))) == {"RUNNING_MODAL"}
    preview = op.session.empty
    assert preview is not None and not pokes.is_poke(preview)  # a plain arrow while dragging: nothing simulated
    mid = origin + 0.65 * eu + 0.4 * ev
    assert poke_ops.drag_modal(op, ctx, _event("MOUSEMOVE", "NOTHING", view.pixel(world(mid)))) == {"RUNNING_MODAL"}
    assert preview.empty_display_size == pytest.approx(float(np.linalg.norm(mid - a)), rel=1e-4)
    assert poke_ops.drag_modal(op, ctx, _event("LEFTMOUSE", "RELEASE", view.pixel(world(b)))) == {"FINISHED"}
    assert pokes.plane_pokes(obj) == [preview] and pokes.trigger_keys(preview) == [(33.0, 1.0)]
    (poke,) = pokes.build_request(obj, scene)[0].pokes
    assert (poke.x, poke.y, poke.force_x, poke.force_y) == pytest.approx((0.6 * 32, 0.7 * 20, 0.1 * 32, -0.05 * 20),
                                                                         abs=1e-3)
    assert np.abs(positions_at(obj, 50) - _predicted(obj, volume, [poke], [50])[0]).max() < 1e-3

    # Esc (and right-click) cancel without changes; a click without a drag pokes nothing
    for cancel in ("ESC", "RIGHTMOUSE"):
        op.session = poke_ops.DragSession(obj, 40)
        poke_ops.drag_modal(op, ctx, _event("LEFTMOUSE", "PRESS", view.pixel(world(a))))
        assert len(obj.children) == 2
        assert poke_ops.drag_modal(op, ctx, _event(cancel, "PRESS", (0, 0))) == {"CANCELLED"}
        assert list(obj.children) == [preview]
    op.session = poke_ops.DragSession(obj, 40)
    poke_ops.drag_modal(op, ctx, _event("LEFTMOUSE", "PRESS", view.pixel(world(a))))
    assert poke_ops.drag_modal(op, ctx, _event("LEFTMOUSE", "RELEASE", view.pixel(world(a)))) == {"CANCELLED"}
    assert "Drag to poke" in reports[-1][1] and list(obj.children) == [preview]
    # invoke: refused outside a 3D viewport; in one it starts the modal handler with the current frame
    bpy.context.view_layer.objects.active = obj
    invoke = poke_ops.IMAGEDYN_OT_poke_drag.invoke
    op = types.SimpleNamespace(kind="impulse", report=lambda kind, text: reports.append((kind, text)))
    assert invoke(op, types.SimpleNamespace(area=None, region_data=None), None) == {"CANCELLED"}
    assert "from a 3D Viewport" in reports[-1][1]
    handlers = []
    ctx = types.SimpleNamespace(area=types.SimpleNamespace(type="VIEW_3D", tag_redraw=lambda: None),
                                region_data=view.rv3d, scene=scene, active_object=obj, workspace=None,
                                window_manager=types.SimpleNamespace(modal_handler_add=handlers.append))
    assert invoke(op, ctx, None) == {"RUNNING_MODAL"} and handlers == [op]
    assert (op.session.plane, op.session.frame, op.session.kind) == (obj, scene.frame_current, "impulse")


@pytest.mark.bpy
def test_pokes_panel_properties_operators_and_unregister(bpy, tmp_path):
    import addon
    from addon import live, poke_ops, pokes, ui

    obj, _volume = _plane(bpy, tmp_path)
    for cls in pokes.classes:
        for prop in cls.bl_rna.properties:
            if prop.identifier not in ("rna_type", "name"):
                assert prop.description, f"{cls.__name__}.{prop.identifier}"
    for cls in poke_ops.classes:
        assert cls.__name__.startswith("IMAGEDYN_OT_") and cls.bl_options == {"REGISTER", "UNDO"} and cls.__doc__
        rna = getattr(bpy.ops.imagedyn, cls.bl_idname.split(".")[1]).get_rna_type()
        assert all(p.description for p in rna.properties if p.identifier != "rna_type"), cls.__name__
    for name in ("loop_strength", "poke_strength", "poke_alpha", "poke_beta", "poke_floor", "auto_simulate"):
        assert obj.imagedyn.bl_rna.properties[name].description, name
    icons = bpy.types.UILayout.bl_rna.functions["prop"].parameters["icon"].enum_items.keys()
    assert {"EMPTY_SINGLE_ARROW", "FILE_REFRESH", "TRASH", "ADD", "ERROR", "INFO"} <= set(icons)
    assert ui.IMAGEDYN_PT_pokes.poll(bpy.context)
    empty, _ = _poke_at(obj, _volume, 0.5, 0.5, 0.05, 0.0, 10)
    bpy.context.view_layer.objects.active = empty
    assert ui.IMAGEDYN_PT_pokes.poll(bpy.context) and pokes.plane_for(bpy.context) == obj
    addon.unregister()
    try:
        assert live.on_depsgraph_update not in bpy.app.handlers.depsgraph_update_post
        assert not bpy.app.timers.is_registered(live._check_timer)
        assert not hasattr(bpy.types.Object, "imagedyn_poke")
    finally:
        addon.register()
    assert live.on_depsgraph_update in bpy.app.handlers.depsgraph_update_post
