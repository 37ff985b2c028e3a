"""The FastAPI app: ``create_app(config)`` wires the guard, the error format, the models, the cache, the job queue
and the ``/v1`` routes (one ``POST /v1/jobs/<kind>`` per registered job kind)."""
# No ``from __future__ import annotations`` here: FastAPI reads the job routes' body types at run time.
import contextlib
import dataclasses
import inspect
import logging
import os
import platform
import time

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse

from . import API_VERSION, SERVICE_NAME, package_version
from .cache import ResultCache
from .config import ServiceConfig
from .errors import ServiceError, install_handlers
from .guard import RequestGuard
from .jobs import JobKind, JobManager, job_kinds
from .models import DEFAULT, ModelManager, shipped_default_exists
from .schemas import (ErrorResponse, FileInfo, FileList, Health, JobKindInfo, JobKindList, JobList, JobStatus,
                      Limits, LoadModelRequest, ModelInfo, ModelList, QueueInfo)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ServiceState:
    """What routes and job kinds' ``prepare`` functions see as ``service``."""

    config: ServiceConfig
    models: ModelManager
    cache: ResultCache
    jobs: JobManager
    kinds: dict
    started: float = dataclasses.field(default_factory=time.time)


def _errors(*statuses: int) -> dict:
    return {status: {"model": ErrorResponse} for status in statuses}


def _model_info(model, default_id) -> ModelInfo:
    return ModelInfo(id=model.id, kind=model.kind, source=model.source, device=model.device,
                     map_size=model.map_size, default=model.id == default_id)


def create_app(config: ServiceConfig, models: ModelManager | None = None) -> FastAPI:
    """The service app. Loads ``config.model`` now (ValueError / FileNotFoundError for a bad checkpoint) or, when
    it is None, the shipped default checkpoint if there is one."""
    models = models or ModelManager(config.device)
    if config.model is not None:
        _load_startup_model(models, config.model)
    elif shipped_default_exists() and not models.list()[0]:
        _load_startup_model(models, DEFAULT)
    if not models.list()[0]:
        log.warning("no motion model loaded: predict jobs get 409 until one is loaded (serve --model PATH)")
    cache_root = config.resolved_cache_dir
    cache = ResultCache(os.path.join(cache_root, "results"), config.cache_max_bytes)
    jobs = JobManager(cache, os.path.join(cache_root, "work"), config.max_queue, config.max_jobs_kept)
    state = ServiceState(config, models, cache, jobs, job_kinds())

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        jobs.stop()

    app = FastAPI(title="Image Dynamics backend", version=package_version(), lifespan=lifespan,
                  description="Local service of the Image Dynamics Blender add-on: motion prediction jobs with "
                              "progress, cancel and a content-hashed result cache. See docs/service.md.",
                  openapi_url="/v1/openapi.json", docs_url="/v1/docs", redoc_url=None)
    app.state.service = state
    install_handlers(app)
    app.add_middleware(RequestGuard, config=config)
    app.include_router(_router(state))

    @app.get("/", include_in_schema=False)
    def root():
        return {"service": SERVICE_NAME, "api_version": API_VERSION, "health": "/v1/health", "docs": "/v1/docs"}

    return app


def _load_startup_model(models: ModelManager, source: str) -> None:
    try:
        models.load(source)
    except ServiceError as exc:
        raise ValueError(exc.message) from None


def _router(state: ServiceState) -> APIRouter:
    router = APIRouter(prefix="/v1")
    jobs, models, config = state.jobs, state.models, state.config

    @router.get("/health", response_model=Health, tags=["service"])
    async def health():
        """Versions, device, loaded models, queue and limits. Never needs the token."""
        loaded, default = models.list()
        queued, running = jobs.counts()
        device = loaded[0].device if loaded else _device_name(config.device)
        return Health(service=SERVICE_NAME, version=package_version(), api_version=API_VERSION,
                      python=platform.python_version(), torch=_torch_version(), device=device,
                      models=[_model_info(m, default) for m in loaded], default_model=default,
                      job_kinds=sorted(state.kinds), queue=QueueInfo(queued=queued, running=running,
                                                                     max_queue=jobs.max_queue),
                      limits=Limits(max_upload_bytes=config.max_upload_bytes, max_pixels=config.max_pixels),
                      auth_required=bool(config.token))

    @router.get("/models", response_model=ModelList, tags=["models"], responses=_errors(401))
    async def list_models():
        loaded, default = models.list()
        return ModelList(models=[_model_info(m, default) for m in loaded], default=default)

    @router.post("/models", response_model=ModelInfo, status_code=201, tags=["models"],
                 responses=_errors(401, 422))
    def load_model(body: LoadModelRequest):
        """Load a motion model or a renderer (a path on the backend's machine, 'default' or 'tiny')."""
        model = models.load(body.source, body.make_default, body.kind)
        return _model_info(model, models.list()[1])

    @router.delete("/models/{model_id}", response_model=ModelInfo, tags=["models"], responses=_errors(401, 404))
    def unload_model(model_id: str):
        """Unload a model or a renderer (running jobs that use it finish first)."""
        model = models.unload(model_id)
        return _model_info(model, None)

    @router.get("/job-kinds", response_model=JobKindList, tags=["jobs"], responses=_errors(401))
    async def list_job_kinds():
        return JobKindList(kinds=[JobKindInfo(name=k.name, description=k.description, result_name=k.result_name,
                                              media_type=k.media_type,
                                              request_schema=k.request_model.model_json_schema())
                                  for k in state.kinds.values()])

    for kind in state.kinds.values():
        router.add_api_route(f"/jobs/{kind.name}", _create_job_endpoint(state, kind), methods=["POST"],
                             status_code=202, response_model=JobStatus, tags=["jobs"],
                             summary=f"Create a {kind.name} job",
                             description=kind.description + ". Returns at once (202) with the job's id: poll GET "
                                                            "/v1/jobs/{id}.",
                             responses=_errors(401, 409, 413, 422, 429), name=f"create_{kind.name}_job")

    @router.post("/jobs/{kind}", include_in_schema=False)
    def unknown_kind(kind: str):
        raise ServiceError(404, "unknown_job_kind", f"No job kind '{kind}' (this backend has: "
                                                    f"{', '.join(sorted(state.kinds))}); see GET /v1/job-kinds")

    @router.get("/jobs", response_model=JobList, tags=["jobs"], responses=_errors(401))
    async def list_jobs():
        return JobList(jobs=[JobStatus(**jobs.status(j)) for j in jobs.list()])

    @router.get("/jobs/{job_id}", response_model=JobStatus, tags=["jobs"], responses=_errors(401, 404))
    async def job_status(job_id: str):
        """State, stage, progress and ETA of a job."""
        return JobStatus(**jobs.status(jobs.get(job_id)))

    @router.post("/jobs/{job_id}/cancel", response_model=JobStatus, tags=["jobs"], responses=_errors(401, 404))
    async def cancel_job(job_id: str):
        """Cancel: a queued job is dropped at once, a running one stops at its next step (state 'cancelled')."""
        return JobStatus(**jobs.status(jobs.cancel(job_id)))

    @router.get("/jobs/{job_id}/result", tags=["jobs"], response_class=FileResponse,
                responses={200: {"content": {"application/octet-stream": {}}}, **_errors(401, 404, 409, 410)})
    def job_result(job_id: str):
        """The job's result file once its state is 'done' (409 before, or when it failed or was cancelled)."""
        job = jobs.get(job_id)
        status = jobs.status(job)
        if status["state"] != "done":
            if status["state"] == "failed":
                err = status["error"] or {"code": "job_failed", "message": "failed"}
                raise ServiceError(409, "job_failed", f"The job failed: {err['message']}")
            if status["state"] == "cancelled":
                raise ServiceError(409, "job_cancelled", "The job was cancelled: submit it again")
            raise ServiceError(409, "not_ready", f"The job is {status['state']} ({100 * status['progress']:.0f}%): "
                                                 f"poll GET /v1/jobs/{job_id} until its state is 'done'")
        if job.result_path is None:
            raise ServiceError(404, "no_result", f"A {job.kind.name} job has no single result file: list its "
                                                 f"files with GET /v1/jobs/{job_id}/files")
        if not os.path.isfile(job.result_path):
            raise ServiceError(410, "result_expired", "The result was removed from the cache: submit the job "
                                                      "again")
        return FileResponse(job.result_path, media_type=job.kind.media_type, filename=job.kind.result_name)

    @router.get("/jobs/{job_id}/files", response_model=FileList, tags=["jobs"], responses=_errors(401, 404))
    async def job_files(job_id: str):
        """Artefacts published so far (e.g. frames of a render), in publishing order."""
        job = jobs.get(job_id)
        status = jobs.status(job)
        infos = []
        for name in status["files"]:
            path, media_type = job.files[name]
            size = os.path.getsize(path) if os.path.isfile(path) else 0
            infos.append(FileInfo(name=name, size=size, media_type=media_type))
        return FileList(files=infos, complete=status["state"] in ("done", "failed", "cancelled"))

    @router.get("/jobs/{job_id}/files/{name}", tags=["jobs"], response_class=FileResponse,
                responses={200: {"content": {"application/octet-stream": {}}}, **_errors(401, 404, 410)})
    def job_file(job_id: str, name: str):
        job = jobs.get(job_id)
        entry = job.files.get(name)
        if entry is None:
            raise ServiceError(404, "unknown_file", f"Job {job_id} has no file '{name}' (yet): list them with GET "
                                                    f"/v1/jobs/{job_id}/files")
        path, media_type = entry
        if not os.path.isfile(path):
            raise ServiceError(410, "result_expired", f"File '{name}' was removed: submit the job again")
        return FileResponse(path, media_type=media_type, filename=name)

    return router


def _create_job_endpoint(state: ServiceState, kind: JobKind):
    def create_job(body):
        prepared = kind.prepare(body, state)
        job = state.jobs.submit(kind, prepared)
        return JobStatus(**state.jobs.status(job))

    create_job.__signature__ = inspect.Signature(
        [inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=kind.request_model)])
    create_job.__name__ = f"create_{kind.name}_job"
    return create_job


def _torch_version() -> str:
    import torch

    return torch.__version__


def _device_name(device: str) -> str:
    try:
        from backend.device import resolve_device

        return str(resolve_device(device))
    except ValueError:
        return device
