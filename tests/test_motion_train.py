"""Training loop of the motion model on a tiny in-memory dataset: all three stages run through accelerate on the
CPU, losses fall, runs resume where they stopped, configs are checked, and the result loads as a predictor."""
import json

import numpy as np
import pytest
import torch

from backend.motion.checkpoint import CheckpointError
from backend.motion.config import tiny_config
from backend.motion.predictor import PredictParams, load_predictor
from backend.motion.training import Trainer, TrainOptions

torch.set_num_threads(1)


class Windows:
    """Photos with a bright square that sways at bin k0 (amplitude 2 px); background still."""

    def __init__(self, n, seed, k=16, w=64, h=48):
        rng = np.random.default_rng(seed)
        self.items = []
        for _ in range(n):
            photo = np.full((3, h, w), 0.2, np.float32) + 0.05 * rng.random((3, h, w), dtype=np.float32)
            coeffs = np.zeros((k, 4, h, w), np.float32)
            y, x = int(rng.integers(4, h - 20)), int(rng.integers(4, w - 20))
            photo[:, y:y + 16, x:x + 16] = 0.9
            k0 = int(rng.integers(1, 4))
            coeffs[k0, 0, y:y + 16, x:x + 16] = 2.0
            self.items.append({"photo": photo, "coeffs": coeffs, "group": f"syn:{len(self.items)}"})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _train(stage, out, steps, init=None, **kw):
    opts = TrainOptions(stage=stage, out=str(out), steps=steps, batch=16, lr=2e-3, crop=32, val_every=steps,
                        val_batches=2, init=init, **kw)
    t = Trainer(opts, tiny_config(), Windows(12, 0), Windows(4, 1), np.full(16, 2.0, np.float32), progress=False)
    return t, t.fit()


def test_three_stages_train_resume_and_predict(tmp_path):
    out = tmp_path / "run"
    t, r = _train("vae", out, 30)
    assert r["complete"] and r["step"] == 30
    log = [json.loads(line) for line in open(out / "vae" / "log.jsonl")]
    assert np.mean([x["loss"] for x in log[-5:]]) < np.mean([x["loss"] for x in log[:5]])
    std = t.acc.unwrap_model(t.model).latent_std
    assert torch.all(std > 0)

    # resume: asking for more steps continues from step 30, not from 0
    t2, r2 = _train("vae", out, 34)
    assert r2["step"] == 34 and len(open(out / "vae" / "log.jsonl").readlines()) == 34

    _, r3 = _train("unet", out, 6, init=str(out / "vae" / "model.pt"))
    assert r3["complete"] and (out / "latents_train.npy").is_file()
    cached = (out / "latents_train.npy").stat().st_mtime_ns
    _, r4 = _train("freq", out, 3, init=str(out / "unet" / "model.pt"))
    assert r4["complete"]
    assert (out / "latents_train.npy").stat().st_mtime_ns == cached  # same VAE: stage 2 reuses stage 1's latents
    p = load_predictor(r4["model"], device="cpu")
    assert p.model.denoiser.freq_attention is not None
    vol = p.predict((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8), PredictParams(steps=3))
    assert vol.coeffs.shape == (16, 4, 48, 64) and np.isfinite(vol.coeffs).all()


def test_stage_needs_init_and_a_matching_vae(tmp_path):
    """The U-Net stage may change the denoiser's size but not the VAE it builds on."""
    with pytest.raises(ValueError, match="--init"):
        TrainOptions(stage="unet", out=str(tmp_path)).validate()
    out = tmp_path / "run"
    _train("vae", out, 2)
    other = tiny_config()
    import dataclasses
    other = dataclasses.replace(other, vae=dataclasses.replace(other.vae, channels=(8, 8, 8, 16)))
    opts = TrainOptions(stage="unet", out=str(out), steps=2, init=str(out / "vae" / "model.pt"))
    with pytest.raises(CheckpointError, match=r"different config: vae\.channels"):
        Trainer(opts, other, Windows(4, 0), Windows(2, 1), np.ones(16, np.float32), progress=False)
