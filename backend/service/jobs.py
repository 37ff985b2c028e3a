"""Jobs: pluggable job kinds, a bounded queue drained by one worker thread, per-job progress / ETA / cancel, and
result artefacts (a final file, plus files published while the job runs).

A job kind is registered once with :func:`register_job_kind`::

    register_job_kind("render", run_render, request_model=RenderJobRequest, prepare=prepare_render,
                      result_name="frames.zip", media_type="application/zip")

``prepare(request, service)`` runs in the HTTP request (validate, decode, pick the model; raise
:class:`~backend.service.errors.ServiceError` for a 4xx) and returns :class:`Prepared`. ``handler(ctx, payload)``
runs on the worker thread with a :class:`JobContext`; it returns the result as bytes, as the path of a file it
wrote, or None when its artefacts are only the published files. The app adds ``POST /v1/jobs/<name>`` for every
kind registered before :func:`backend.service.app.create_app` runs; modules listed in :data:`JOB_KIND_MODULES`
are imported first so that their kinds register themselves.
"""
from __future__ import annotations

import collections
import dataclasses
import importlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from typing import Any, Callable

from addon.core.files import write_bytes_atomic

from .cache import ResultCache
from .errors import ServiceError

log = logging.getLogger(__name__)

# Modules whose import registers their job kinds. One that cannot be imported is skipped with an error in the log
# (the other kinds keep working).
JOB_KIND_MODULES = ["backend.service.predict", "backend.service.render"]
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
_EMA = 0.3  # weight of the newest job when averaging job durations for queue ETAs


class Cancelled(Exception):
    """Raised inside a job (by :meth:`JobContext.progress` / :meth:`JobContext.check_cancelled`) once its cancel
    was requested. Handlers let it propagate (or re-raise it after cleaning up)."""


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What ``prepare`` hands to the queue: the handler's input, the cache key (None = never cached) and the id
    of the model the job uses (reported in its status)."""

    payload: Any
    cache_key: str | None = None
    model: str | None = None


@dataclasses.dataclass(frozen=True)
class JobKind:
    name: str
    handler: Callable[["JobContext", Any], Any]
    request_model: type
    prepare: Callable[[Any, Any], Prepared]
    description: str = ""
    result_name: str = "result.bin"
    media_type: str = "application/octet-stream"

    @property
    def result_suffix(self) -> str:
        return os.path.splitext(self.result_name)[1]


_KINDS: dict[str, JobKind] = {}
_kinds_lock = threading.Lock()


def register_job_kind(name: str, handler, *, request_model, prepare, description: str = "",
                      result_name: str = "result.bin", media_type: str = "application/octet-stream",
                      replace: bool = False) -> JobKind:
    """Add a job kind (see the module docstring). ``replace=False`` refuses a second kind of the same name."""
    if not _NAME.match(name):
        raise ValueError(f"job kind name {name!r} must match {_NAME.pattern}")
    if not _FILE_NAME.match(result_name):
        raise ValueError(f"result_name {result_name!r} must be a plain file name")
    kind = JobKind(name, handler, request_model, prepare, description, result_name, media_type)
    with _kinds_lock:
        if name in _KINDS and not replace and _KINDS[name] != kind:
            raise ValueError(f"job kind {name!r} is already registered")
        _KINDS[name] = kind
    return kind


def unregister_job_kind(name: str) -> None:
    with _kinds_lock:
        _KINDS.pop(name, None)


def job_kinds() -> dict[str, JobKind]:
    """Every registered kind, after importing :data:`JOB_KIND_MODULES`."""
    for module in JOB_KIND_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            log.error("job kinds of %s are not available: %s", module, exc)
    with _kinds_lock:
        return dict(_KINDS)


@dataclasses.dataclass(eq=False)
class Job:
    id: str
    kind: JobKind
    payload: Any
    cache_key: str | None
    model: str | None
    state: str = "queued"
    stage: str = "queued"
    done: int = 0
    total: int = 0
    created: float = dataclasses.field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    rate_origin: tuple | None = None  # (time, done) when the current stage first reported progress
    error: tuple | None = None  # (code, message)
    result_path: str | None = None
    cached: bool = False
    files: dict = dataclasses.field(default_factory=dict)  # name -> (path, media_type)
    work_dir: str | None = None
    cancel_event: threading.Event = dataclasses.field(default_factory=threading.Event)

    @property
    def terminal(self) -> bool:
        return self.state in ("done", "failed", "cancelled")


class JobContext:
    """What a running handler may do: report progress, notice cancellation, publish files."""

    def __init__(self, manager: "JobManager", job: Job):
        self._manager, self._job = manager, job
        self.job_id = job.id
        self.work_dir = job.work_dir

    @property
    def cancel_requested(self) -> bool:
        return self._job.cancel_event.is_set()

    def check_cancelled(self) -> None:
        if self._job.cancel_event.is_set():
            raise Cancelled(self._job.id)

    def progress(self, done: int, total: int, stage: str | None = None) -> None:
        """``done`` of ``total`` steps of ``stage`` (a new stage restarts the ETA estimate); raises
        :class:`Cancelled` when the job's cancel was requested."""
        self._manager._progress(self._job, int(done), int(total), stage)
        self.check_cancelled()

    def publish_file(self, name: str, data, media_type: str = "application/octet-stream") -> str:
        """Publish an artefact (bytes, or the path of a file to move in) as ``GET /v1/jobs/{id}/files/{name}``
        at once. Returns its path. Publishing the same name again replaces the file."""
        if not _FILE_NAME.match(name):
            raise ValueError(f"file name {name!r} must match {_FILE_NAME.pattern}")
        folder = os.path.join(self.work_dir, "files")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name)
        if isinstance(data, (bytes, bytearray, memoryview)):
            write_bytes_atomic(path, bytes(data))
        else:
            shutil.move(os.fspath(data), path)
        self._manager._add_file(self._job, name, path, media_type)
        return path


class JobManager:
    """A bounded FIFO of jobs run one at a time on a worker thread (started on the first submit)."""

    def __init__(self, cache: ResultCache, work_root: str, max_queue: int = 8, max_kept: int = 200):
        self.cache, self.max_queue, self.max_kept = cache, int(max_queue), int(max_kept)
        os.makedirs(work_root, exist_ok=True)
        _remove_stale_work_dirs(work_root)
        self.work_root = tempfile.mkdtemp(prefix=f"jobs-{os.getpid()}-", dir=work_root)
        self._cond = threading.Condition()
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._queue: collections.deque[Job] = collections.deque()
        self._running: Job | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._durations: dict[str, float] = {}

    # -- submitting and looking up ------------------------------------------------------------------------------

    def submit(self, kind: JobKind, prepared: Prepared) -> Job:
        job = Job(uuid.uuid4().hex, kind, prepared.payload, prepared.cache_key, prepared.model)
        cached = self.cache.get(prepared.cache_key, kind.result_suffix) if prepared.cache_key else None
        with self._cond:
            if self._stopping:
                raise ServiceError(503, "shutting_down", "The backend is shutting down: start it again")
            if cached is not None:
                job.payload = None
                job.state, job.stage, job.cached, job.result_path = "done", "done (cached)", True, cached
                job.started = job.finished = job.created
                job.done = job.total = 1
            else:
                if len(self._queue) >= self.max_queue:
                    retry = max(1, min(60, round(self._slot_free_in_locked() or 1)))
                    raise ServiceError(429, "busy", f"The backend is busy: {len(self._queue)} jobs are waiting "
                                                    f"(limit {self.max_queue}). Try again in about {retry} s",
                                       headers={"Retry-After": str(retry)})
                self._queue.append(job)
            self._jobs[job.id] = job
            self._forget_old_locked()
            self._ensure_worker_locked()
            self._cond.notify_all()
        log.info("job %s (%s) %s", job.id, kind.name, "served from cache" if job.cached else "queued")
        return job

    def get(self, job_id: str) -> Job:
        with self._cond:
            job = self._jobs.get(job_id)
        if job is None:
            raise ServiceError(404, "unknown_job", f"No job '{job_id}': it never existed or was forgotten (the "
                                                   f"backend keeps the last {self.max_kept} finished jobs and "
                                                   "forgets all on restart); submit it again")
        return job

    def list(self) -> list[Job]:
        with self._cond:
            return list(self._jobs.values())

    def counts(self) -> tuple[int, int]:
        with self._cond:
            return len(self._queue), int(self._running is not None)

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued one is dropped at once, a running one stops at its next progress report."""
        job = self.get(job_id)
        with self._cond:
            if job.terminal:
                return job
            job.cancel_event.set()
            if job.state == "queued":
                self._queue.remove(job)
                self._finish_locked(job, "cancelled", "cancelled")
            else:
                job.stage = "cancelling"
        log.info("job %s: cancel requested", job_id)
        return job

    # -- status ---------------------------------------------------------------------------------------------------

    def status(self, job: Job) -> dict:
        """A consistent snapshot of ``job`` as the JobStatus fields."""
        with self._cond:
            now = time.monotonic()
            position = None
            eta = None
            if job.state == "queued":
                position = self._queue.index(job) if job in self._queue else None
                eta = self._eta_queued_locked(position) if position is not None else None
            elif job.state == "running":
                eta = self._eta_running_locked(job, now)
            if job.state == "done":
                progress = 1.0
            else:
                progress = min(1.0, job.done / job.total) if job.total > 0 else 0.0
            end = job.finished if job.finished is not None else now
            return {
                "id": job.id, "kind": job.kind.name, "state": job.state, "stage": job.stage,
                "progress": round(progress, 4), "done": job.done, "total": job.total,
                "eta_seconds": None if eta is None else round(eta, 2),
                "elapsed_seconds": round(end - job.created, 3), "queue_position": position,
                "cached": job.cached, "model": job.model,
                "error": None if job.error is None else {"code": job.error[0], "message": job.error[1]},
                "files": list(job.files), "result_url": f"/v1/jobs/{job.id}/result" if job.state == "done" else None,
            }

    def _eta_running_locked(self, job: Job, now: float) -> float | None:
        if job.rate_origin is None or job.total <= 0:
            return None
        t0, d0 = job.rate_origin
        if job.done <= d0:
            return None
        per_step = (now - t0) / (job.done - d0)
        return max(0.0, per_step * (job.total - job.done))

    def _slot_free_in_locked(self) -> float | None:
        """Seconds until the running job ends and the first queued job starts (a queue slot frees)."""
        if self._running is None:
            return None
        rest = self._eta_running_locked(self._running, time.monotonic())
        return rest if rest is not None else self._durations.get(self._running.kind.name)

    def _eta_queued_locked(self, position: int) -> float | None:
        """Seconds until a job at queue ``position`` finishes: the running job's rest plus average durations."""
        ahead = list(self._queue)[: position + 1]
        if any(j.kind.name not in self._durations for j in ahead):
            return None
        eta = sum(self._durations[j.kind.name] for j in ahead)
        if self._running is not None:
            rest = self._eta_running_locked(self._running, time.monotonic())
            if rest is None:
                rest = self._durations.get(self._running.kind.name)
            if rest is None:
                return None
            eta += rest
        return eta

    # -- called from the worker thread (through JobContext) -------------------------------------------------------

    def _progress(self, job: Job, done: int, total: int, stage: str | None) -> None:
        with self._cond:
            if stage is not None and stage != job.stage and job.stage != "cancelling":
                job.stage = stage
                job.rate_origin = None
            job.done, job.total = max(0, done), max(0, total)
            if job.rate_origin is None:
                job.rate_origin = (time.monotonic(), job.done)

    def _add_file(self, job: Job, name: str, path: str, media_type: str) -> None:
        with self._cond:
            job.files[name] = (path, media_type)

    # -- the worker -----------------------------------------------------------------------------------------------

    def _ensure_worker_locked(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="image-dynamics-worker", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._queue.popleft()
                self._running = job
                job.state, job.stage, job.started = "running", "starting", time.monotonic()
                job.work_dir = os.path.join(self.work_root, job.id)
            try:
                self._execute(job)
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

    def _execute(self, job: Job) -> None:
        os.makedirs(job.work_dir, exist_ok=True)
        ctx = JobContext(self, job)
        outcome, error, result_path = "done", None, None
        try:
            ctx.check_cancelled()
            out = job.kind.handler(ctx, job.payload)
            result_path = self._store_result(job, out)
        except Cancelled:
            outcome = "cancelled"
        except ServiceError as exc:
            outcome, error = "failed", (exc.code, exc.message)
        except (ValueError, OSError) as exc:
            log.warning("job %s (%s) failed: %s", job.id, job.kind.name, exc)
            outcome, error = "failed", ("job_failed", str(exc))
        except Exception as exc:  # a bug in a handler must not stop the worker: report it on the job
            log.exception("job %s (%s) crashed", job.id, job.kind.name)
            outcome, error = "failed", ("internal_error", f"The job failed unexpectedly ({type(exc).__name__}: "
                                                          f"{exc}); see the backend's log")
        with self._cond:
            job.result_path = result_path
            job.error = error
            if outcome == "done":
                duration = time.monotonic() - job.started
                old = self._durations.get(job.kind.name)
                self._durations[job.kind.name] = duration if old is None else (1 - _EMA) * old + _EMA * duration
            self._finish_locked(job, outcome, {"done": "done", "cancelled": "cancelled"}.get(outcome, "failed"))
        log.info("job %s (%s) %s in %.2f s", job.id, job.kind.name, outcome, job.finished - job.started)

    def _store_result(self, job: Job, out) -> str | None:
        if out is None:
            return None
        if isinstance(out, (bytes, bytearray, memoryview)):
            path = os.path.join(job.work_dir, job.kind.result_name)
            with open(path, "wb") as fh:
                fh.write(out)
        else:
            path = os.fspath(out)
        if job.cache_key:
            return self.cache.put(job.cache_key, path, job.kind.result_suffix)
        return path

    def _finish_locked(self, job: Job, state: str, stage: str) -> None:
        job.state, job.stage, job.finished = state, stage, time.monotonic()
        job.payload = None  # free the decoded inputs
        if state == "done":
            job.done = job.total = max(job.total, 1)

    def _forget_old_locked(self) -> None:
        finished = [j for j in self._jobs.values() if j.terminal]
        for job in finished[: max(0, len(finished) - self.max_kept)]:
            del self._jobs[job.id]
            if job.work_dir:  # its files and uncached result; cached results stay in the cache
                shutil.rmtree(job.work_dir, ignore_errors=True)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel everything, wait for the worker (up to ``timeout``) and remove the job folders."""
        with self._cond:
            self._stopping = True
            for job in list(self._queue):
                job.cancel_event.set()
                self._finish_locked(job, "cancelled", "cancelled")
            self._queue.clear()
            if self._running is not None:
                self._running.cancel_event.set()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("the running job did not stop within %.0f s", timeout)
        shutil.rmtree(self.work_root, ignore_errors=True)


def _remove_stale_work_dirs(root: str, max_age_s: float = 86400.0) -> None:
    """Job folders left by backends that were killed (older than a day)."""
    now = time.time()
    for name in os.listdir(root):
        path = os.path.join(root, name)
        try:
            if name.startswith("jobs-") and os.path.isdir(path) and now - os.stat(path).st_mtime > max_age_s:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue
