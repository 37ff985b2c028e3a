"""Typed request and response bodies of the ``/v1`` API (pydantic models; they make the OpenAPI schema)."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from addon.core.protocol import PREDICT_LIMITS, SAMPLERS, PredictParams

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
TERMINAL_STATES = ("done", "failed", "cancelled")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable error code, e.g. 'invalid_image', 'busy'")
    message: str = Field(description="What went wrong and what to do")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ModelInfo(BaseModel):
    id: str = Field(description="Content-hash based model id, e.g. 'gid-motion@1a2b3c4d5e6f'")
    kind: Literal["motion", "renderer"] = Field(description="A motion model (predict jobs) or a neural renderer "
                                                            "(render jobs)")
    source: str = Field(description="Checkpoint path, 'default' for the shipped checkpoint, or 'tiny' for the "
                                    "random tiny test model")
    device: str
    map_size: Optional[list[int]] = Field(default=None, description="(W, H) of the predicted motion map (motion "
                                                                    "models; a renderer renders any size)")
    default: bool = Field(description="The motion model used by predict jobs that name no model")


class ModelList(BaseModel):
    models: list[ModelInfo]
    default: Optional[str] = None


class LoadModelRequest(_Strict):
    source: str = Field(min_length=1, max_length=4096,
                        description="Checkpoint path on the backend's machine, 'default' for the shipped "
                                    "checkpoint, or 'tiny' for a random tiny model (tests)")
    kind: Literal["motion", "renderer"] = Field(default="motion", description="What the checkpoint holds")
    make_default: bool = Field(default=True, description="Use it for predict jobs that name no model (motion)")


class QueueInfo(BaseModel):
    queued: int
    running: int
    max_queue: int


class Limits(BaseModel):
    max_upload_bytes: int
    max_pixels: int


class Health(BaseModel):
    service: str = Field(description="Always 'image-dynamics'")
    version: str = Field(description="Package version of the backend")
    api_version: str = Field(description="major.minor of this API; clients need the same major")
    python: str = Field(description="Python version of the backend")
    torch: str = Field(description="PyTorch version of the backend")
    device: str = Field(description="Device the models run on (cpu, cuda, ...)")
    models: list[ModelInfo]
    default_model: Optional[str] = None
    job_kinds: list[str]
    queue: QueueInfo
    limits: Limits
    auth_required: bool


class JobKindInfo(BaseModel):
    name: str
    description: str
    result_name: str
    media_type: str
    request_schema: dict[str, Any]


class JobKindList(BaseModel):
    kinds: list[JobKindInfo]


class JobStatus(BaseModel):
    id: str
    kind: str
    state: JobState
    stage: str = Field(description="What the job is doing now, e.g. 'queued', 'sampling', 'writing result'")
    progress: float = Field(ge=0.0, le=1.0, description="Fraction done, 0..1")
    done: int = Field(description="Steps done of total in the current stage")
    total: int
    eta_seconds: Optional[float] = Field(default=None, description="Estimated seconds until done (None = unknown)")
    elapsed_seconds: float = Field(description="Seconds since the job was created")
    queue_position: Optional[int] = Field(default=None, description="Jobs ahead of this one while queued")
    cached: bool = Field(description="The result came from the cache without running")
    model: Optional[str] = None
    error: Optional[ErrorDetail] = None
    files: list[str] = Field(description="Names of the artefacts published so far (GET .../files/{name})")
    result_url: Optional[str] = Field(default=None, description="Where to GET the result once state is 'done'")


class JobList(BaseModel):
    jobs: list[JobStatus]


class FileInfo(BaseModel):
    name: str
    size: int
    media_type: str


class FileList(BaseModel):
    files: list[FileInfo]
    complete: bool = Field(description="True once the job has finished: no more files will appear")


_DEFAULTS = PredictParams()


def _param(name: str, description: str):
    """The field of ``PredictParams.name``: its default and range come from addon.core.protocol (written once)."""
    limit = PREDICT_LIMITS[name]
    bounds = {"gt" if limit.low_open else "ge": limit.low, "le": limit.high}
    if isinstance(getattr(_DEFAULTS, name), float):
        bounds["allow_inf_nan"] = False
    return Field(default=getattr(_DEFAULTS, name), description=description, **bounds)


class PredictParamsModel(_Strict):
    """Sampling parameters of a motion prediction: ``addon.core.protocol.PredictParams`` as a request schema."""

    steps: int = _param("steps", "DDIM denoising steps")
    guidance: float = _param("guidance", "Classifier-free guidance scale (1 = conditional only)")
    loop: float = _param("loop", "Loop self-guidance weight (0 = off)")
    seed: int = _param("seed", "Random seed: same seed, same motion")
    num_frames: int = _param("num_frames", "Loop length T in frames")
    fps: float = _param("fps", "Frame rate of the loop")
    sampler: Literal[SAMPLERS] = Field(default=_DEFAULTS.sampler, description="Diffusion sampler")
    recurrence: int = _param("recurrence", "Self-recurrence per step (ddim with loop guidance)")

    def to_params(self) -> PredictParams:
        return PredictParams(**self.model_dump())


class PredictJobRequest(_Strict):
    image: str = Field(min_length=1, description="The photo's file bytes (PNG, JPEG, WebP, TIFF, BMP), base64")
    params: PredictParamsModel = Field(default_factory=PredictParamsModel)
    model: Optional[str] = Field(default=None, max_length=200,
                                 description="Model id from GET /v1/models (None = the default model)")
    moves: Optional[str] = Field(default=None, min_length=1,
                                 description="Optional 'moves here' hint: an image's file bytes, base64 (greyscale "
                                             "PNG preferred; any size, stretched over the photo): white = moves, "
                                             "black = stays still, grey = less. Absent = the model decides")
