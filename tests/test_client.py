"""The add-on's HTTP client and wire protocol (no bpy) against a real server on a loopback port: jobs with progress,
cancel, the cache, and one clear message for each way the link fails (down, busy, wrong program, wrong version,
token, silence, a server that goes away mid-job). Also the PNG encoder used for unsaved photos."""
import http.server
import io
import json
import socket
import threading
import time

import numpy as np
import pytest

from addon.core import png, protocol
from addon.core.client import BackendClient
from addon.core.protocol import BackendError, JobCancelled
from service_helpers import encode, free_port, make_app, photo, threaded_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("client"), max_queue=1)
    with threaded_server(app) as (url, _server):
        yield url


def test_health_job_progress_result_and_cache(server):
    from addon.core import spectral

    client = BackendClient(server)
    health = client.health()
    assert health["api_version"] == "1.1" and health["default_model"] == "tiny-random@seed0"
    data = encode(photo(48, 32, seed=3))
    params = protocol.PredictParams(steps=4, seed=11)
    job = client.submit_predict(data, params)
    assert job.kind == "predict" and job.state in ("queued", "running") and not job.cached
    seen = []
    final = client.wait(job.id, on_status=seen.append, poll_interval=0.02)
    assert final.state == "done" and final.progress == 1.0 and seen[-1] == final
    progress = [s.progress for s in seen if s.state == "running" and s.stage == "sampling"]
    assert progress == sorted(progress)
    blob = client.result(job.id)
    volume = spectral.volume_from_arrays(dict(np.load(io.BytesIO(blob))))
    assert volume.source_size == (48, 32) and volume.provenance["seed"] == 11
    again = client.submit_predict(data, params)
    assert again.cached and again.state == "done" and client.result(again.id) == blob


def test_cancel_through_wait_cancels_the_backend_job(server):
    client = BackendClient(server)
    job = client.submit_predict(encode(photo()), protocol.PredictParams(steps=500))
    flag = threading.Event()

    def on_status(status):
        if status.state == "running" and status.progress > 0:
            flag.set()

    with pytest.raises(JobCancelled):
        client.wait(job.id, on_status=on_status, cancelled=flag.is_set, poll_interval=0.02, timeout=60)
    deadline = time.monotonic() + 20
    while client.status(job.id).state != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.status(job.id).state == "cancelled"


def test_busy_backend_gives_a_busy_error(server):
    client = BackendClient(server)
    first = client.submit_predict(encode(photo(seed=20)), protocol.PredictParams(steps=500))
    try:
        deadline = time.monotonic() + 20
        while client.status(first.id).state != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        second = client.submit_predict(encode(photo(seed=21)), protocol.PredictParams(steps=500))
        with pytest.raises(BackendError) as info:
            client.submit_predict(encode(photo(seed=22)), protocol.PredictParams(steps=2))
        assert info.value.code == "busy" and info.value.status == 429 and info.value.retry_after >= 1
        assert "busy" in info.value.message and "Try again" in info.value.message
        waits = []

        def on_busy(seconds):  # the queue drains while the client waits
            waits.append(seconds)
            client.cancel(second.id)

        third = client.submit_predict(encode(photo(seed=22)), protocol.PredictParams(steps=2), busy_wait=30,
                                      on_busy=on_busy)
        assert waits == [1.0] and third.state == "queued"  # first retry after 1 s
        client.cancel(third.id)
        fourth = client.submit_predict(encode(photo(seed=23)), protocol.PredictParams(steps=2))
        with pytest.raises(JobCancelled):  # cancelled while waiting for room
            client.submit_predict(encode(photo(seed=24)), protocol.PredictParams(steps=2), busy_wait=30,
                                  cancelled=lambda: True)
        client.cancel(fourth.id)
    finally:
        client.cancel(first.id)


def test_no_backend_says_how_to_start_it_quickly():
    port = free_port()
    client = BackendClient(f"127.0.0.1:{port}")
    assert client.url == f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    with pytest.raises(BackendError) as info:
        client.health()
    assert time.monotonic() - t0 < 3.0
    assert info.value.code == "unreachable"
    assert f"image-dynamics serve --port {port}" in info.value.message
    assert "Start Backend Automatically" in info.value.message


class _Fake(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the class's (status, body)."""

    reply = (200, b"{}")

    def do_GET(self):  # noqa: N802
        status, body = self.reply
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake():
    handler = type("Handler", (_Fake,), {})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("status, body, code, words", [
    (200, {"service": "image-dynamics", "api_version": "2.0", "version": "9.0"}, "incompatible",
     "speaks API version 2.0"),
    (200, {"service": "something-else"}, "not_image_dynamics", "not an Image Dynamics backend"),
    (404, {"detail": "Not Found"}, "not_image_dynamics", "no /v1/health"),
    (502, "<html>Bad gateway</html>", "http_error", "HTTP 502"),
    (200, "<html>a web page</html>", "bad_response", "not JSON"),
])
def test_wrong_program_or_version_is_named(fake, status, body, code, words):
    handler, url = fake
    handler.reply = (status, body.encode() if isinstance(body, str) else json.dumps(body).encode())
    with pytest.raises(BackendError) as info:
        BackendClient(url).health()
    assert info.value.code == code and words in info.value.message


def test_silent_backend_times_out_instead_of_hanging():
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        client = BackendClient(f"http://127.0.0.1:{sock.getsockname()[1]}", read_timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(BackendError) as info:
            client.health()
        assert info.value.code == "timeout" and time.monotonic() - t0 < 3.0
        assert "did not answer within 0.5 s" in info.value.message


def test_localhost_never_goes_through_a_proxy(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a dead proxy: any proxied request would fail
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert BackendClient(server).health()["service"] == "image-dynamics"
    assert BackendClient(server).session.trust_env is False
    assert BackendClient("http://gpu-box.example:8765").session.trust_env is True  # remote: proxies apply


def test_token_is_sent_and_a_missing_one_is_explained(tmp_path):
    app = make_app(tmp_path, token="t0ken")
    with threaded_server(app) as (url, _server):
        assert BackendClient(url).health()["auth_required"] is True  # health is open
        with pytest.raises(BackendError) as info:
            BackendClient(url).models()
        assert info.value.code == "unauthorized" and "Backend Token" in info.value.message
        assert BackendClient(url, token="t0ken").models()["default"] == "tiny-random@seed0"


def test_backend_going_away_mid_job_is_reported_not_a_hang(tmp_path):
    app = make_app(tmp_path)
    with threaded_server(app) as (url, userver):
        client = BackendClient(url)
        job = client.submit_predict(encode(photo(seed=5)), protocol.PredictParams(steps=500))

        def stop_when_running(status):
            if status.state == "running":
                userver.should_exit = True
        t0 = time.monotonic()
        with pytest.raises(BackendError) as info:
            client.wait(job.id, on_status=stop_when_running, poll_interval=0.05, timeout=60)
        app.state.service.jobs.stop()
    assert info.value.code == "connection_lost" and "Lost the connection" in info.value.message
    assert time.monotonic() - t0 < 30


def test_protocol_helpers():
    assert protocol.normalize_url("localhost:9000/v1/") == "http://localhost:9000"
    with pytest.raises(BackendError, match="not a backend URL"):
        protocol.normalize_url("ftp://x")
    assert protocol.is_loopback_url("http://[::1]:8765") and not protocol.is_loopback_url("http://10.0.0.2:1")
    assert all(protocol.is_loopback(h) for h in ("localhost", "LOCALHOST", "127.0.0.5", "::1", "[::1]"))
    assert not any(protocol.is_loopback(h) for h in ("10.0.0.2", "0.0.0.0", "example.com", ""))
    assert protocol.format_eta(None) == "" and protocol.format_eta(75.4) == "1 min 15 s"
    running = protocol.JobStatus.from_json({"id": "a", "kind": "predict", "state": "running", "stage": "sampling",
                                            "progress": 0.4, "eta_seconds": 12.2})
    assert protocol.status_text(running) == "Sampling 40% (12 s left)"
    queued = protocol.JobStatus.from_json({"id": "a", "kind": "predict", "state": "queued", "stage": "queued",
                                           "progress": 0, "queue_position": 2})
    assert protocol.status_text(queued) == "Queued (2 jobs ahead)"
    with pytest.raises(BackendError) as info:
        protocol.JobStatus.from_json({"state": "done"})
    assert info.value.code == "bad_response"
    err = protocol.error_from_response(422, b'{"error": {"code": "invalid_image", "message": "Not an image"}}', "u")
    assert (err.code, err.message, err.status) == ("invalid_image", "Not an image", 422)


def test_png_encoder_round_trips_and_flips_blender_rows():
    from PIL import Image

    rgb = photo(37, 23, seed=9)
    decoded = np.asarray(Image.open(io.BytesIO(png.encode_png(rgb))).convert("RGB"))
    assert np.array_equal(decoded, rgb)
    # Blender pixels: flat RGBA floats, bottom row first
    rgba = np.ones((23, 37, 4), np.float32)
    rgba[..., :3] = rgb / 255.0
    flat = rgba[::-1].reshape(-1)
    assert np.array_equal(png.pixels_to_rgb8(flat, 37, 23), rgb)
    linear = np.array([0.0, 0.0031308, 0.18, 1.0], np.float32)
    assert np.allclose(png.linear_to_srgb(linear), [0.0, 0.04045, 0.46135, 1.0], atol=1e-4)
