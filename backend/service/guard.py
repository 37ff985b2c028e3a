"""Request guard (pure ASGI middleware, runs before any route): who may call, and how much they may send.

* Browsers: a request from a web page of another origin (``Origin`` header neither allowed nor this backend's own
  address, or ``Sec-Fetch-Site: cross-site``) is refused with 403, so a web site the user visits cannot drive the
  local backend. The backend's own pages (``/v1/docs``) work.
* DNS rebinding: while bound to loopback only ``Host: localhost / 127.0.0.1 / [::1]`` (+ configured names) pass.
* Token: when configured, every route except health and the API schema needs ``Authorization: Bearer <token>``.
* Body size: ``Content-Length`` above the limit, or a streamed body growing past it, gets 413 before it is read.
"""
from __future__ import annotations

import hmac
import json
import logging

from .config import LOOPBACK_NAMES, ServiceConfig
from .errors import error_body

log = logging.getLogger(__name__)

OPEN_PATHS = ("/", "/v1/health", "/v1/openapi.json", "/v1/docs")


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8765
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class RequestGuard:
    def __init__(self, app, config: ServiceConfig):
        self.app, self.config = app, config
        self.max_body = config.max_upload_bytes
        self.hosts = {h.lower() for h in LOOPBACK_NAMES + tuple(config.allowed_hosts)}
        self.origins = {o.rstrip("/").lower() for o in config.allowed_origins}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            return await _send_json(send, *refusal)
        length = headers.get("content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return await _send_json(send, 400, "bad_request", "Content-Length is not a number")
            if too_big:
                return await _send_json(send, 413, "upload_too_large", self._too_large_message(int(length)))

        # Read the whole body first (bounded): the app sees it only when it is within the limit.
        chunks, received = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body:
                return await _send_json(send, 413, "upload_too_large", self._too_large_message(received))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    def _too_large_message(self, size: int) -> str:
        return (f"The request body is {size:,} bytes; this backend accepts at most {self.max_body:,} "
                "(serve --max-upload-mb). Send a smaller image")

    def _refusal(self, scope, headers) -> tuple | None:
        origin = headers.get("origin")
        same_origin = origin is not None and origin.rstrip("/").lower() == "http://" + headers.get("host", "").lower()
        if origin is not None and origin.rstrip("/").lower() not in self.origins and not same_origin:
            return 403, "cross_origin", (f"Requests from web pages ({origin}) are refused: the backend only "
                                         "serves local tools such as the Blender add-on (serve --allow-origin to "
                                         "allow one)")
        if headers.get("sec-fetch-site") in ("cross-site", "same-site") and origin is None:
            return 403, "cross_origin", "Requests from other web sites are refused"
        if self.config.loopback_only:
            host = _host_name(headers.get("host", ""))
            if host not in self.hosts:
                return 403, "bad_host", (f"Host '{headers.get('host', '')}' is not this computer: the backend "
                                         "listens on loopback only (use an ssh tunnel, or serve --host 0.0.0.0 "
                                         "--token ... on a trusted network)")
        if self.config.token and scope.get("path", "") not in OPEN_PATHS:
            auth = headers.get("authorization", "")
            expected = f"Bearer {self.config.token}"
            if not hmac.compare_digest(auth.encode(), expected.encode()):
                return 401, "unauthorized", ("This backend needs a token: send 'Authorization: Bearer <token>' "
                                             "(the add-on's Backend Token preference)")
        return None


async def _send_json(send, status: int, code: str, message: str) -> None:
    body = json.dumps(error_body(code, message)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
