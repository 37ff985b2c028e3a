"""Background jobs of the add-on: what a worker thread needs to reach the backend service (:class:`BackendSettings`,
read from the preferences by ``prefs.current_settings``), a backend process the add-on may start (and stops on exit),
jobs on worker threads, and the ``bpy.app.timers`` callback that brings their events to the main thread.

Threads never touch bpy. An operator reads everything a job needs on the main thread, then :func:`start_job` runs
``work(emit, cancel_event)`` on a worker thread (HTTP only); ``emit`` and the return value travel through a queue
that :func:`process_events` (a timer on the main thread) drains: it updates the job's progress (drawn by the
panel and the status bar) and hands the result to the job's ``on_result`` callback (main thread, may use bpy).
"""
from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import itertools
import logging
import os
import queue
import shlex
import subprocess
import tempfile
import threading
import time

import bpy

from .core import protocol
from .core.client import BackendClient
from .core.protocol import BackendError, JobCancelled

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.2  # seconds between two runs of the timer while a job is active
START_TIMEOUT = 180.0  # seconds a started backend gets to answer (it loads torch and the model)


@dataclasses.dataclass(frozen=True)
class BackendSettings:
    """Everything a worker thread needs to know about the backend (read from the preferences on the main thread)."""

    url: str = f"http://127.0.0.1:{protocol.DEFAULT_PORT}"
    token: str = ""
    auto_start: bool = False
    python: str = ""
    command: str = ""
    model: str = ""
    device: str = "auto"
    stop_on_exit: bool = True
    start_timeout: float = START_TIMEOUT

    def start_command(self) -> list | None:
        """The command that starts a backend on this URL's port, or None when neither Python nor a command is set."""
        port = protocol.port_of(protocol.normalize_url(self.url)) or protocol.DEFAULT_PORT
        tail = ["serve", "--host", "127.0.0.1", "--port", str(port), "--device", self.device]
        if self.model:
            tail += ["--model", self.model]
        if self.command.strip():
            return shlex.split(self.command, posix=os.name != "nt") + tail
        if self.python.strip():
            return [self.python.strip(), "-m", "backend.cli"] + tail
        return None


# ----------------------------------------------------------------------------------------------------------------
# A backend process started by the add-on
# ----------------------------------------------------------------------------------------------------------------

class ServerProcess:
    """The backend process this add-on started (at most one). Its output goes to a log file whose tail explains
    a failed start."""

    def __init__(self):
        self._lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.command: list = []
        self.log_path = os.path.join(tempfile.gettempdir(), f"image_dynamics_backend_{os.getpid()}.log")
        self.stop_on_exit = True

    def running(self) -> bool:
        with self._lock:
            return self.proc is not None and self.proc.poll() is None

    def start(self, command: list, stop_on_exit: bool = True) -> None:
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                return
            self.command, self.stop_on_exit = list(command), stop_on_exit
            log.info("starting the backend: %s (log: %s)", shlex.join(self.command), self.log_path)
            kwargs = {"start_new_session": True} if os.name != "nt" else {
                "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
            try:
                with open(self.log_path, "wb") as out:
                    self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=out,
                                                 stderr=subprocess.STDOUT, **kwargs)
            except OSError as exc:
                self.proc = None
                raise BackendError("start_failed", f"Could not start the backend with '{self.command[0]}': "
                                                   f"{exc.strerror or exc}. Check 'Backend Python' / 'Backend "
                                                   "Command' in the add-on's preferences") from None

    def exit_message(self) -> str | None:
        """None while running (or never started); else why it stopped, with the last lines of its log."""
        with self._lock:
            if self.proc is None or self.proc.poll() is None:
                return None
            code = self.proc.returncode
        return f"it exited with code {code}" + (f": {self.log_tail()}" if self.log_tail() else "")

    def log_tail(self, lines: int = 3) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(0, os.path.getsize(self.log_path) - 4000))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return ""
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail)

    def stop(self, timeout: float = 5.0) -> bool:
        """Terminate the process (kill after ``timeout``). Returns True when one was running."""
        with self._lock:
            proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return False
        log.info("stopping the backend (pid %d)", proc.pid)
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        return True


SERVER = ServerProcess()


def _stop_at_exit() -> None:
    if SERVER.stop_on_exit:
        SERVER.stop()


def ensure_backend(client, settings: BackendSettings, cancel_event: threading.Event, on_stage) -> dict:
    """Health of the backend at ``client.url``; when none answers and auto start is on (local URL only), start
    one and wait until it answers. Worker thread."""
    try:
        return client.health()
    except BackendError as exc:
        if exc.code != "unreachable" or not settings.auto_start or not protocol.is_loopback_url(client.url):
            raise
    command = settings.start_command()
    if command is None:
        raise BackendError("not_configured", f"No backend answers at {client.url} and 'Start Backend "
                                             "Automatically' has neither 'Backend Python' nor 'Backend Command': "
                                             "set one in the add-on's preferences")
    SERVER.start(command, settings.stop_on_exit)
    on_stage("Starting the backend")
    deadline = time.monotonic() + settings.start_timeout
    while True:
        if cancel_event.is_set():
            raise JobCancelled()
        why = SERVER.exit_message()
        if why:
            raise BackendError("start_failed", f"The backend did not start ({why}). Check 'Backend Python' / "
                                               f"'Backend Command' in the preferences; full log: {SERVER.log_path}")
        try:
            return client.health()
        except BackendError as exc:
            if exc.code not in ("unreachable", "timeout"):  # still importing torch / loading the model
                raise
        if time.monotonic() > deadline:
            raise BackendError("start_timeout", f"The backend started but did not answer within "
                                                f"{settings.start_timeout:.0f} s; see its log: {SERVER.log_path}")
        time.sleep(0.25)


@contextlib.contextmanager
def connected(settings: BackendSettings, emit, cancel_event: threading.Event):
    """Worker thread: a BackendClient to a backend that answers (started first when the settings allow)."""
    with BackendClient(settings.url, settings.token or None) as client:
        emit("Connecting to the backend", 0.0)
        ensure_backend(client, settings, cancel_event, lambda text: emit(text, 0.0))
        if cancel_event.is_set():
            raise JobCancelled()
        yield client


def follow(client, status, emit, cancel_event: threading.Event, downloading: str) -> tuple:
    """Worker thread: follow a submitted backend job to its end, then download its result -> (final status,
    bytes). A backend the add-on started that dies meanwhile is reported with its exit reason."""
    emit(protocol.status_text(status), status.progress, status.id)
    try:
        final = client.wait(status.id, cancelled=cancel_event.is_set,
                            on_status=lambda s: emit(protocol.status_text(s), s.progress))
    except BackendError as exc:
        why = SERVER.exit_message()
        if exc.code == "connection_lost" and why:
            raise BackendError(exc.code, f"The backend the add-on started stopped ({why})") from None
        raise
    emit(downloading, 1.0)
    return final, client.result(final.id)


# ----------------------------------------------------------------------------------------------------------------
# Background jobs
# ----------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(eq=False)
class TrackedJob:
    """A background job as the UI sees it (main thread only, except ``cancel_event``)."""

    key: str  # what the job works on, e.g. the plane's object name
    label: str
    on_result: object  # callable(job, result) -> str (main thread), the message shown when it is done
    token: int = 0
    state: str = "running"  # running | cancelling | done | failed | cancelled
    text: str = "Starting"
    progress: float = 0.0
    message: str = ""
    backend_job: str | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)
    cancel_event: threading.Event = dataclasses.field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self.state in ("running", "cancelling")


_jobs: "collections.OrderedDict[str, TrackedJob]" = collections.OrderedDict()
_events: "queue.Queue[tuple]" = queue.Queue()
_tokens = itertools.count(1)


def job_for(key: str) -> TrackedJob | None:
    return _jobs.get(key)


def active_jobs() -> list:
    return [job for job in _jobs.values() if job.active]


def start_job(key: str, label: str, work, on_result) -> TrackedJob:
    """Run ``work(emit, cancel_event)`` on a worker thread for ``key`` (one active job per key). ``emit(text,
    progress, backend_job=None)`` reports progress; the return value goes to ``on_result(job, value)`` on the
    main thread. ``work`` must not use bpy."""
    current = _jobs.get(key)
    if current is not None and current.active:
        raise BackendError("already_running", f"'{key}' is already being processed: wait or cancel it first")
    job = TrackedJob(key=key, label=label, on_result=on_result, token=next(_tokens))
    _jobs[key] = job
    _jobs.move_to_end(key)
    job.thread = threading.Thread(target=_run_worker, args=(job.key, job.token, work, job.cancel_event),
                                  name=f"image-dynamics-{label}", daemon=True)
    job.thread.start()
    _ensure_timer()
    return job


def cancel(key: str) -> bool:
    """Ask the job for ``key`` to stop (main thread). Its result, if one still arrives, is thrown away."""
    job = _jobs.get(key)
    if job is None or not job.active:
        return False
    job.cancel_event.set()
    job.state, job.text = "cancelling", "Cancelling"
    _tag_redraw()
    return True


def _run_worker(key, token, work, cancel_event) -> None:
    """Worker thread body: no bpy here."""
    def emit(text: str, progress: float, backend_job: str | None = None) -> None:
        _events.put(("progress", key, token, text, float(progress), backend_job))

    try:
        value = work(emit, cancel_event)
    except JobCancelled:
        _events.put(("cancelled", key, token))
    except BackendError as exc:
        _events.put(("failed", key, token, exc.message))
    except Exception as exc:  # a bug must reach the user as a message, never kill the job silently
        log.exception("background job for %s failed", key)
        _events.put(("failed", key, token, f"Unexpected error ({type(exc).__name__}: {exc}); see the console"))
    else:
        _events.put(("result", key, token, value))


def process_events() -> float | None:
    """The timer (main thread): apply the workers' events. Returns the next interval, None when idle (Blender
    then removes the timer; :func:`start_job` adds it again)."""
    changed = False
    while True:
        try:
            event = _events.get_nowait()
        except queue.Empty:
            break
        kind, key, token = event[:3]
        job = _jobs.get(key)
        if job is None or job.token != token:
            continue  # an event of a job that was replaced or forgotten
        changed = True
        if kind == "progress":
            if job.state == "running":
                job.text, job.progress = event[3], event[4]
            job.backend_job = event[5] or job.backend_job
        elif kind == "cancelled" or (kind == "result" and job.cancel_event.is_set()):
            _finish(job, "cancelled", "Cancelled: nothing was changed")
        elif kind == "failed":
            _finish(job, "failed", event[3])
        elif kind == "result":
            try:
                message = job.on_result(job, event[3])
            except (BackendError, RuntimeError, ValueError, OSError) as exc:
                _finish(job, "failed", getattr(exc, "message", None) or str(exc))
            else:
                _finish(job, "done", message or "Done")
    if changed:
        _tag_redraw()
    return POLL_INTERVAL if active_jobs() or not _events.empty() else None


def _finish(job: TrackedJob, state: str, message: str) -> None:
    job.state, job.message = state, message
    job.text = {"done": "Done", "cancelled": "Cancelled", "failed": "Failed"}[state]
    job.progress = 1.0 if state == "done" else job.progress
    level = logging.WARNING if state == "failed" else logging.INFO
    log.log(level, "%s '%s': %s", job.label, job.key, message)
    if state == "failed":
        _popup(f"{job.label} '{job.key}' failed", message)


def push_undo(message: str) -> None:
    """An undo step for a job's result applied by ``on_result``: it runs from the timer, outside any operator, so
    Blender pushes none itself. Skipped in background mode (scripts, render farms: no one undoes there)."""
    if bpy.app.background:
        return
    try:
        bpy.ops.ed.undo_push(message=message)
    except RuntimeError as exc:
        log.debug("no undo step: %s", exc)


def wait_idle(timeout: float) -> bool:
    """Run :func:`process_events` until no job is active (scripts and tests: there is no event loop in
    background mode). Returns False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process_events()
        if not active_jobs() and _events.empty():
            return True
        time.sleep(0.05)
    return False


def _ensure_timer() -> None:
    if not bpy.app.timers.is_registered(process_events):
        bpy.app.timers.register(process_events, first_interval=POLL_INTERVAL, persistent=True)


def _tag_redraw() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "STATUSBAR", "PREFERENCES"):
                area.tag_redraw()


def _popup(title: str, message: str) -> None:
    """Show an error popup in the first window (interactive Blender only)."""
    if bpy.app.background:
        return
    wm = bpy.context.window_manager
    if not wm.windows:
        return

    def draw(menu, _context):
        for line in wrap(message, 90):
            menu.layout.label(text=line)

    try:
        with bpy.context.temp_override(window=wm.windows[0]):
            wm.popup_menu(draw, title=title, icon="ERROR")
    except (RuntimeError, TypeError, AttributeError) as exc:
        log.debug("no popup: %s", exc)


def wrap(text: str, width: int) -> list:
    """Split a message into lines of at most ``width`` characters (labels do not wrap)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])


def _cancel_all_on_load(*_args) -> None:
    for job in active_jobs():
        cancel(job.key)


def register() -> None:
    atexit.register(_stop_at_exit)
    bpy.app.handlers.persistent(_cancel_all_on_load)  # survives loading another .blend
    if _cancel_all_on_load not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_cancel_all_on_load)


def unregister() -> None:
    """Cancel every job, remove the timer and the handlers, stop a backend the add-on started."""
    for job in list(_jobs.values()):
        job.cancel_event.set()
    _jobs.clear()
    while not _events.empty():
        _events.get_nowait()
    if bpy.app.timers.is_registered(process_events):
        bpy.app.timers.unregister(process_events)
    if _cancel_all_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_cancel_all_on_load)
    atexit.unregister(_stop_at_exit)
    _stop_at_exit()

