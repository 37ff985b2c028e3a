"""Sampling spectral-volume latents: DDIM (or DPM-Solver++), classifier-free guidance as one batched pass, and loop
self-guidance (paper eq. 5) with self-recurrence. A function of the model and a callback, as in k-diffusion.

Shapes: B photos, K frequencies; latents (B, K, C, h, w); the denoiser sees rows b*K + k.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from addon.core.protocol import SAMPLERS
from backend.spectral import denormalize, displacement_at

from .config import DiffusionConfig


def make_scheduler(config: DiffusionConfig, sampler: str = "ddim"):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    common = dict(num_train_timesteps=config.num_train_timesteps, beta_start=config.beta_start,
                  beta_end=config.beta_end, beta_schedule=config.beta_schedule,
                  prediction_type=config.prediction_type)
    if sampler == "ddim":
        return DDIMScheduler(clip_sample=False, set_alpha_to_one=False, steps_offset=1, **common)
    if sampler == "dpm":
        return DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, **common)
    raise ValueError(f"unknown sampler '{sampler}': choose one of {', '.join(SAMPLERS)}")


def guided_eps(model, latents: torch.Tensor, t: torch.Tensor, features: torch.Tensor, guidance: float) -> torch.Tensor:
    """Noise prediction for latents (B, K, C, h, w) with image features (B, F, h, w).

    ``guidance`` 1 is the conditional prediction alone; otherwise [uncond, cond] run as one batch and are combined
    as eps_u + g * (eps_c - eps_u); the unconditional branch sees zero features (as training drops them).
    """
    b, k = latents.shape[:2]
    x = latents.flatten(0, 1)
    feats = features.repeat_interleave(k, dim=0)
    fi = torch.arange(k, device=x.device).repeat(b)
    tt = t.reshape(1).expand(b * k).to(x.device)
    den = model.denoiser
    if guidance == 1.0:
        return den(x, tt, fi, feats, group=k).unflatten(0, (b, k))
    out = den(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([fi, fi]),
              torch.cat([torch.zeros_like(feats), feats]), group=k)
    eps_u, eps_c = out.chunk(2)
    return (eps_u + guidance * (eps_c - eps_u)).unflatten(0, (b, k))


def seam_loss(coeffs: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Paper eq. 5 per photo: ||F_last - F_first||_1 + ||grad F_last - grad F_first||_1 (means over pixels), (B,).
    ``coeffs`` (B, K, 4, H, W) in pixels."""
    freqs = torch.arange(coeffs.shape[1], dtype=torch.float64) / num_frames  # cycles per frame
    f = displacement_at(coeffs, freqs, [num_frames - 1, 0])  # (B, 2, 2, H, W)
    d = f[:, 0] - f[:, 1]  # (B, 2, H, W)
    gx = d[..., :, 1:] - d[..., :, :-1]
    gy = d[..., 1:, :] - d[..., :-1, :]
    return d.abs().mean((1, 2, 3)) + gx.abs().mean((1, 2, 3)) + gy.abs().mean((1, 2, 3))


def decode_coeffs(model, latents: torch.Tensor, gain: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Whitened latents (B, K, C, h, w) -> coefficients in pixels of the map (B, K, 4, H, W), calibrated by the
    per-frequency ``gain`` (K,) (default the model's ``output_gain``; ``model.gain_for_steps(n)`` for n steps)."""
    k = latents.shape[1]
    gain = model.output_gain if gain is None else gain
    return denormalize(model.decode(latents), model.scales) * gain[None, :k, None, None, None]


def _loop_gradient(model, latents, eps, alpha_bar, num_frames, gain=None):
    with torch.enable_grad():
        z = latents.detach().requires_grad_(True)
        x0 = (z - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()
        loss = seam_loss(decode_coeffs(model, x0, gain), num_frames).sum()
        (g,) = torch.autograd.grad(loss, z)
    return g / (g.pow(2).mean().sqrt() + 1e-12)


@torch.no_grad()
def sample_latents(model, photo: torch.Tensor, *, steps: int = 25, guidance: float = 1.5, loop: float = 0.0,
                   recurrence: int = 1, num_frames: int = 150, seed: int = 0, eta: float = 0.0,
                   sampler: str = "ddim", gain: Optional[torch.Tensor] = None,
                   callback: Optional[Callable[[int, int, torch.Tensor], None]] = None) -> torch.Tensor:
    """Photo (B, 3, H, W) in [0, 1] at the model's map size -> whitened latents (B, K, C, h, w).

    ``loop`` > 0 adds loop self-guidance: the gradient of the seam loss of the decoded x0 estimate (normalised to unit
    RMS) pushes each step, weight ``loop``; ``recurrence`` > 1 re-noises and repeats each DDIM step (self-recurrence).
    ``callback(step, total, x0_estimate)`` runs after every step; raising in it stops sampling. ``gain``: the
    amplitude gains the seam loss decodes with (default ``model.gain_for_steps(steps)``).
    """
    cfg = model.config
    gain = model.gain_for_steps(steps) if gain is None else gain
    device = photo.device
    sched = make_scheduler(cfg.diffusion, sampler)
    sched.set_timesteps(steps, device=device)
    w, h = cfg.latent_size
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    b = photo.shape[0]
    latents = torch.randn((b, cfg.k, cfg.vae.latent_channels, h, w), generator=gen).to(device)
    latents = latents * sched.init_noise_sigma
    features = model.features(photo)
    alphas = sched.alphas_cumprod.to(device)
    timesteps = list(sched.timesteps)
    recurrence = max(1, int(recurrence)) if sampler == "ddim" else 1
    for i, t in enumerate(timesteps):
        for r in range(recurrence):
            eps = guided_eps(model, latents, t, features, guidance)
            if loop > 0:
                eps = eps + loop * (1 - alphas[t]).sqrt() * _loop_gradient(model, latents, eps, alphas[t], num_frames,
                                                                         gain)
            kw = {"eta": eta, "generator": gen} if sampler == "ddim" else {}
            out = sched.step(eps.flatten(0, 1), t, latents.flatten(0, 1), **kw)
            prev = out.prev_sample.unflatten(0, latents.shape[:2])
            if r + 1 < recurrence:  # re-noise x_{t-1} back to x_t and repeat the step
                t_prev = t - cfg.diffusion.num_train_timesteps // steps
                a_prev = alphas[t_prev] if t_prev >= 0 else sched.final_alpha_cumprod.to(device)
                ratio = alphas[t] / a_prev
                noise = torch.randn(prev.shape, generator=gen).to(device)
                latents = ratio.sqrt() * prev + (1 - ratio).sqrt() * noise
            else:
                latents = prev
        if callback is not None:
            x0 = out.pred_original_sample.unflatten(0, latents.shape[:2]) if hasattr(out, "pred_original_sample") \
                and out.pred_original_sample is not None else latents
            callback(i + 1, len(timesteps), x0)
    return latents
