"""Sampling motion latents: DDIM (or DPM-Solver++), classifier-free guidance as one batched pass, and loop
self-guidance (paper eq. 5) with self-recurrence. One loop (:func:`run_sampler`) for both model generations, a
function of a denoiser and a callback, as in k-diffusion.

v1 (:func:`sample_latents`): latents (B, K, C, h, w), the denoiser sees rows b*K + k. v2 (:func:`sample_shape`):
shape latents (B, 4(K-1), h8, w8), every frequency a channel group of one map.
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
                  prediction_type=config.prediction_type, timestep_spacing=config.timestep_spacing,
                  rescale_betas_zero_snr=config.rescale_betas_zero_snr)
    if sampler == "ddim":
        return DDIMScheduler(clip_sample=False, set_alpha_to_one=False, steps_offset=1 if
                             config.timestep_spacing == "leading" else 0, **common)
    if sampler == "dpm":
        if config.rescale_betas_zero_snr:  # DPM-Solver++ needs a finite terminal SNR
            common["rescale_betas_zero_snr"] = False
        if config.timestep_spacing == "leading":  # v1 checkpoints were calibrated with the scheduler's default
            del common["timestep_spacing"]
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


def _x0_and_eps(output: torch.Tensor, x: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str) -> tuple:
    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    if prediction_type == "v_prediction":
        return a * x - s * output, a * output + s * x
    return (x - s * output) / a, output


def _from_eps(eps: torch.Tensor, x: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    if prediction_type == "v_prediction":
        a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
        return (eps - s * x) / a  # = a * eps - s * x0 with x0 = (x - s * eps) / a
    return eps


def _loop_gradient(decode, latents, eps, alpha_bar, num_frames):
    """Gradient (unit RMS) of the seam loss of the decoded x0 estimate with respect to the latents (eps fixed)."""
    with torch.enable_grad():
        z = latents.detach().requires_grad_(True)
        x0 = (z - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()
        loss = seam_loss(decode(x0), num_frames).sum()
        (g,) = torch.autograd.grad(loss, z)
    return g / (g.pow(2).mean().sqrt() + 1e-12)


@torch.no_grad()
def run_sampler(denoise: Callable, shape: tuple, config: DiffusionConfig, *, steps: int, seed: int, device,
                sampler: str = "ddim", eta: float = 0.0, loop: float = 0.0, recurrence: int = 1,
                decode: Optional[Callable] = None, num_frames: int = 150,
                callback: Optional[Callable[[int, int, torch.Tensor], None]] = None) -> torch.Tensor:
    """The sampling loop shared by every motion model: ``denoise(x, t)`` returns the (guided) model output for
    latents ``x`` of ``shape`` at timestep t (the config's prediction type). ``loop`` > 0 adds loop self-guidance
    (the gradient of the seam loss of ``decode(x0 estimate)`` pushes the noise estimate; skipped where the signal
    level is 0), ``recurrence`` > 1 re-noises and repeats each DDIM step. ``callback(step, total, x0_estimate)``
    after every step; raising in it stops sampling."""
    sched = make_scheduler(config, sampler)
    sched.set_timesteps(steps, device=device)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    latents = torch.randn(shape, generator=gen).to(device) * sched.init_noise_sigma
    alphas = sched.alphas_cumprod.to(device)
    timesteps = list(sched.timesteps)
    recurrence = max(1, int(recurrence)) if sampler == "ddim" else 1
    for i, t in enumerate(timesteps):
        for r in range(recurrence):
            out = denoise(latents, t)
            if loop > 0 and decode is not None and float(alphas[t]) > 1e-3:
                _, eps = _x0_and_eps(out, latents, alphas[t], config.prediction_type)
                eps = eps + loop * (1 - alphas[t]).sqrt() * _loop_gradient(decode, latents, eps, alphas[t],
                                                                         num_frames)
                out = _from_eps(eps, latents, alphas[t], config.prediction_type)
            kw = {"eta": eta, "generator": gen} if sampler == "ddim" else {}
            step = sched.step(out, t, latents, **kw)
            if r + 1 < recurrence:  # re-noise x_{t-1} back to x_t and repeat the step
                t_prev = t - config.num_train_timesteps // steps
                a_prev = alphas[t_prev] if t_prev >= 0 else sched.final_alpha_cumprod.to(device)
                ratio = alphas[t] / a_prev
                noise = torch.randn(step.prev_sample.shape, generator=gen).to(device)
                latents = ratio.sqrt() * step.prev_sample + (1 - ratio).sqrt() * noise
            else:
                latents = step.prev_sample
        if callback is not None:
            x0 = getattr(step, "pred_original_sample", None)
            callback(i + 1, len(timesteps), x0 if x0 is not None else latents)
    return latents


def sample_latents(model, photo: torch.Tensor, *, steps: int = 25, guidance: float = 1.5, loop: float = 0.0,
                   recurrence: int = 1, num_frames: int = 150, seed: int = 0, eta: float = 0.0,
                   sampler: str = "ddim", gain: Optional[torch.Tensor] = None,
                   callback: Optional[Callable[[int, int, torch.Tensor], None]] = None) -> torch.Tensor:
    """v1: photo (B, 3, H, W) in [0, 1] at the model's map size -> whitened latents (B, K, C, h, w).

    ``loop`` > 0 adds loop self-guidance: the gradient of the seam loss of the decoded x0 estimate (normalised to unit
    RMS) pushes each step, weight ``loop``; ``recurrence`` > 1 re-noises and repeats each DDIM step (self-recurrence).
    ``callback(step, total, x0_estimate)`` runs after every step; raising in it stops sampling. ``gain``: the
    amplitude gains the seam loss decodes with (default ``model.gain_for_steps(steps)``).
    """
    cfg = model.config
    gain = model.gain_for_steps(steps) if gain is None else gain
    w, h = cfg.latent_size
    b = photo.shape[0]
    shape = (b, cfg.k, cfg.vae.latent_channels, h, w)
    with torch.no_grad():
        features = model.features(photo)
    denoise = lambda x, t: guided_eps(model, x, t, features, guidance)  # noqa: E731
    decode = lambda x0: decode_coeffs(model, x0, gain)  # noqa: E731
    return run_sampler(denoise, shape, cfg.diffusion, steps=steps, seed=seed, device=photo.device, sampler=sampler,
                       eta=eta, loop=loop, recurrence=recurrence, decode=decode, num_frames=num_frames,
                       callback=callback)


def sample_shape(model, cond, *, steps: int = 25, guidance: float = 1.5, loop: float = 0.0, recurrence: int = 1,
                 num_frames: int = 150, seed: int = 0, eta: float = 0.0, sampler: str = "ddim",
                 callback: Optional[Callable[[int, int, torch.Tensor], None]] = None) -> torch.Tensor:
    """v2: a ``models_v2.Condition`` of B photos -> whitened shape latents (B, 4(K-1), h8, w8).

    Classifier-free guidance runs [unconditional, conditional] as one batch (the unconditional branch sees a zero
    condition map, as training drops it); ``guidance`` 1 is the conditional prediction alone."""
    cfg = model.config
    c8 = cond.c8
    b = c8.shape[0]
    w, h = cfg.latent_size

    def denoise(x, t):
        tt = t.reshape(1).expand(b).to(x.device)
        if guidance == 1.0:
            return model.denoiser(x, tt, c8)
        out_u, out_c = model.denoiser(torch.cat([x, x]), torch.cat([tt, tt]),
                                      torch.cat([torch.zeros_like(c8), c8])).chunk(2)
        return out_u + guidance * (out_c - out_u)

    decode = lambda x0: model.decode(x0, cond.log_energy)  # noqa: E731
    return run_sampler(denoise, (b, cfg.shape_channels, h, w), cfg.diffusion, steps=steps, seed=seed,
                       device=c8.device, sampler=sampler, eta=eta, loop=loop, recurrence=recurrence, decode=decode,
                       num_frames=num_frames, callback=callback)
