"""Helpers for the backend-service tests: the tiny motion model (built once per process), test photos, the app
in-process, on a real port in a thread, or as a real ``image-dynamics serve`` subprocess (always killed)."""
from __future__ import annotations

import base64
import contextlib
import functools
import io
import os
import pathlib
import re
import selectors
import signal
import socket
import subprocess
import threading
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
LISTENING = re.compile(r"listening on (http://\S+)")


@functools.lru_cache(maxsize=1)
def tiny_models():
    """A ModelManager holding the random tiny motion model (shared: building it takes a few seconds)."""
    from backend.service.models import ModelManager

    manager = ModelManager("cpu")
    manager.load("tiny")
    return manager


def fresh_models():
    """A ModelManager of its own with the same tiny model (for tests that load / unload)."""
    from backend.service.models import ModelManager

    shared = tiny_models()
    model = shared.get()
    manager = ModelManager("cpu", loader=lambda source, device: model.model if source == "tiny"
                           else shared._loader(source, device))
    manager.load("tiny")
    return manager


def photo(width: int = 64, height: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def encode(pixels: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **kw)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def predict_body(data: bytes, **params) -> dict:
    body = {"image": b64(data), "params": {"steps": 2, **params}}
    return body


def make_app(tmp_path, models=None, **overrides):
    from backend.service.app import create_app
    from backend.service.config import ServiceConfig

    config = ServiceConfig(cache_dir=str(tmp_path / "cache"), allowed_hosts=("testserver",), **overrides)
    return create_app(config, models=models or tiny_models())


def wait_state(client, job_id: str, states=("done", "failed", "cancelled"), timeout: float = 60.0) -> dict:
    """Poll a TestClient / httpx client until the job reaches one of ``states``; returns its status."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/v1/jobs/{job_id}").json()
        if status["state"] in states:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {status['state']} after {timeout} s: {status}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def threaded_server(app):
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields (url, server)."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", server
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def start_server_process(tmp_path, *args, timeout: float = 120.0):
    """``python -m backend.cli serve --port 0 --model tiny ...`` as a subprocess; returns (proc, url) once it
    listens. The caller must :func:`stop_process` it (in a ``finally``)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("IMAGE_DYNAMICS_TOKEN", None)
    cmd = [str(VENV_PYTHON), "-m", "backend.cli", "serve", "--port", "0", "--model", "tiny",
           "--cache-dir", str(tmp_path / "service-cache"), *args]
    proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    output = b""
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.5):
                if proc.poll() is not None:
                    break
                continue
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            output += line
            match = LISTENING.search(line.decode("utf-8", "replace"))
            if match:
                _drain(proc)
                return proc, match.group(1)
    finally:
        sel.close()
    stop_process(proc)
    raise RuntimeError(f"the backend did not start within {timeout} s:\n{output.decode('utf-8', 'replace')}")


def _drain(proc) -> None:
    """Keep reading the server's output so a full pipe never blocks it."""
    def run():
        for _line in iter(proc.stdout.readline, b""):
            pass
    threading.Thread(target=run, daemon=True).start()


def stop_process(proc, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def kill_process(proc) -> None:
    """SIGKILL (a crash, no graceful shutdown)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
