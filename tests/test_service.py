"""The backend service in-process (FastAPI TestClient, tiny random motion model): health, predict jobs end to end
(the result equals a direct prediction), progress and ETA, cancel, the bounded queue, the content-hashed cache,
pluggable job kinds with streamed files, models, and the request guard (browsers, hosts, token)."""
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service_helpers import encode, fresh_models, make_app, photo, predict_body, tiny_models, wait_state


@pytest.fixture
def client(tmp_path):
    with TestClient(make_app(tmp_path)) as c:
        yield c


class Gate:
    """A job kind whose steps wait for the test: deterministic progress, queueing and cancel."""

    def __init__(self, name, steps=4, fail=None):
        from pydantic import BaseModel

        from backend.service.jobs import Prepared, register_job_kind

        class Body(BaseModel):
            tag: str = "x"

        self.name, self.steps, self.fail = name, steps, fail
        self.release = threading.Semaphore(0)
        self.started = threading.Event()

        def prepare(body, service):
            return Prepared(body.tag, cache_key=None)

        register_job_kind(name, self.run, request_model=Body, prepare=prepare, description="test gate",
                          result_name="out.txt", media_type="text/plain", replace=True)

    def run(self, ctx, tag):
        self.started.set()
        for i in range(self.steps):
            ctx.progress(i, self.steps, "stepping")
            assert self.release.acquire(timeout=30)
            ctx.publish_file(f"frame_{i:03d}.txt", f"{tag} {i}".encode(), "text/plain")
        if self.fail is not None:
            raise self.fail
        ctx.progress(self.steps, self.steps, "stepping")
        return f"{tag} done".encode()

    def open(self, n=100):
        for _ in range(n):
            self.release.release()


@pytest.fixture
def gate(request):
    from backend.service.jobs import unregister_job_kind

    gates = []

    def make(name="gate", **kw):
        g = Gate(name, **kw)
        gates.append(g)
        return g

    yield make
    for g in gates:
        g.open()
        unregister_job_kind(g.name)


def test_health_reports_versions_device_model_and_limits(client):
    health = client.get("/v1/health").json()
    assert health["service"] == "image-dynamics" and health["api_version"] == "1.1"
    assert health["torch"].startswith("2.") and health["python"].startswith("3.")
    assert health["device"] == "cpu" and health["default_model"] == "tiny-random@seed0"
    assert health["models"] == [{"id": "tiny-random@seed0", "kind": "motion", "source": "tiny", "device": "cpu",
                                 "map_size": [64, 48], "default": True}]
    assert "predict" in health["job_kinds"] and health["queue"] == {"queued": 0, "running": 0, "max_queue": 8}
    assert health["limits"]["max_pixels"] == 50_000_000 and health["auth_required"] is False
    assert client.get("/v1/openapi.json").json()["info"]["title"] == "Image Dynamics backend"


def test_predict_job_result_equals_a_direct_prediction_and_second_run_hits_the_cache(client):
    from addon.core import spectral
    from backend.motion.predictor import PredictParams

    pixels = photo(64, 40, seed=1)
    data = encode(pixels)
    r = client.post("/v1/jobs/predict", json=predict_body(data, steps=3, seed=7))
    assert r.status_code == 202
    created = r.json()
    assert created["state"] in ("queued", "running") and not created["cached"]
    assert created["model"] == "tiny-random@seed0" and created["result_url"] is None
    status = wait_state(client, created["id"])
    assert status["state"] == "done" and status["progress"] == 1.0 and status["error"] is None
    result = client.get(status["result_url"])
    assert result.status_code == 200 and result.headers["content-type"] == "application/octet-stream"
    path = client.app.state.service.cache.root + "/check.npz"
    with open(path, "wb") as fh:
        fh.write(result.content)
    volume = spectral.load_npz(path)
    expected = tiny_models().get().model.predict(pixels, PredictParams(steps=3, seed=7))
    assert volume.source_size == (64, 40) and volume.provenance["seed"] == 7
    assert volume.provenance["model"] == "tiny-random@seed0"
    np.testing.assert_allclose(volume.coeffs, expected.coeffs, rtol=1e-5, atol=1e-5)

    again = client.post("/v1/jobs/predict", json=predict_body(data, steps=3, seed=7)).json()
    assert again["cached"] and again["state"] == "done" and again["id"] != created["id"]
    assert client.get(f"/v1/jobs/{again['id']}/result").content == result.content
    other = client.post("/v1/jobs/predict", json=predict_body(data, steps=3, seed=8)).json()
    assert not other["cached"]
    assert wait_state(client, other["id"])["state"] == "done"
    assert client.get(f"/v1/jobs/{other['id']}/result").content != result.content


def test_large_photo_is_downscaled_but_keeps_its_source_size(tmp_path):
    from addon.core import spectral

    with TestClient(make_app(tmp_path, max_side=128)) as client:
        job = client.post("/v1/jobs/predict", json=predict_body(encode(photo(600, 150)))).json()
        assert wait_state(client, job["id"])["state"] == "done"
        (tmp_path / "v.npz").write_bytes(client.get(f"/v1/jobs/{job['id']}/result").content)
    assert spectral.load_npz(tmp_path / "v.npz").source_size == (600, 150)


def test_progress_stage_eta_and_streamed_files(tmp_path, gate):
    g = gate(steps=4)
    with TestClient(make_app(tmp_path)) as client:
        _progress_stage_eta_and_streamed_files(client, g)


def _progress_stage_eta_and_streamed_files(client, g):
    job = client.post("/v1/jobs/gate", json={"tag": "t"}).json()
    assert job["kind"] == "gate" and job["state"] in ("queued", "running")
    assert g.started.wait(10)
    s = wait_state(client, job["id"], states=("running",))
    assert (s["stage"], s["done"], s["total"], s["progress"]) == ("stepping", 0, 4, 0.0)
    assert s["eta_seconds"] is None  # no rate yet
    g.release.release()
    deadline = time.monotonic() + 10
    while client.get(f"/v1/jobs/{job['id']}").json()["done"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.05)
    g.release.release()
    while client.get(f"/v1/jobs/{job['id']}").json()["done"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    s = client.get(f"/v1/jobs/{job['id']}").json()
    assert s["done"] == 2 and s["progress"] == 0.5 and s["eta_seconds"] is not None and s["eta_seconds"] > 0
    files = client.get(f"/v1/jobs/{job['id']}/files").json()
    assert [f["name"] for f in files["files"]] == ["frame_000.txt", "frame_001.txt"] and not files["complete"]
    assert client.get(f"/v1/jobs/{job['id']}/files/frame_001.txt").text == "t 1"
    assert client.get(f"/v1/jobs/{job['id']}/result").json()["error"]["code"] == "not_ready"
    g.open()
    s = wait_state(client, job["id"])
    assert s["state"] == "done" and s["files"] == [f"frame_{i:03d}.txt" for i in range(4)]
    assert client.get(f"/v1/jobs/{job['id']}/files").json()["complete"]
    r = client.get(f"/v1/jobs/{job['id']}/result")
    assert r.text == "t done" and r.headers["content-type"].startswith("text/plain")
    missing = client.get(f"/v1/jobs/{job['id']}/files/frame_999.txt")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_file"


def test_cancel_running_and_queued_jobs(tmp_path, gate):
    g = gate(steps=3)
    with TestClient(make_app(tmp_path)) as client:
        _cancel_running_and_queued_jobs(client, g)


def _cancel_running_and_queued_jobs(client, g):
    running = client.post("/v1/jobs/gate", json={"tag": "a"}).json()
    assert g.started.wait(10)
    queued = client.post("/v1/jobs/gate", json={"tag": "b"}).json()
    s = client.get(f"/v1/jobs/{queued['id']}").json()
    assert s["state"] == "queued" and s["queue_position"] == 0
    c = client.post(f"/v1/jobs/{queued['id']}/cancel").json()
    assert c["state"] == "cancelled"  # dropped at once
    c = client.post(f"/v1/jobs/{running['id']}/cancel").json()
    assert c["state"] == "running" and c["stage"] == "cancelling"
    g.release.release()  # the next progress report raises Cancelled
    assert wait_state(client, running["id"])["state"] == "cancelled"
    r = client.get(f"/v1/jobs/{running['id']}/result")
    assert r.status_code == 409 and r.json()["error"]["code"] == "job_cancelled"
    assert client.post(f"/v1/jobs/{running['id']}/cancel").json()["state"] == "cancelled"  # idempotent
    g.open()
    after = client.post("/v1/jobs/gate", json={"tag": "c"}).json()  # the worker is still serving
    assert wait_state(client, after["id"])["state"] == "done"


def test_cancel_a_running_prediction_stops_within_a_step(client):
    job = client.post("/v1/jobs/predict", json=predict_body(encode(photo()), steps=500)).json()
    s = wait_state(client, job["id"], states=("running",))
    deadline = time.monotonic() + 30
    while s["done"] < 1 and time.monotonic() < deadline:
        s = client.get(f"/v1/jobs/{job['id']}").json()
        time.sleep(0.02)
    assert s["stage"] == "sampling" and s["total"] == 500
    client.post(f"/v1/jobs/{job['id']}/cancel")
    t0 = time.monotonic()
    final = wait_state(client, job["id"], timeout=30)
    assert final["state"] == "cancelled" and final["done"] < 500
    assert time.monotonic() - t0 < 10


def test_queue_limit_gives_429_with_retry_after_and_loses_nothing(tmp_path, gate):
    g = gate(steps=1)
    with TestClient(make_app(tmp_path, max_queue=2)) as client:
        first = client.post("/v1/jobs/gate", json={"tag": "first"}).json()["id"]
        assert g.started.wait(10)
        time.sleep(0.2)  # a gate job takes at least 0.2 s
        g.release.release()
        assert wait_state(client, first)["state"] == "done"  # the service now knows how long a gate job takes
        ids = [client.post("/v1/jobs/gate", json={"tag": str(i)}).json()["id"] for i in range(1)]
        wait_state(client, ids[0], states=("running",))
        ids += [client.post("/v1/jobs/gate", json={"tag": str(i)}).json()["id"] for i in range(1, 3)]
        queued = [client.get(f"/v1/jobs/{i}").json() for i in ids[1:]]
        assert [q["queue_position"] for q in queued] == [0, 1]
        # the running job's rest + the average duration of each job ahead
        assert 0.4 <= queued[0]["eta_seconds"] < queued[1]["eta_seconds"]
        refused = client.post("/v1/jobs/gate", json={"tag": "x"})
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "busy"
        assert int(refused.headers["retry-after"]) >= 1
        assert client.get("/v1/health").json()["queue"] == {"queued": 2, "running": 1, "max_queue": 2}
        g.open()
        assert [wait_state(client, i)["state"] for i in ids] == ["done"] * 3
        assert [client.get(f"/v1/jobs/{i}/result").text for i in ids] == ["0 done", "1 done", "2 done"]


def test_failing_and_crashing_jobs_are_reported_and_the_worker_keeps_serving(tmp_path, gate):
    cases = (("bad", ValueError("the volume has no frames"), "job_failed"),
             ("buggy", ZeroDivisionError("division by zero"), "internal_error"))
    for name, exc, _code in cases:
        gate(name, steps=1, fail=exc).open()
    with TestClient(make_app(tmp_path)) as client:
        _failing_jobs(client, cases)


def _failing_jobs(client, cases):
    for name, exc, code in cases:
        s = wait_state(client, client.post(f"/v1/jobs/{name}", json={}).json()["id"])
        assert s["state"] == "failed" and s["error"]["code"] == code and str(exc) in s["error"]["message"]
        r = client.get(f"/v1/jobs/{s['id']}/result")
        assert r.status_code == 409 and r.json()["error"]["code"] == "job_failed"
    job = client.post("/v1/jobs/predict", json=predict_body(encode(photo()))).json()
    assert wait_state(client, job["id"])["state"] == "done"


def test_job_kinds_are_listed_with_their_request_schema(client):
    kinds = {k["name"]: k for k in client.get("/v1/job-kinds").json()["kinds"]}
    assert kinds["predict"]["result_name"] == "volume.npz"
    assert set(kinds["predict"]["request_schema"]["properties"]) == {"image", "params", "model", "moves"}


def test_predict_params_are_defined_once_and_the_schema_follows_them():
    """addon.core.protocol.PredictParams is what the add-on sends, the service accepts and the predictor samples
    with: the request schema takes its fields, defaults and ranges from it."""
    import dataclasses

    from addon.core.protocol import PREDICT_LIMITS, PredictParams
    from backend.motion.predictor import PredictParams as PredictorParams
    from backend.service.schemas import PredictParamsModel

    assert PredictorParams is PredictParams
    fields = {f.name: f.default for f in dataclasses.fields(PredictParams)}
    assert {name: f.default for name, f in PredictParamsModel.model_fields.items()} == fields
    schema = PredictParamsModel.model_json_schema()["properties"]
    for name, limit in PREDICT_LIMITS.items():
        low = schema[name].get("exclusiveMinimum" if limit.low_open else "minimum")
        assert (low, schema[name]["maximum"]) == (limit.low, limit.high), name
    assert schema["sampler"]["enum"] == ["ddim", "dpm"]
    assert PredictParamsModel(seed=2 ** 40).to_params() == PredictParams(seed=2 ** 40)
    for bad, match in ((dict(fps=0.0), "fps=0.0: use 0 < fps"), (dict(seed=2 ** 63), "seed"),
                       (dict(steps=2.5), "steps=2.5"), (dict(loop=True), "loop=True"), (dict(sampler="x"), "ddim")):
        with pytest.raises(ValueError, match=match):
            PredictParams(**bad).validate()
        if not isinstance(next(iter(bad.values())), bool):  # pydantic's lax mode reads true as 1
            with pytest.raises(ValueError):
                PredictParamsModel(**bad)
    assert PredictParams.from_dict({"steps": 3, "sampler": "dpm"}) == PredictParams(steps=3, sampler="dpm")


def test_register_job_kind_refuses_bad_names_and_duplicates():
    from backend.service.jobs import register_job_kind
    from backend.service.schemas import PredictJobRequest

    with pytest.raises(ValueError, match="must match"):
        register_job_kind("Bad Name", print, request_model=PredictJobRequest, prepare=print)
    with pytest.raises(ValueError, match="already registered"):
        register_job_kind("predict", print, request_model=PredictJobRequest, prepare=print)


def test_models_list_load_unload_and_no_model(tmp_path):
    with TestClient(make_app(tmp_path, models=fresh_models())) as client:
        assert [m["id"] for m in client.get("/v1/models").json()["models"]] == ["tiny-random@seed0"]
        again = client.post("/v1/models", json={"source": "tiny"})
        assert again.status_code == 201 and again.json()["id"] == "tiny-random@seed0"
        assert len(client.get("/v1/models").json()["models"]) == 1  # same id: reused
        bad = client.post("/v1/models", json={"source": str(tmp_path / "missing.pt")})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_model"
        assert "missing.pt" in bad.json()["error"]["message"]
        gone = client.delete("/v1/models/tiny-random@seed0")
        assert gone.status_code == 200 and gone.json()["id"] == "tiny-random@seed0"
        assert client.get("/v1/models").json() == {"models": [], "default": None}
        r = client.post("/v1/jobs/predict", json=predict_body(encode(photo())))
        assert r.status_code == 409 and r.json()["error"]["code"] == "no_model"
        assert "--model" in r.json()["error"]["message"]
        r = client.delete("/v1/models/tiny-random@seed0")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_model"


def test_browser_pages_other_hosts_and_missing_tokens_are_refused(tmp_path):
    with TestClient(make_app(tmp_path)) as client:
        r = client.get("/v1/models", headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin"
        r = client.post("/v1/jobs/predict", json=predict_body(encode(photo())),
                        headers={"Origin": "http://127.0.0.1:8765"})
        assert r.status_code == 403  # even a page served from this computer, by another program
        same = {"Origin": "http://127.0.0.1:8765", "Host": "127.0.0.1:8765"}
        assert client.get("/v1/models", headers=same).status_code == 200  # the backend's own /v1/docs page
        r = client.get("/v1/health", headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin"
        r = client.get("/v1/health", headers={"Host": "attacker.example:8765"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "bad_host"
        assert client.get("/v1/health", headers={"Host": "localhost:8765"}).status_code == 200
        assert client.get("/v1/health", headers={"Host": "[::1]:8765"}).status_code == 200
    with TestClient(make_app(tmp_path, token="s3cret", allowed_origins=("https://ok.example",))) as client:
        assert client.get("/v1/health").json()["auth_required"] is True  # health stays open
        r = client.get("/v1/models")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert client.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert client.get("/v1/models", headers=ok).status_code == 200
        assert client.get("/v1/models", headers={**ok, "Origin": "https://ok.example"}).status_code == 200


def test_result_cache_evicts_least_recently_used(tmp_path):
    from backend.service.cache import ResultCache, content_key

    cache = ResultCache(str(tmp_path / "c"), max_bytes=250)
    keys = [content_key("k", i) for i in range(3)]
    assert len(set(keys)) == 3 and content_key(b"a", {"x": 1, "y": 2}) == content_key(b"a", {"y": 2, "x": 1})
    for key in keys:
        src = tmp_path / "src"
        src.write_bytes(b"x" * 100)
        time.sleep(0.01)
        cache.put(key, str(src), ".bin")
    assert cache.get(keys[0], ".bin") is None and cache.get(keys[2], ".bin") is not None
    assert cache.size_bytes() == 200


def test_serve_command_refuses_a_busy_port():
    import socket

    from backend.cli import UserError, build_parser
    from backend.service.commands import _bind

    args = build_parser().parse_args(["serve", "--port", "0", "--model", "tiny"])
    assert (args.host, args.port, args.device, args.model) == ("127.0.0.1", 0, "auto", "tiny")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        with pytest.raises(UserError, match="already in use"):
            _bind("127.0.0.1", busy.getsockname()[1])
