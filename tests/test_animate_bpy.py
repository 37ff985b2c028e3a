"""Animate Photo end to end: a real ``image-dynamics serve --model tiny`` subprocess on a free port, headless Blender
with the add-on registered. The plane ends with modal shape keys matching the backend's volume (saved next to the
.blend, re-bakeable without a backend); a second run hits the cache; cancelling leaves the scene unchanged; a
backend killed mid-job or not running gives a reported error, not a hang; the add-on starts (and stops) a backend
itself when the preferences say so; photos are sent from files, packed files and pixels."""
import io
import os
import time

import numpy as np
import pytest

from bpy_helpers import flat_plane_frame, fresh_scene, pinned, positions_at, run_animate, stripes, write_image
from service_helpers import (VENV_PYTHON, encode, free_port, kill_process, photo, start_server_process,
                             stop_process)

pytestmark = pytest.mark.bpy
TOL = 1e-4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, url = start_server_process(tmp_path_factory.mktemp("server"), "--max-queue", "1")
    try:
        yield url
    finally:
        stop_process(proc)


@pytest.fixture
def bpy(monkeypatch):
    bpy = fresh_scene(fps=30)
    from addon import jobs

    yield bpy
    for job in jobs.active_jobs():
        jobs.cancel(job.key)
    jobs.wait_idle(10)


def _plane(bpy, tmp_path, name="photo", size=(64, 40), steps=2, save=True):
    img = write_image(tmp_path / f"{name}.png", stripes(*size))
    assert bpy.ops.imagedyn.create_plane(filepath=img, columns=16) == {"FINISHED"}
    obj = bpy.context.active_object
    obj.imagedyn.animate_steps = steps
    if save:
        bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    return bpy.context.active_object


def _snapshot(bpy, obj) -> tuple:
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    scene = bpy.context.scene
    return (obj.data.shape_keys is None, obj.imagedyn.volume_path, scene.frame_start, scene.frame_end,
            len(bpy.data.actions), co.tobytes())


def _wait_sampling(job, timeout=60.0):
    from addon import jobs

    deadline = time.monotonic() + timeout
    while not (job.text.startswith("Sampling") and job.progress > 0):
        jobs.process_events()
        assert job.active, job.message
        assert time.monotonic() < deadline, f"never started sampling: {job.text}"
        time.sleep(0.05)


def test_animate_bakes_modal_keys_saves_the_volume_beside_the_blend_and_hits_the_cache(bpy, tmp_path, server,
                                                                                      monkeypatch):
    from addon import prefs
    from addon.core import mesh, spectral

    monkeypatch.setenv(prefs.ENV_URL, server)
    obj = _plane(bpy, tmp_path, steps=3)
    job = run_animate(obj)
    assert job.state == "done", job.message
    assert "from the backend's cache" not in job.message
    names = [b.name for b in obj.data.shape_keys.key_blocks]
    assert names == ["Basis"] + [f"IDyn_k{k:02d}_{p}" for k in range(16) for p in ("re", "im")]
    stored = obj.imagedyn.volume_path
    assert stored.startswith("//scene_motion/photo_") and stored.endswith(".npz")
    volume = spectral.load_npz(bpy.path.abspath(stored))
    assert volume.source_size == (64, 40) and volume.provenance["model"] == "tiny-random@seed0"
    assert volume.provenance["steps"] == 3 and volume.k == 16
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 150) and obj.imagedyn.loop_frames == 150
    uv, rest, eu, ev = flat_plane_frame(obj)
    for frame in (1, 40):
        t = (frame - 1) / volume.fps
        expected = rest + pinned(mesh.predicted_offsets(volume.coeffs, volume.freqs_hz, t, uv, eu, ev, 1.0), obj)
        assert np.abs(positions_at(obj, frame) - expected).max() < TOL

    again = run_animate(obj)
    assert again.state == "done" and "from the backend's cache" in again.message
    assert obj.imagedyn.volume_path == stored  # same content, same file

    # reopening and re-baking need no backend
    bpy.ops.wm.save_mainfile()
    monkeypatch.setenv(prefs.ENV_URL, f"http://127.0.0.1:{free_port()}")
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "scene.blend"))
    obj = bpy.data.objects["photo"]
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.imagedyn.clear() == {"FINISHED"} and obj.data.shape_keys is None
    assert bpy.ops.imagedyn.bake() == {"FINISHED"}
    assert len(obj.data.shape_keys.key_blocks) == 33


def test_cancel_mid_job_leaves_the_scene_unchanged(bpy, tmp_path, server, monkeypatch):
    from addon import jobs, prefs
    from addon.core.client import BackendClient

    monkeypatch.setenv(prefs.ENV_URL, server)
    obj = _plane(bpy, tmp_path, steps=500)
    before = _snapshot(bpy, obj)
    assert bpy.ops.imagedyn.animate_photo() == {"FINISHED"}
    job = jobs.job_for(obj.name)
    _wait_sampling(job)
    assert bpy.ops.imagedyn.cancel_animate(object_name=obj.name) == {"FINISHED"}
    assert job.state == "cancelling"
    assert jobs.wait_idle(30)
    assert job.state == "cancelled" and "nothing was changed" in job.message
    assert _snapshot(bpy, obj) == before
    assert not (tmp_path / "scene_motion").exists()
    client = BackendClient(server)
    deadline = time.monotonic() + 20
    while client.status(job.backend_job).state != "cancelled":  # the backend stopped the job too
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_busy_backend_is_waited_for_then_the_photo_animates(bpy, tmp_path, server, monkeypatch):
    from addon import jobs, prefs
    from addon.core import protocol
    from addon.core.client import BackendClient

    monkeypatch.setenv(prefs.ENV_URL, server)
    client = BackendClient(server)
    params = protocol.PredictParams(steps=500)
    blockers = [client.submit_predict(encode(photo(seed=31)), params)]
    try:
        deadline = time.monotonic() + 30
        while client.status(blockers[0].id).state != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        blockers.append(client.submit_predict(encode(photo(seed=32)), params))  # the queue (max 1) is full
        obj = _plane(bpy, tmp_path, save=False)
        assert bpy.ops.imagedyn.animate_photo() == {"FINISHED"}
        job = jobs.job_for(obj.name)
        deadline = time.monotonic() + 30
        while not job.text.startswith("Backend busy (queue full): retrying in"):
            jobs.process_events()
            assert job.active and time.monotonic() < deadline, (job.state, job.text, job.message)
            time.sleep(0.05)
    finally:
        for blocker in blockers:
            client.cancel(blocker.id)
    assert jobs.wait_idle(90)
    assert job.state == "done", job.message
    assert len(obj.data.shape_keys.key_blocks) == 33


def test_no_backend_running_says_how_to_start_it(bpy, tmp_path, monkeypatch):
    from addon import prefs

    port = free_port()
    monkeypatch.setenv(prefs.ENV_URL, f"http://127.0.0.1:{port}")
    obj = _plane(bpy, tmp_path, save=False)
    before = _snapshot(bpy, obj)
    job = run_animate(obj, timeout=10)
    assert job.state == "failed"
    assert "No Image Dynamics backend answers" in job.message
    assert f"image-dynamics serve --port {port}" in job.message and "Start Backend Automatically" in job.message
    assert _snapshot(bpy, obj) == before


def test_photo_sources_file_packed_generated_and_float(bpy, tmp_path):
    from PIL import Image

    from addon import animate_ops

    path = write_image(tmp_path / "file.png", stripes(32, 20))
    original = open(path, "rb").read()
    image = bpy.data.images.load(path)
    assert animate_ops.image_source(image).encoded() == original  # the file as it is
    image.pack()
    os.remove(path)
    assert animate_ops.image_source(image).encoded() == original  # packed bytes, file gone

    gen = bpy.data.images.new("generated", 24, 16)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 24, 3)).astype(np.uint8)
    rgba = np.ones((16, 24, 4), np.float32)
    rgba[..., :3] = rgb / 255.0
    gen.pixels.foreach_set(rgba[::-1].reshape(-1))  # Blender rows are bottom-up
    source = animate_ops.image_source(gen)
    assert source.data is None
    decoded = np.asarray(Image.open(io.BytesIO(source.encoded())).convert("RGB"))
    assert np.abs(decoded.astype(int) - rgb).max() <= 1  # byte buffer round trip

    flt = bpy.data.images.new("float", 16, 16, float_buffer=True)
    flt.pixels.foreach_set(np.full(16 * 16 * 4, 0.18, np.float32))
    decoded = np.asarray(Image.open(io.BytesIO(animate_ops.image_source(flt).encoded())).convert("RGB"))
    assert np.all(np.abs(decoded.astype(int) - 118) <= 1)  # linear 0.18 is sRGB 118

    missing = bpy.data.images.new("missing", 8, 8)
    missing.source = "FILE"
    missing.filepath = str(tmp_path / "nowhere.png")
    with pytest.raises(animate_ops.AnimateError, match="has no pixels"):
        animate_ops.image_source(missing)


def test_generated_photo_animates_end_to_end(bpy, tmp_path, server, monkeypatch):
    from addon import plane, prefs

    monkeypatch.setenv(prefs.ENV_URL, server)
    obj = _plane(bpy, tmp_path, save=False)
    gen = bpy.data.images.new("painted", 48, 30)
    gen.generated_type = "COLOR_GRID"
    tex = next(n for n in obj.active_material.node_tree.nodes if n.type == "TEX_IMAGE")
    tex.image = gen
    assert plane.find_image(obj) == gen
    job = run_animate(obj)
    assert job.state == "done", job.message
    assert "temporary folder" in job.message  # the .blend is not saved: said so
    from addon.core import spectral

    assert spectral.load_npz(obj.imagedyn.volume_path).source_size == (48, 30)


def test_backend_started_from_preferences_then_killed_mid_job_reports_an_error(bpy, tmp_path, monkeypatch):
    from addon import jobs, prefs

    port = free_port()
    settings = jobs.BackendSettings(url=f"http://127.0.0.1:{port}", auto_start=True, python=str(VENV_PYTHON),
                                       model="tiny", device="cpu", start_timeout=120)
    assert settings.start_command() == [str(VENV_PYTHON), "-m", "backend.cli", "serve", "--host", "127.0.0.1",
                                        "--port", str(port), "--device", "cpu", "--model", "tiny"]
    monkeypatch.setattr(prefs, "current_settings", lambda context=None: settings)
    monkeypatch.chdir(VENV_PYTHON.parents[2])  # 'python -m backend.cli' from the project folder
    obj = _plane(bpy, tmp_path, save=False)
    try:
        job = run_animate(obj, timeout=150)
        assert job.state == "done", job.message + " | " + jobs.SERVER.log_tail()
        assert jobs.SERVER.running()
        # kill it (a crash) in the middle of the next job: an error, not a hang, and the scene is unchanged
        obj.imagedyn.animate_steps = 500
        before = _snapshot(bpy, obj)
        assert bpy.ops.imagedyn.animate_photo() == {"FINISHED"}
        job = jobs.job_for(obj.name)
        _wait_sampling(job)
        kill_process(jobs.SERVER.proc)
        t0 = time.monotonic()
        assert jobs.wait_idle(30)
        assert time.monotonic() - t0 < 15
        assert job.state == "failed" and "The backend the add-on started stopped" in job.message
        assert "exited with code -9" in job.message
        assert _snapshot(bpy, obj) == before
    finally:
        jobs.SERVER.stop()


def test_killing_a_backend_started_by_hand_mid_job_reports_the_lost_connection(bpy, tmp_path, monkeypatch):
    """The add-on's own path for 'connection lost' (the server is gone: every poll is refused)."""
    from addon import jobs
    from addon.core.client import BackendClient

    port = free_port()
    job_key = "photo"

    def work(emit, cancel_event):
        client = BackendClient(f"http://127.0.0.1:{port}")
        return client.wait("0" * 32, cancelled=cancel_event.is_set, poll_interval=0.05)

    job = jobs.start_job(job_key, "Animate Photo", work, lambda j, v: "unexpected")
    t0 = time.monotonic()
    assert jobs.wait_idle(15) and time.monotonic() - t0 < 10
    assert job.state == "failed" and "Lost the connection to the backend" in job.message
    assert f"image-dynamics serve --port {port}" in job.message


def test_unregister_stops_the_backend_the_addon_started_and_removes_the_timer(bpy):
    import sys

    from addon import jobs

    jobs.SERVER.start([sys.executable, "-c", "import time; time.sleep(120)"])
    proc = jobs.SERVER.proc
    jobs.start_job("x", "Test", lambda emit, cancel: cancel.wait(30), lambda j, v: "")
    assert bpy.app.timers.is_registered(jobs.process_events) and proc.poll() is None
    try:
        jobs.unregister()
        assert proc.poll() is not None and not jobs.SERVER.running()
        assert not bpy.app.timers.is_registered(jobs.process_events) and jobs.job_for("x") is None
    finally:
        jobs.SERVER.stop()
        jobs.register()


class _Layout:
    """Records what a draw function puts in a layout (panels cannot draw headless)."""

    def __init__(self):
        self.calls = []

    def row(self, **kwargs):
        return self

    column = row

    def progress(self, factor, text, type="BAR"):
        self.calls.append(("progress", round(factor, 3), text))

    def operator(self, idname, **kwargs):
        self.calls.append(("operator", idname))
        return type("Op", (), {})()

    def label(self, text="", icon="NONE"):
        self.calls.append(("label", text, icon))


def test_progress_bar_and_cancel_in_the_panel_and_the_status_bar_while_a_job_runs(bpy, tmp_path):
    import threading

    from addon import jobs, ui

    obj = _plane(bpy, tmp_path, save=False)
    go = threading.Event()

    def work(emit, cancel_event):
        emit("Sampling 40% (3 s left)", 0.4, "job-1")
        go.wait(10)
        return "value"

    results = []
    job = jobs.start_job(obj.name, "Animate Photo", work, lambda j, v: results.append(v) or "all good")
    with pytest.raises(jobs.BackendError, match="already being processed"):
        jobs.start_job(obj.name, "Animate Photo", work, lambda j, v: "")
    deadline = time.monotonic() + 10
    while job.progress == 0 and time.monotonic() < deadline:
        jobs.process_events()
        time.sleep(0.02)
    panel, status = _Layout(), _Layout()
    ui.draw_animate(panel, obj)
    ui.draw_status_bar(type("Header", (), {"layout": status})(), bpy.context)
    assert panel.calls == [("progress", 0.4, "Sampling 40% (3 s left)"), ("operator", "imagedyn.cancel_animate")]
    assert status.calls == [("progress", 0.4, "Animate Photo 'photo': Sampling 40% (3 s left)"),
                            ("operator", "imagedyn.cancel_animate")]
    go.set()
    assert jobs.wait_idle(10) and results == ["value"] and job.state == "done"
    panel = _Layout()
    ui.draw_animate(panel, obj)
    assert panel.calls == [("operator", "imagedyn.animate_photo"), ("label", "all good", "CHECKMARK")]


def test_new_operators_are_described():
    bpy = fresh_scene()
    from addon import animate_ops

    for cls in animate_ops.classes:
        assert cls.__name__.startswith("IMAGEDYN_OT_") and cls.__doc__ and "REGISTER" in cls.bl_options
        rna = getattr(bpy.ops.imagedyn, cls.bl_idname.split(".")[1]).get_rna_type()
        for prop in rna.properties:
            assert prop.identifier == "rna_type" or prop.description, (cls.__name__, prop.identifier)


def test_check_backend_reports_the_connection_in_the_preferences(bpy, server, monkeypatch):
    from addon import jobs, prefs

    monkeypatch.setenv(prefs.ENV_URL, server)
    assert bpy.ops.imagedyn.backend_check() == {"FINISHED"}
    assert jobs.wait_idle(20)
    job = jobs.job_for(prefs.CHECK_KEY)
    assert job.state == "done" and job.message.startswith("Connected: Image Dynamics backend")
    assert "API 1.1" in job.message and "model tiny-random@seed0" in job.message
    layout = _Layout()
    layout.prop = lambda *a, **k: None
    fake_prefs = type("Prefs", (), {"layout": layout, "auto_start": False})()
    prefs.IMAGEDYN_AP_preferences.draw(fake_prefs, bpy.context)
    assert ("label", jobs.wrap(job.message, 100)[0], "CHECKMARK") in layout.calls
    assert {("operator", f"imagedyn.backend_{name}") for name in ("check", "start", "stop")} <= set(layout.calls)
    monkeypatch.setenv(prefs.ENV_URL, f"http://127.0.0.1:{free_port()}")
    assert bpy.ops.imagedyn.backend_check() == {"FINISHED"}
    assert jobs.wait_idle(20) and job is not jobs.job_for(prefs.CHECK_KEY)
    assert "No Image Dynamics backend answers" in jobs.job_for(prefs.CHECK_KEY).message
