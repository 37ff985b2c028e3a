"""The motion brush end to end: headless Blender with the add-on and a real ``image-dynamics serve --model tiny``.
A painted IDyn_moves group reaches the backend as the expected hint image (UV orientation and edited UVs
included) and the baked motion stays inside it; an all-zero group and a refused hint give clear messages; Cancel
and undo leave the scene as it was; a plane without the group (or with an empty one) sends exactly today's request.
"""
import base64
import io
import time

import numpy as np
import pytest

from bpy_helpers import run_animate, stripes, write_image

pytestmark = pytest.mark.bpy
W, H = 64, 40


@pytest.fixture
def bpy(bpy_backend):
    """Blender with the add-on and a real tiny backend (conftest.py), back in Object Mode afterwards."""
    yield bpy_backend
    obj = bpy_backend.context.active_object
    if obj is not None and obj.mode != "OBJECT":
        bpy_backend.ops.object.mode_set(mode="OBJECT")


@pytest.fixture
def sent(monkeypatch):
    """The JSON bodies of every predict job the add-on submits (recorded, then sent as they are)."""
    from addon.core.client import BackendClient

    bodies = []
    submit = BackendClient.submit

    def record(self, kind, body, **kwargs):
        if kind == "predict":
            bodies.append(body)
        return submit(self, kind, body, **kwargs)

    monkeypatch.setattr(BackendClient, "submit", record)
    return bodies


def _plane(bpy, tmp_path, columns=33, steps=2, save=True):
    rng = np.random.default_rng(3)
    photo = 0.3 * stripes(W, H) + 0.7 * rng.random((H, W, 3))  # texture everywhere: the model moves everything
    img = write_image(tmp_path / "photo.png", photo)
    assert bpy.ops.imagedyn.create_plane(filepath=img, columns=columns) == {"FINISHED"}
    obj = bpy.context.active_object
    obj.imagedyn.animate_steps = steps
    if save:
        bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    return bpy.context.active_object


def _paint(bpy, obj, where) -> np.ndarray:
    """Paint Motion, then weight 1 on the vertices ``where(uv)`` selects (the rest stays unpainted = 0)."""
    from addon import brush, shapekeys

    assert bpy.ops.imagedyn.paint_motion() == {"FINISHED"} and obj.mode == "WEIGHT_PAINT"
    uv = shapekeys.vertex_uvs(obj.data)
    chosen = np.flatnonzero(where(uv))
    obj.vertex_groups[brush.GROUP].add(chosen.tolist(), 1.0, "REPLACE")
    return uv


def _hint(body) -> np.ndarray:
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(body["moves"])))
    assert image.mode == "L"
    return np.asarray(image, dtype=np.float64) / 255.0


def _vertex_rms(obj) -> np.ndarray:
    from addon import shapekeys
    from addon.core import mesh

    rest = shapekeys.rest_positions(obj)
    return mesh.rms_motion(shapekeys.baked_offsets(obj, rest))


def _snapshot(bpy, obj) -> tuple:
    from addon import brush

    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    scene = bpy.context.scene
    weights = brush.group_membership(obj, brush.GROUP) if brush.GROUP in obj.vertex_groups else None
    return (obj.data.shape_keys is None, obj.imagedyn.volume_path, scene.frame_start, scene.frame_end,
            len(bpy.data.actions), co.tobytes(), None if weights is None else (weights[0].tobytes(),
                                                                             weights[1].tobytes()))


def test_a_stripe_painted_at_the_top_reaches_the_backend_at_the_top_and_the_motion_stays_inside(bpy, tmp_path,
                                                                                                sent):
    from addon import brush
    from addon.core import spectral

    obj = _plane(bpy, tmp_path)
    obj.imagedyn.show_motion = True
    uv = _paint(bpy, obj, lambda uv: uv[:, 1] >= 0.75)  # the top quarter of the photo moves
    job = run_animate(obj)  # pressed in Weight Paint mode, as an artist would
    assert job.state == "done", job.message
    assert "with the motion brush" in job.message
    (body,) = sent
    hint = _hint(body)
    assert hint.shape == (H, W)  # the photo's aspect (and size: never larger than the photo)
    assert np.all(hint[:10] == 1.0) and np.all(hint[12:] == 0.0)  # rows 0..9 = v >= 0.75 = the top
    volume = spectral.load_npz(bpy.path.abspath(obj.imagedyn.volume_path))
    assert volume.provenance.get("hint") == 1
    rms = _vertex_rms(obj)
    inside = (uv[:, 1] >= 0.8) & (uv[:, 0] > 0.2) & (uv[:, 0] < 0.8)
    outside = (uv[:, 1] <= 0.6) & (uv[:, 0] > 0.2) & (uv[:, 0] < 0.8)
    assert rms[inside].mean() > 0
    assert rms[outside].max() <= 0.1 * rms[inside].mean(), (rms[outside].max(), rms[inside].mean())
    assert obj.get(brush.PREDICTED_WITH) == brush.digest(brush.painted_weights(obj))
    # Show Motion updated after Animate Photo: it shows what the new keys play
    from addon import overlay
    from addon.core import heat

    assert obj.imagedyn.motion_peak == pytest.approx(overlay.vertex_motion(obj).max()) and obj.imagedyn.motion_peak
    colours = np.empty(len(uv) * 4, np.float32)
    obj.data.color_attributes[overlay.ATTRIBUTE].data.foreach_get("color", colours)
    assert np.allclose(colours.reshape(-1, 4), heat.heat_colours(overlay.vertex_motion(obj)), atol=1e-6)


def test_mirrored_uvs_put_the_painted_side_where_the_plane_shows_it(bpy, tmp_path, sent):
    obj = _plane(bpy, tmp_path, save=False)
    layer = obj.data.uv_layers.active
    uv = np.empty(len(layer.data) * 2, np.float32)
    layer.data.foreach_get("uv", uv)
    uv = uv.reshape(-1, 2)
    uv[:, 0] = 1.0 - uv[:, 0]  # the artist flipped the texture left-right in the UV editor
    layer.data.foreach_set("uv", uv.reshape(-1))
    # paint the vertices that show the photo's left quarter: with the mirrored UVs they sit on the plane's right
    uv = _paint(bpy, obj, lambda uv: uv[:, 0] <= 0.25)
    xs = np.array([v.co.x for v in obj.data.vertices])
    assert xs[uv[:, 0] <= 0.25].min() > 0.0
    job = run_animate(obj)
    assert job.state == "done", job.message
    hint = _hint(sent[0])
    assert np.all(hint[:, :15] == 1.0) and np.all(hint[:, 18:] == 0.0)


def test_uvs_that_cannot_carry_the_hint_and_an_all_zero_brush_are_refused_before_anything_is_sent(bpy, tmp_path,
                                                                                                 sent):
    from addon import brush, jobs

    obj = _plane(bpy, tmp_path, save=False)
    before = _snapshot(bpy, obj)
    prior = jobs.job_for(obj.name)  # an earlier test's record, or None
    assert bpy.ops.imagedyn.paint_motion() == {"FINISHED"}
    obj.vertex_groups[brush.GROUP].add(list(range(len(obj.data.vertices))), 0.0, "REPLACE")  # painted, all 0
    with pytest.raises(RuntimeError, match="weight is 0 everywhere, so nothing would move"):
        bpy.ops.imagedyn.animate_photo()
    assert jobs.job_for(obj.name) is prior and not sent  # no job started
    obj.vertex_groups[brush.GROUP].add([0, 1, 2], 1.0, "REPLACE")
    layer = obj.data.uv_layers.active
    uv = np.empty(len(layer.data) * 2, np.float32)
    layer.data.foreach_get("uv", uv)
    layer.data.foreach_set("uv", uv + 3.0)  # every face off the photo
    with pytest.raises(RuntimeError, match="outside 0..1"):
        bpy.ops.imagedyn.animate_photo()
    obj.data.uv_layers.remove(layer)
    with pytest.raises(RuntimeError, match="has no UV map"):
        bpy.ops.imagedyn.animate_photo()
    assert jobs.job_for(obj.name) is prior and not sent
    bpy.ops.object.mode_set(mode="OBJECT")
    assert _snapshot(bpy, obj)[:6] == before[:6]  # nothing baked, nothing changed


def test_a_hint_the_backend_refuses_is_reported_with_the_backends_message(bpy, tmp_path, monkeypatch):
    from addon import brush

    obj = _plane(bpy, tmp_path, save=False)
    _paint(bpy, obj, lambda uv: uv[:, 0] > 0.5)
    before = _snapshot(bpy, obj)
    monkeypatch.setattr(brush.png, "encode_mask", lambda mask: b"GIF89a not really")
    job = run_animate(obj)
    assert job.state == "failed"
    assert job.message.startswith("The backend refused the motion brush's hint: Unusable 'moves'"), job.message
    assert "greyscale PNG" in job.message
    assert _snapshot(bpy, obj) == before


def test_cancel_with_a_painted_brush_leaves_the_scene_as_it_was(bpy, tmp_path):
    from addon import jobs

    obj = _plane(bpy, tmp_path, steps=500)
    _paint(bpy, obj, lambda uv: uv[:, 0] < 0.5)
    before = _snapshot(bpy, obj)
    assert bpy.ops.imagedyn.animate_photo() == {"FINISHED"}
    job = jobs.job_for(obj.name)
    deadline = time.monotonic() + 60
    while not (job.text.startswith("Sampling") and job.progress > 0):
        jobs.process_events()
        assert job.active and time.monotonic() < deadline, (job.state, job.message)
        time.sleep(0.05)
    assert bpy.ops.imagedyn.cancel_animate(object_name=obj.name) == {"FINISHED"}
    assert jobs.wait_idle(30) and job.state == "cancelled"
    assert _snapshot(bpy, obj) == before and obj.mode == "WEIGHT_PAINT"
    assert not (tmp_path / "scene_motion").exists()


def test_without_the_group_or_with_it_empty_the_request_and_result_are_todays(bpy, tmp_path, sent):
    from addon import animate_ops, brush
    from addon.core import protocol

    obj = _plane(bpy, tmp_path)
    first = run_animate(obj)
    assert first.state == "done" and "motion brush" not in first.message
    image = animate_ops.image_source(obj.active_material.node_tree.nodes["Image Texture"].image).encoded()
    props = obj.imagedyn
    params = protocol.PredictParams(steps=props.animate_steps, guidance=props.animate_guidance,
                                    loop=props.animate_loop, seed=props.animate_seed)
    assert sent[0] == protocol.predict_body(image, params)  # exactly the request of an add-on without the brush
    keys = _vertex_rms(obj)
    assert bpy.ops.imagedyn.paint_motion() == {"FINISHED"}  # the group exists, nothing painted: automatic
    assert brush.painted_weights(obj) is None
    again = run_animate(obj)
    assert again.state == "done" and "from the backend's cache" in again.message  # the same request again
    assert sent[1] == sent[0] and np.array_equal(_vertex_rms(obj), keys)


def test_undo_after_animate_photo_with_the_brush_restores_the_previous_keys(bpy, tmp_path):
    from addon import jobs, shapekeys

    obj = _plane(bpy, tmp_path)
    assert run_animate(obj).state == "done"
    bpy.ops.object.mode_set(mode="OBJECT")
    bpy.ops.ed.undo_push(message="first")
    bpy.ops.ed.undo_push(message="animated")
    first = shapekeys.baked_offsets(obj, shapekeys.rest_positions(obj))
    _paint(bpy, obj, lambda uv: uv[:, 1] > 0.5)
    job = run_animate(obj)
    assert job.state == "done", job.message
    bpy.ops.ed.undo_push(message=f"{job.label} '{obj.name}'")  # jobs.push_undo does this outside background mode
    steered = shapekeys.baked_offsets(obj, shapekeys.rest_positions(obj))
    assert not np.array_equal(first, steered)
    bpy.ops.ed.undo()
    obj = bpy.data.objects["photo"]
    assert np.array_equal(shapekeys.baked_offsets(obj, shapekeys.rest_positions(obj)), first)
    assert jobs.job_for(obj.name) is not None  # the job's record is not data: undo leaves it
