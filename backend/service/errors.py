"""Errors as ``{"error": {"code": ..., "message": ...}}`` with the right status, for every failure path.

``code`` is a stable machine-readable string (clients switch on it); ``message`` says what went wrong and what to
do. Documented codes are listed in docs/service.md.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "too_large",
              415: "unsupported_media_type", 422: "invalid_request", 429: "busy", 500: "internal_error"}


class ServiceError(Exception):
    """An error with an HTTP status, a stable code and a message saying what to do."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _location(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def validation_message(errors) -> tuple[str, str]:
    """(code, message) for pydantic/FastAPI validation errors: malformed JSON, a missing body, bad fields."""
    errors = list(errors)
    if any(e.get("type") == "json_invalid" for e in errors):
        return "invalid_json", "The request body is not valid JSON: send a JSON object (Content-Type: " \
                               "application/json)"
    if any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",) for e in errors):
        return "missing_body", "The request has no body: send a JSON object as documented in /v1/openapi.json"
    parts = [f"{_location(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid_request", "Invalid request: " + "; ".join(parts) + more


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        code, message = validation_message(exc.errors())
        return error_response(422, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"No such route: {request.method} {request.url.path} (see /v1/openapi.json)"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path} (see /v1/openapi.json)"
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"The backend failed unexpectedly ({type(exc).__name__}: "
                                                     f"{exc}); see the backend's log")
