"""HTTP client of the backend service (pure Python + requests, no bpy): short timeouts, no proxies for this
computer, every failure raised as :class:`~addon.core.protocol.BackendError` with a message for the user.

Call it from a worker thread, never from Blender's main thread: :meth:`BackendClient.wait` blocks while it polls.
"""
from __future__ import annotations

import logging
import os
import time

from . import protocol
from .protocol import BackendError, JobCancelled, JobStatus

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0  # seconds to open a connection: the backend is local or on the LAN
READ_TIMEOUT = 10.0  # seconds for a small answer (health, status, cancel)
UPLOAD_TIMEOUT = 120.0  # seconds to send a photo and get the 202 (decoding happens before it)
DOWNLOAD_TIMEOUT = 120.0


class BackendClient:
    def __init__(self, url: str, token: str | None = None, connect_timeout: float = CONNECT_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT):
        import requests

        self._requests = requests
        self.url = protocol.normalize_url(url)
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.session = requests.Session()
        if protocol.is_loopback_url(self.url):
            self.session.trust_env = False  # never send requests for this computer through a proxy
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["User-Agent"] = "image-dynamics-blender"

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- transport ------------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, json=None, read_timeout: float | None = None):
        read = read_timeout or self.read_timeout
        requests = self._requests
        try:
            response = self.session.request(method, self.url + path, json=json,
                                            timeout=(self.connect_timeout, read))
        except requests.exceptions.ConnectTimeout:
            raise protocol.unreachable(self.url) from None
        except requests.exceptions.Timeout:
            raise protocol.timed_out(self.url, read) from None
        except requests.exceptions.ConnectionError as exc:
            if _is_refused(exc):
                raise protocol.unreachable(self.url) from None
            raise BackendError("unreachable", f"Cannot reach the backend at {self.url} ({_reason(exc)}). "
                                              f"{protocol.start_hint(protocol.port_of(self.url))}") from None
        except requests.exceptions.RequestException as exc:
            raise BackendError("request_failed", f"Request to the backend at {self.url} failed: {exc}") from None
        if response.status_code >= 400:
            raise protocol.error_from_response(response.status_code, response.content, self.url,
                                               response.headers.get("Retry-After"))
        return response

    def _json(self, method: str, path: str, **kwargs):
        response = self._call(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise BackendError("bad_response", f"{self.url} answered {path} with something that is not JSON: is "
                                                "it an Image Dynamics backend? Check the URL") from None

    # -- API ------------------------------------------------------------------------------------------------------

    def health(self) -> dict:
        """The backend's /v1/health after the version check (BackendError ``incompatible`` etc.)."""
        try:
            data = self._json("GET", protocol.API_PREFIX + "/health")
        except BackendError as exc:
            if exc.status == 404:
                raise BackendError("not_image_dynamics", f"{self.url} answers but has no /v1/health: it is not "
                                                         "an Image Dynamics backend (or a much older one). Check "
                                                         "the port, or update the backend") from None
            raise
        return protocol.check_health(data, self.url)

    def submit(self, kind: str, body: dict, busy_wait: float = 0.0, on_busy=None, cancelled=None) -> JobStatus:
        """Create a job. While the backend answers 429 (queue full), retry for up to ``busy_wait`` seconds (after
        1, 2, 4, 8, then every 10 s, or sooner when the backend's Retry-After says so), telling
        ``on_busy(seconds)`` before each wait; ``cancelled()`` turning true raises JobCancelled."""
        deadline = time.monotonic() + busy_wait
        attempt = 0
        while True:
            try:
                data = self._json("POST", f"{protocol.API_PREFIX}/jobs/{kind}", json=body,
                                  read_timeout=UPLOAD_TIMEOUT)
                return JobStatus.from_json(data)
            except BackendError as exc:
                if exc.code != "busy" or time.monotonic() >= deadline:
                    raise
                # 1, 2, 4, 8, 10, 10 ... s, never past the backend's Retry-After nor the deadline
                delay = min(2.0 ** attempt, 10.0, exc.retry_after or 10.0, max(0.5, deadline - time.monotonic()))
                attempt += 1
                if on_busy is not None:
                    on_busy(delay)
                _sleep(delay, cancelled)
                if cancelled is not None and cancelled():
                    raise JobCancelled() from None

    def submit_predict(self, image: bytes, params: protocol.PredictParams | None = None,
                       model: str | None = None, moves: bytes | None = None, **retry) -> JobStatus:
        """A predict job for the photo's file bytes, with the motion brush's hint ``moves`` (PNG bytes) when given
        (``retry``: see :meth:`submit`)."""
        return self.submit("predict", protocol.predict_body(image, params, model, moves), **retry)

    def status(self, job_id: str) -> JobStatus:
        return JobStatus.from_json(self._json("GET", f"{protocol.API_PREFIX}/jobs/{job_id}"))

    def cancel(self, job_id: str) -> JobStatus:
        return JobStatus.from_json(self._json("POST", f"{protocol.API_PREFIX}/jobs/{job_id}/cancel"))

    def result(self, job_id: str) -> bytes:
        return self._call("GET", f"{protocol.API_PREFIX}/jobs/{job_id}/result",
                          read_timeout=DOWNLOAD_TIMEOUT).content

    def files(self, job_id: str) -> dict:
        return self._json("GET", f"{protocol.API_PREFIX}/jobs/{job_id}/files")

    def file(self, job_id: str, name: str) -> bytes:
        return self._call("GET", f"{protocol.API_PREFIX}/jobs/{job_id}/files/{name}",
                          read_timeout=DOWNLOAD_TIMEOUT).content

    def models(self) -> dict:
        return self._json("GET", protocol.API_PREFIX + "/models")

    def wait(self, job_id: str, on_status=None, cancelled=None, poll_interval: float = 0.25,
             max_failures: int = 3, timeout: float | None = None) -> JobStatus:
        """Poll until the job ends; returns its final status when it is 'done'.

        ``on_status(status)`` sees every status; when ``cancelled()`` turns true the job is cancelled on the
        backend and :class:`JobCancelled` is raised. ``max_failures`` failed polls in a row (backend gone) raise
        BackendError ``connection_lost``; a failed job raises BackendError with the backend's code and message.
        """
        failures = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if cancelled is not None and cancelled():
                self._cancel_quietly(job_id)
                raise JobCancelled()
            try:
                status = self.status(job_id)
                failures = 0
            except BackendError as exc:
                if exc.code not in ("unreachable", "timeout", "request_failed"):
                    raise
                failures += 1
                log.info("poll %d of job %s failed: %s", failures, job_id, exc.message)
                if failures >= max_failures:
                    raise protocol.connection_lost(self.url) from None
                status = None
            if status is not None:
                if on_status is not None:
                    on_status(status)
                if status.state == "done":
                    return status
                if status.state == "failed":
                    raise BackendError(status.error_code or "job_failed",
                                       f"The backend could not finish the job: {status.error_message}")
                if status.state == "cancelled":
                    raise JobCancelled("The job was cancelled on the backend")
            if deadline is not None and time.monotonic() > deadline:
                self._cancel_quietly(job_id)
                raise BackendError("timeout", f"The job did not finish within {timeout:g} s: cancelled it")
            _sleep(poll_interval, cancelled)

    def _cancel_quietly(self, job_id: str) -> None:
        try:
            self.cancel(job_id)
        except BackendError as exc:  # the job is dropped locally anyway; the backend may be gone
            log.info("cancel of job %s not confirmed: %s", job_id, exc.message)


def _sleep(seconds: float, cancelled) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cancelled is not None and cancelled():
            return
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))


def _reason(exc) -> str:
    """The innermost OS error text of a requests ConnectionError (e.g. 'Name or service not known')."""
    inner, seen = exc, 0
    while inner is not None and seen < 10:
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror
        nested = inner.args[0] if inner.args and isinstance(inner.args[0], BaseException) else None
        inner, seen = inner.__cause__ or inner.__context__ or nested, seen + 1
    return type(exc).__name__


def _is_refused(exc) -> bool:
    text = repr(exc)
    return "Connection refused" in text or "ConnectionRefused" in text or "10061" in text or (
        os.name == "nt" and "actively refused" in text)
