"""Typed request and response bodies of the ``/v1`` API (pydantic models; they make the OpenAPI schema)."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

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
    source: str = Field(description="Checkpoint path, or 'tiny' for the random tiny test model")
    device: str
    map_size: list[int] = Field(description="(W, H) of the predicted motion map")
    default: bool = Field(description="Used by jobs that name no model")


class ModelList(BaseModel):
    models: list[ModelInfo]
    default: Optional[str] = None


class LoadModelRequest(_Strict):
    source: str = Field(min_length=1, max_length=4096,
                        description="Checkpoint path on the backend's machine, 'default' for the shipped "
                                    "checkpoint, or 'tiny' for a random tiny model (tests)")
    make_default: bool = Field(default=True, description="Use it for jobs that name no model")


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


class PredictParamsModel(_Strict):
    """Sampling parameters of a motion prediction (mirrors backend.motion.predictor.PredictParams)."""

    steps: int = Field(default=25, ge=1, le=500, description="DDIM denoising steps")
    guidance: float = Field(default=1.5, ge=0.0, le=20.0, allow_inf_nan=False,
                            description="Classifier-free guidance scale (1 = conditional only)")
    loop: float = Field(default=0.0, ge=0.0, le=10.0, allow_inf_nan=False,
                        description="Loop self-guidance weight (0 = off)")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Random seed: same seed, same motion")
    num_frames: int = Field(default=150, ge=2, le=100000, description="Loop length T in frames")
    fps: float = Field(default=30.0, gt=0.0, le=1000.0, allow_inf_nan=False, description="Frame rate of the loop")
    sampler: Literal["ddim", "dpm"] = Field(default="ddim", description="Diffusion sampler")
    recurrence: int = Field(default=1, ge=1, le=8, description="Self-recurrence per step (ddim with loop guidance)")


class PredictJobRequest(_Strict):
    image: str = Field(min_length=1, description="The photo's file bytes (PNG, JPEG, WebP, TIFF, BMP), base64")
    params: PredictParamsModel = Field(default_factory=PredictParamsModel)
    model: Optional[str] = Field(default=None, max_length=200,
                                 description="Model id from GET /v1/models (None = the default model)")
    moves: Optional[str] = Field(default=None, min_length=1,
                                 description="Optional 'moves here' hint: an image's file bytes, base64 (greyscale "
                                             "PNG preferred; any size, stretched over the photo): white = moves, "
                                             "black = stays still, grey = less. Absent = the model decides")
