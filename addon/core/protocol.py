"""The add-on's side of the backend's ``/v1`` wire protocol (pure Python, no bpy, no requests).

Request/response shapes, the version check, and the mapping from every way a call can fail to one message that
tells the artist what happened and what to do. The HTTP client (``client.py``) raises :class:`BackendError`
built here; operators show ``BackendError.message`` as it is.
"""
from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
import numbers
from urllib.parse import urlsplit

SERVICE_NAME = "image-dynamics"
API_MAJOR = 1  # the backend's api_version must have this major
API_PREFIX = "/v1"
TERMINAL_STATES = ("done", "failed", "cancelled")
DEFAULT_PORT = 8765


class BackendError(Exception):
    """A failed backend call. ``code`` is stable (see docs/service.md), ``message`` is for the user."""

    def __init__(self, code: str, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.code, self.message, self.status, self.retry_after = code, message, status, retry_after


class JobCancelled(BackendError):
    def __init__(self, message: str = "Cancelled"):
        super().__init__("cancelled", message)


def start_hint(port: int | None = None) -> str:
    port = port or DEFAULT_PORT
    return (f"Start it with 'image-dynamics serve --port {port}' in a terminal, or turn on 'Start Backend "
            "Automatically' in the add-on's preferences (Edit > Preferences > Add-ons > Image Dynamics)")


def port_of(url: str) -> int | None:
    try:
        return urlsplit(url).port
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """True when ``host`` names this computer: ``localhost``, 127.0.0.0/8 or ::1 (brackets allowed)."""
    host = (host or "").strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """True when ``url`` points at this computer (proxies are then never used)."""
    return is_loopback(urlsplit(url).hostname or "")


def normalize_url(url: str) -> str:
    """``127.0.0.1:8765`` → ``http://127.0.0.1:8765``; trailing slashes and a trailing ``/v1`` removed."""
    url = (url or "").strip()
    if not url:
        raise BackendError("bad_url", "No backend URL is set: set it in the add-on's preferences (e.g. "
                                      f"http://127.0.0.1:{DEFAULT_PORT})")
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BackendError("bad_url", f"'{url}' is not a backend URL: use http://HOST:PORT, e.g. "
                                      f"http://127.0.0.1:{DEFAULT_PORT}")
    return url


SAMPLERS = ("ddim", "dpm")


@dataclasses.dataclass(frozen=True)
class Limit:
    """The allowed range of a number: ``low <= value <= high`` (``low < value`` when ``low_open``)."""

    low: float
    high: float
    hint: str
    low_open: bool = False

    def admits(self, value) -> bool:
        return (self.low < value if self.low_open else self.low <= value) and value <= self.high


# The one place the ranges of the sampling parameters are written: PredictParams.validate checks them and the
# service's request schema (backend/service/schemas.py) is built from them.
PREDICT_LIMITS = {
    "steps": Limit(1, 500, "use 1..500"),
    "guidance": Limit(0.0, 20.0, "use 0..20 (1 = no guidance)"),
    "loop": Limit(0.0, 10.0, "use 0..10 (0 = off)"),
    "seed": Limit(0, 2 ** 63 - 1, "use a whole number from 0 to 2**63 - 1"),
    "num_frames": Limit(2, 100000, "use 2..100000 frames"),
    "fps": Limit(0.0, 1000.0, "use 0 < fps <= 1000", low_open=True),
    "recurrence": Limit(1, 8, "use 1..8"),
}


@dataclasses.dataclass(frozen=True)
class PredictParams:
    """Sampling parameters of a motion prediction: what the add-on sends with a predict job, what the service
    accepts and the predictor samples with (one definition for all three)."""

    steps: int = 25           # denoising steps
    guidance: float = 1.5     # classifier-free guidance scale (1 = conditional prediction only)
    loop: float = 0.0         # loop self-guidance weight u (0 = off)
    seed: int = 0
    num_frames: int = 150     # loop length T of the volume
    fps: float = 30.0
    sampler: str = "ddim"     # ddim | dpm
    recurrence: int = 1       # self-recurrence per step (ddim, with loop guidance)

    def validate(self) -> None:
        """ValueError naming the first parameter that is out of range (or of the wrong type) and what to use."""
        for field in dataclasses.fields(self):
            name, value = field.name, getattr(self, field.name)
            if name == "sampler":
                ok, hint = value in SAMPLERS, f"use one of {', '.join(SAMPLERS)}"
            else:
                whole = field.type in ("int", int)
                number = isinstance(value, numbers.Integral if whole else numbers.Real) and not isinstance(value, bool)
                limit = PREDICT_LIMITS[name]
                ok, hint = number and limit.admits(value), limit.hint
            if not ok:
                raise ValueError(f"bad prediction parameter {name}={value!r}: {hint}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PredictParams":
        """Validated parameters from a dict; ValueError for unknown names or bad values."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = set(d) - set(known)
        if unknown:
            raise ValueError(f"unknown prediction parameters: {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(known)})")
        p = cls(**d)
        p.validate()
        return p


def predict_body(image: bytes, params: PredictParams | None = None, model: str | None = None,
                 moves: bytes | None = None) -> dict:
    """JSON body of ``POST /v1/jobs/predict``: the photo's file bytes (base64), the sampling parameters, optionally
    a model id and the motion brush's hint ``moves`` (PNG bytes, greyscale, white = moves; sent only when given,
    so a request without a hint is exactly what older backends accept)."""
    body = {"image": base64.b64encode(image).decode("ascii"), "params": (params or PredictParams()).to_dict()}
    if model:
        body["model"] = model
    if moves is not None:
        body["moves"] = base64.b64encode(moves).decode("ascii")
    return body


MOVES_CODES = ("invalid_moves", "too_many_pixels")  # the backend's refusals of a hint (docs/service.md)


def moves_refused(exc: BackendError) -> BackendError:
    """A BackendError from a predict job that carried a hint, said in the brush's terms: the backend's own message
    when it refused the hint, or "update the backend" when it does not know the field at all."""
    if exc.code in MOVES_CODES:
        return BackendError(exc.code, f"The backend refused the motion brush's hint: {exc.message}", exc.status)
    if exc.code == "invalid_request" and "moves" in exc.message:
        return BackendError("moves_unsupported", "This backend does not know the motion brush (it is older than the "
                                                 "add-on): update the backend, or remove the brush group for "
                                                 f"automatic motion. The backend said: {exc.message}", exc.status)
    return exc


@dataclasses.dataclass(frozen=True)
class JobStatus:
    id: str
    kind: str
    state: str
    stage: str
    progress: float
    eta_seconds: float | None = None
    queue_position: int | None = None
    cached: bool = False
    model: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    files: tuple = ()

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @classmethod
    def from_json(cls, data) -> "JobStatus":
        try:
            error = data.get("error") or {}
            return cls(id=str(data["id"]), kind=str(data["kind"]), state=str(data["state"]),
                       stage=str(data.get("stage", "")), progress=float(data.get("progress", 0.0)),
                       eta_seconds=None if data.get("eta_seconds") is None else float(data["eta_seconds"]),
                       queue_position=data.get("queue_position"), cached=bool(data.get("cached", False)),
                       model=data.get("model"), error_code=error.get("code"), error_message=error.get("message"),
                       files=tuple(data.get("files") or ()))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackendError("bad_response", f"The backend sent a job status this add-on does not understand "
                                               f"({exc}): update the add-on and the backend to matching "
                                               "versions") from None


def check_health(health, url: str) -> dict:
    """Raise BackendError unless ``health`` (the parsed /v1/health body) is a compatible Image Dynamics backend."""
    if not isinstance(health, dict) or health.get("service") != SERVICE_NAME:
        raise BackendError("not_image_dynamics", f"Something else answers at {url}: it is not an Image Dynamics "
                                                 "backend. Use another port (preferences) or stop that program")
    version = str(health.get("api_version", ""))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = None
    if major != API_MAJOR:
        raise BackendError("incompatible", f"The backend at {url} speaks API version {version or 'unknown'} "
                                           f"(backend {health.get('version', '?')}) but this add-on needs "
                                           f"{API_MAJOR}.x: install matching versions of the add-on and the "
                                           "backend (pip install -U image-dynamics)")
    return health


def error_from_response(status: int, body: bytes, url: str, retry_after: str | None = None) -> BackendError:
    """The BackendError for an HTTP error response (the backend's ``{"error": {code, message}}`` or anything)."""
    code, message = None, None
    try:
        data = json.loads(body.decode("utf-8")) if body else None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            code, message = data["error"].get("code"), data["error"].get("message")
    except (UnicodeDecodeError, ValueError):
        pass
    retry = None
    if retry_after is not None:
        try:
            retry = float(retry_after)
        except ValueError:
            retry = None
    if status == 429:
        return BackendError("busy", f"The backend is busy ({message or 'too many jobs'}). Try again in a moment",
                            status, retry)
    if status == 401:
        return BackendError("unauthorized", f"The backend at {url} needs a token: set 'Backend Token' in the "
                                            "add-on's preferences to the backend's --token", status)
    if status == 403:
        return BackendError(code or "forbidden", f"The backend refused the request: {message or 'forbidden'}",
                            status)
    if code is None:
        if status == 404:
            return BackendError("not_image_dynamics", f"{url} does not serve the Image Dynamics API (HTTP 404): "
                                                      "check the backend URL and port in the preferences", status)
        return BackendError("http_error", f"The backend at {url} answered HTTP {status}: is it an Image "
                                          "Dynamics backend? Check the URL in the preferences", status)
    if status >= 500:
        return BackendError(code, f"The backend failed: {message}. See the backend's log", status)
    return BackendError(code, message or f"HTTP {status}", status)


def unreachable(url: str) -> BackendError:
    hint = start_hint(port_of(url)) if is_loopback_url(url) else (
        "Check that it runs on that machine and that the URL (or the ssh tunnel) is right")
    return BackendError("unreachable", f"No Image Dynamics backend answers at {url}. {hint}")


def timed_out(url: str, seconds: float) -> BackendError:
    return BackendError("timeout", f"The backend at {url} did not answer within {seconds:g} s: it may be "
                                   "overloaded or stuck; restart it if this persists")


def connection_lost(url: str) -> BackendError:
    return BackendError("connection_lost", f"Lost the connection to the backend at {url} while the job was running "
                                           f"(it stopped or crashed). {start_hint(port_of(url))}, then try again")


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest:02d} s"


def status_text(status: JobStatus) -> str:
    """One line for the progress bar: 'Sampling 40% (12 s left)', 'Queued (2 jobs ahead)', ..."""
    if status.state == "queued":
        ahead = status.queue_position or 0
        text = "Queued" + (f" ({ahead} job{'s' if ahead != 1 else ''} ahead)" if ahead else "")
    else:
        text = f"{(status.stage or status.state).capitalize()} {100 * status.progress:.0f}%"
    eta = format_eta(status.eta_seconds)
    return f"{text} ({eta} left)" if eta else text
