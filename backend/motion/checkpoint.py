"""Motion-model checkpoints: one ``torch.save`` file holding the config, the weights and the data statistics.

Loading uses ``weights_only=True`` (no code runs from a file), checks the format tag, compares the saved config with
the one asked for and refuses a file whose weights do not fit its config, each with a message that says what to do.
"""
from __future__ import annotations

import logging
import os

import torch

from addon.core.files import atomic_path

from .calibration import check_gain_table
from .config import MotionConfig, config_differences, config_from_dict
from .models import MotionModel

log = logging.getLogger(__name__)

FORMAT = "image-dynamics/motion"
FORMAT_VERSION = 2  # 1: v1 models (VAE latent diffusion); 2: adds v2 models (config "architecture": "v2")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


def save_checkpoint(path: str, model, *, half: bool = False, extra: dict | None = None) -> None:
    """Write the model (fp16 weights with ``half``, to keep shipped files small) atomically. Buffers that are data
    statistics stay float32."""
    v2 = getattr(model, "architecture", "v1") == "v2"
    keep32 = {"scales", "eps", "shape_std", "coherence"}
    state = {k: (v.half() if half and v.is_floating_point() and k not in keep32 else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "format_version": 2 if v2 else 1, "config": model.config.to_dict(),
               "state_dict": state, "extra": dict(extra or {})}
    if v2:
        from .trunk import weights_digest

        payload["trunk"] = {"name": model.config.trunk, "sha256": weights_digest()}
    else:
        payload["output_gain"] = [float(g) for g in model.output_gain.detach().cpu()]
    if not v2 and model.gain_table is not None:
        payload["output_gain_steps"] = {"steps": list(model.gain_steps),
                                        "gains": model.gain_table.detach().cpu().double().tolist()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str) -> dict:
    """The raw payload, validated for format; raises FileNotFoundError / CheckpointError."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"motion checkpoint '{path}' does not exist: pass the path of a .pt file written by "
                                f"scripts/train_motion.py (or omit it to use the shipped default)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch's unpicklers raise anything (IndexError, KeyError...) on junk
        raise CheckpointError(f"'{path}' is not a readable motion checkpoint (corrupted or truncated file?): {exc}. "
                              f"Re-copy it or re-train with scripts/train_motion.py") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not an Image Dynamics motion checkpoint (format tag missing)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"'{path}' was written by a newer Image Dynamics (format "
                              f"{payload['format_version']} > {FORMAT_VERSION}): update the backend")
    return payload


def load_checkpoint(path: str, expected=None, *, strict: bool = True, device="cpu") -> tuple:
    """-> (MotionModel or MotionModelV2 in eval mode, payload). ``expected``: fail unless the saved config equals
    it. A v2 model's trunk is loaded from the installed package on first use (``trunk.TrunkMissing`` says how to
    install it)."""
    payload = read_checkpoint(path)
    try:
        config = config_from_dict(payload["config"])
        config.validate()
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"'{path}' has an invalid config: {exc}") from None
    if expected is not None:
        diff = config_differences(config, expected)
        if diff:
            raise CheckpointError(f"'{path}' was trained with a different model config: {'; '.join(diff[:6])}"
                                  f"{' ...' if len(diff) > 6 else ''}. Use the matching config or start a new run")
    if isinstance(config, MotionConfig):
        model = MotionModel(config)
    else:
        from .models_v2 import MotionModelV2

        model = MotionModelV2(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"'{path}': weights do not fit the saved config ({str(exc).splitlines()[0]} ...)") from None
    if strict and (missing or unexpected):
        raise CheckpointError(f"'{path}': weights do not fit the saved config (missing {len(missing)}, e.g. "
                              f"{missing[:2]}; unexpected {len(unexpected)}, e.g. {unexpected[:2]})")
    if not isinstance(config, MotionConfig):
        model.eval().to(device)
        return model, payload
    gain = payload.get("output_gain")  # absent in files written before the calibration existed: ones
    if gain is not None:
        try:
            gain = torch.as_tensor(gain, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            gain = None
        if gain is None or gain.shape != (config.k,) or not bool(torch.isfinite(gain).all() and (gain > 0).all()):
            raise CheckpointError(f"'{path}': its output gain must be {config.k} positive numbers: re-run "
                                  f"scripts/calibrate_motion.py or re-train")
        model.output_gain.copy_(gain)
    table = payload.get("output_gain_steps")  # gains per DDIM step count (absent: output_gain at every count)
    if table is not None:
        try:
            model.set_step_gains(*check_gain_table(table, config.k))
        except ValueError as exc:
            raise CheckpointError(f"'{path}': its per-step gains are invalid ({exc}): re-run "
                                  f"scripts/calibrate_motion.py") from None
    model.eval().to(device)
    return model, payload
