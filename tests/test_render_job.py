"""The service's ``render`` job (backend/service/render.py) in-process: frames come out in the requested order and
number, published one by one and zipped at the end, equal to a direct render; modal coordinates and loops; bad
requests get documented 4xx; a cancelled job ends without a result; a repeated request is served from the cache;
the renderer is one of the service's models (listed, unloaded, reloaded)."""
import base64
import io
import threading
import zipfile

import numpy as np
import pytest
from fastapi.testclient import TestClient

import backend.service.render  # noqa: F401  (registers the 'render' kind before the app is made)
from addon.core.spectral import SpectralVolume, resize_bilinear, save_npz
from backend.render.frames import LoopSettings
from backend.render.render import RenderSettings, frame_filename, render_sequence
from service_helpers import b64, encode, fresh_models, make_app, wait_state

W, H, K = 48, 32, 4


def _volume():
    rng = np.random.default_rng(0)
    coeffs = resize_bilinear(rng.normal(size=(K, 4, 3, 4)) * 2, H, W).astype(np.float32)
    return SpectralVolume(coeffs, fps=20.0, num_frames=40, source_size=(W, H))


def _volume_b64(volume) -> str:
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "v.npz")
        save_npz(path, volume)
        with open(path, "rb") as fh:
            return base64.b64encode(fh.read()).decode("ascii")


def _photo():
    return np.random.default_rng(1).integers(0, 256, size=(H, W, 3), dtype=np.uint8)


@pytest.fixture
def client(tmp_path):
    with TestClient(make_app(tmp_path, models=fresh_models())) as c:  # its own models: renderers come and go
        yield c


def _body(**kw):
    body = {"image": b64(encode(_photo())), "volume": _volume_b64(_volume()), "frames": [5, 3, 9],
            "loop": {"loop_frames": 40, "phase_frame": 1}, "renderer": "tiny"}
    body.update(kw)
    return body


def _zip_frames(data: bytes) -> dict:
    from PIL import Image

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: np.asarray(Image.open(io.BytesIO(zf.read(n)))) for n in zf.namelist()}


def test_render_job_streams_the_requested_frames_in_order_and_matches_a_direct_render(client, tmp_path):
    job = client.post("/v1/jobs/render", json=_body()).json()
    assert job["kind"] == "render"
    s = wait_state(client, job["id"])
    assert s["state"] == "done", s
    names = [frame_filename(f) for f in (5, 3, 9)]
    assert s["files"] == names  # published in the requested order
    files = client.get(f"/v1/jobs/{job['id']}/files").json()
    assert [f["name"] for f in files["files"]] == names and files["complete"]
    frames = _zip_frames(client.get(f"/v1/jobs/{job['id']}/result").content)
    assert sorted(frames) == sorted(names)
    model = client.app.state.service.models.renderer("tiny").model
    vol = _volume()
    q = LoopSettings(loop_frames=40, phase_frame=1).coordinates(K, (5, 3, 9))
    direct = render_sequence(model, _photo(), vol, q, RenderSettings(frames=(5, 3, 9)), tmp_path / "direct")
    from PIL import Image

    for name, path in zip(names, direct):
        assert np.array_equal(frames[name], np.asarray(Image.open(path)))
        streamed = client.get(f"/v1/jobs/{job['id']}/files/{name}").content
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(streamed))), frames[name])
    assert not np.array_equal(frames[names[0]], frames[names[1]])  # different times, different frames
    again = client.post("/v1/jobs/render", json=_body()).json()
    assert again["state"] == "done" and again["cached"]
    assert client.get(f"/v1/jobs/{again['id']}/result").content == client.get(
        f"/v1/jobs/{job['id']}/result").content


def test_modal_coordinates_zero_motion_give_the_photo(client):
    modal = np.zeros((2, K, 2)).tolist()
    job = client.post("/v1/jobs/render", json=_body(frames=[0, 1], loop=None, modal=modal)).json()
    assert wait_state(client, job["id"])["state"] == "done"
    frames = _zip_frames(client.get(f"/v1/jobs/{job['id']}/result").content)
    assert list(frames) == [frame_filename(0), frame_filename(1)]
    assert all(np.array_equal(f, _photo()) for f in frames.values())  # the untrained renderer at rest


def test_motion_mask_holds_still_what_it_masks_and_is_part_of_the_cache_key(client):
    still = np.zeros((4, 6), np.uint8)  # black: nothing moves; any size, stretched over the frame
    job = client.post("/v1/jobs/render", json=_body(motion_mask=b64(encode(still)))).json()
    assert wait_state(client, job["id"])["state"] == "done"
    frames = _zip_frames(client.get(f"/v1/jobs/{job['id']}/result").content)
    assert all(np.array_equal(f, _photo()) for f in frames.values())
    free = client.post("/v1/jobs/render", json=_body(motion_mask=b64(encode(still + 255)))).json()
    assert not free["cached"] and wait_state(client, free["id"])["state"] == "done"
    moving = _zip_frames(client.get(f"/v1/jobs/{free['id']}/result").content)
    assert not np.array_equal(moving[frame_filename(5)], _photo())


@pytest.mark.parametrize("change, code", [
    ({"modal": np.zeros((3, K, 2)).tolist()}, "invalid_motion"),  # both loop and modal
    ({"loop": None}, "invalid_motion"),  # neither
    ({"loop": None, "modal": np.zeros((3, K + 1, 2)).tolist()}, "invalid_render"),  # K mismatch
    ({"loop": None, "modal": np.zeros((2, K, 2)).tolist()}, "invalid_render"),  # 3 frames, 2 rows
    ({"frames": [1, 1, 2]}, "invalid_render"),
    ({"volume": b64(b"not an npz")}, "invalid_volume"),
    ({"image": b64(b"not an image")}, "invalid_image"),
    ({"renderer": "/nonexistent/renderer.pt"}, "invalid_model"),
    ({"motion_mask": b64(b"not an image")}, "invalid_mask"),
    ({"motion_mask": "%%%"}, "invalid_base64"),
])
def test_bad_render_requests_get_a_422_naming_the_problem(client, change, code):
    r = client.post("/v1/jobs/render", json=_body(**change))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code


def test_cancelled_render_job_has_no_result(client, monkeypatch):
    import backend.render.render as render_module

    release, reached = threading.Event(), threading.Event()
    original = render_module.write_frame
    count = {"n": 0}

    def slow_write(path, rgb, fmt):
        original(path, rgb, fmt)
        count["n"] += 1
        if count["n"] == 2:
            reached.set()
            assert release.wait(30)

    monkeypatch.setattr(render_module, "write_frame", slow_write)
    job = client.post("/v1/jobs/render", json=_body(frames=list(range(10)))).json()
    assert reached.wait(30)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["stage"] == "cancelling"
    release.set()
    s = wait_state(client, job["id"])
    assert s["state"] == "cancelled" and s["done"] < 10
    r = client.get(f"/v1/jobs/{job['id']}/result")
    assert r.status_code == 409 and r.json()["error"]["code"] == "job_cancelled"


def test_the_renderer_is_a_listed_unloadable_model(client):
    job = client.post("/v1/jobs/render", json=_body()).json()
    assert wait_state(client, job["id"])["state"] == "done"
    listed = client.get("/v1/models").json()
    renderer = next(m for m in listed["models"] if m["kind"] == "renderer")
    assert renderer == {"id": "gid-renderer@tiny", "kind": "renderer", "source": "tiny", "device": "cpu",
                        "map_size": None, "default": False}
    assert listed["default"] == "tiny-random@seed0"  # the default stays the motion model
    r = client.post("/v1/jobs/predict", json={"image": _body()["image"], "model": renderer["id"]})
    assert r.status_code == 422 and "not a motion model" in r.json()["error"]["message"]
    assert client.delete(f"/v1/models/{renderer['id']}").json()["kind"] == "renderer"
    assert [m["kind"] for m in client.get("/v1/models").json()["models"]] == ["motion"]
    again = client.post("/v1/jobs/render", json=_body(frames=[7])).json()  # loaded again on demand
    assert wait_state(client, again["id"])["state"] == "done"
    loaded = client.post("/v1/models", json={"source": "tiny", "kind": "renderer"})
    assert loaded.status_code == 201 and loaded.json()["id"] == "gid-renderer@tiny"  # the same one, reused
    assert len(client.get("/v1/models").json()["models"]) == 2
