"""The ``predict`` job kind: photo + sampling parameters → spectral volume (.npz), cached by content hash."""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os

from addon.core.protocol import PredictParams

from . import images
from .cache import content_key
from .errors import ServiceError
from .jobs import Cancelled, Prepared, register_job_kind
from .schemas import PredictJobRequest

log = logging.getLogger(__name__)

RESULT_NAME = "volume.npz"


@dataclasses.dataclass(frozen=True)
class PredictPayload:
    photo: images.Photo
    params: PredictParams
    model: object  # models.LoadedModel
    moves: object = None  # optional "moves here" hint (h, w) float32 in [0, 1]


def prepare_predict(request: PredictJobRequest, service) -> Prepared:
    from backend.motion.hint import HINT_RULES, check_hint

    data = images.decode_base64(request.image)
    photo = images.decode_image(data, service.config.max_pixels, service.config.max_side)
    params = request.params.to_params()
    try:
        params.validate()
    except ValueError as exc:
        raise ServiceError(422, "invalid_params", f"Invalid parameters: {exc}") from None
    moves_bytes, moves = (images.decode_mask(request.moves, "moves", "invalid_moves", service.config.max_pixels,
                                             check=check_hint) if request.moves else (b"", None))
    model = service.models.get(request.model)
    hint = [HINT_RULES, hashlib.sha256(moves_bytes).hexdigest()] if moves is not None else None
    key = content_key("predict", hashlib.sha256(data).hexdigest(), params.to_dict(), model.id,
                      service.config.max_side, hint)
    return Prepared(PredictPayload(photo, params, model, moves), cache_key=key, model=model.id)


def run_predict(ctx, payload: PredictPayload) -> str:
    from addon.core.spectral import save_npz
    from backend.motion.predictor import Cancelled as PredictorCancelled

    total = payload.params.steps
    ctx.progress(0, total, "sampling")

    def callback(step: int, steps: int) -> None:
        try:
            ctx.progress(step, steps, "sampling")
        except Cancelled:
            raise PredictorCancelled(ctx.job_id) from None

    try:
        volume = payload.model.model.predict(payload.photo.pixels, payload.params, callback=callback,
                                             moves=payload.moves)
    except PredictorCancelled:
        raise Cancelled(ctx.job_id) from None
    ctx.progress(total, total, "writing result")
    if tuple(volume.source_size) != tuple(payload.photo.size):  # the photo was downscaled for the queue
        volume = dataclasses.replace(volume, source_size=tuple(payload.photo.size))
    path = os.path.join(ctx.work_dir, RESULT_NAME)
    save_npz(path, volume)
    return path


register_job_kind(
    "predict", run_predict, request_model=PredictJobRequest, prepare=prepare_predict,
    description="Predict the motion of a photo: returns a spectral volume (.npz) for the Blender add-on or "
                "'image-dynamics' tools",
    result_name=RESULT_NAME, media_type="application/octet-stream")
