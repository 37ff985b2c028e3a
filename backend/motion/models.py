"""The networks of the motion model, built from ``MotionConfig`` (no downloaded weights anywhere).

* ``build_vae``: diffusers ``AutoencoderKL`` over one frequency slice (4 channels: Re x, Im x, Re y, Im y, already
  frequency-normalised), 8x smaller latents.
* ``ImageEncoder``: a small ResNet turning the photo into ``out_channels`` features at latent size.
* ``MotionDenoiser``: diffusers ``UNet2DModel`` over [noisy latent | image features] with the frequency index as class
  label (its embedding is added to the timestep embedding). With ``freq_attention.enabled`` (stage 2) a
  ``FrequencyAttention`` layer follows every ResNet block of the U-Net: attention across the K slices of one photo,
  output projection zero-initialised so that a fresh stage 2 computes exactly what stage 1 does.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .calibration import check_gain_table, gain_for_steps
from .config import MotionConfig


def build_vae(config: MotionConfig):
    from diffusers import AutoencoderKL

    v = config.vae
    n = len(v.channels)
    return AutoencoderKL(
        in_channels=4, out_channels=4, latent_channels=v.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(v.channels), layers_per_block=v.layers_per_block, norm_num_groups=v.norm_groups,
        sample_size=max(config.width, config.height), mid_block_add_attention=v.mid_attention, scaling_factor=1.0)


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.norm1 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1, stride) if (stride != 1 or c_in != c_out) else nn.Identity()

    def forward(self, x):
        y = F.silu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return F.silu(y + self.skip(x))


class ImageEncoder(nn.Module):
    """Photo (B, 3, H, W) in [0, 1] -> features (B, out_channels, H/f, W/f): a stride-4 patch stem, then one
    stride-2 ResNet stage per further entry of ``channels`` (f = 4 * 2**(len(channels) - 1))."""

    def __init__(self, config: MotionConfig):
        super().__init__()
        e = config.encoder
        c0 = e.channels[0]
        layers = [nn.Conv2d(3, c0, 4, 4), nn.GroupNorm(e.norm_groups, c0), nn.SiLU(),
                  _ResBlock(c0, c0, 1, e.norm_groups)]
        c_in = c0
        for c in e.channels[1:]:
            layers += [_ResBlock(c_in, c, 2, e.norm_groups), _ResBlock(c, c, 1, e.norm_groups)]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(c_in, e.out_channels, 1)

    def forward(self, photo: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(photo * 2.0 - 1.0))


class FrequencyAttention(nn.Module):
    """Self-attention across the K frequency slices at every pixel; residual with a zero-initialised output."""

    def __init__(self, channels: int, k: int, heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.position = nn.Parameter(torch.randn(k, channels) * 0.02)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, k: int) -> torch.Tensor:  # x (B*K, C, H, W)
        bk, c, h, w = x.shape
        b = bk // k
        y = x.reshape(b, k, c, h * w).permute(0, 3, 1, 2).reshape(b * h * w, k, c)
        y = self.norm(y) + self.position[:k]
        y, _ = self.attn(y, y, y, need_weights=False)
        y = self.proj_out(y)
        y = y.reshape(b, h * w, k, c).permute(0, 2, 3, 1).reshape(bk, c, h, w)
        return x + y


class MotionDenoiser(nn.Module):
    """eps prediction for latents (B*K, C_lat, h, w) of B photos x K frequencies, given features (B*K, C_feat, h, w).

    Rows are ordered photo-major: row b*K + k is frequency k of photo b (stage 2 relies on this).
    """

    def __init__(self, config: MotionConfig):
        super().__init__()
        from diffusers import UNet2DModel
        from diffusers.models.resnet import ResnetBlock2D

        u = config.unet
        self.k = config.k
        down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in u.attention)
        up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(u.attention))
        self.unet = UNet2DModel(
            sample_size=config.latent_size[::-1],
            in_channels=config.vae.latent_channels + config.encoder.out_channels,
            out_channels=config.vae.latent_channels, down_block_types=down, up_block_types=up,
            block_out_channels=tuple(u.channels), layers_per_block=u.layers_per_block,
            attention_head_dim=u.head_dim, norm_num_groups=u.norm_groups, num_class_embeds=config.k)
        self.freq_attention = None
        self._group = config.k
        if config.freq_attention.enabled:
            blocks = [m for m in self.unet.modules() if isinstance(m, ResnetBlock2D)]
            self.freq_attention = nn.ModuleList(
                FrequencyAttention(b.out_channels, config.k, config.freq_attention.heads) for b in blocks)
            for block, layer in zip(blocks, self.freq_attention):
                block.register_forward_hook(self._hook(layer))

    def _hook(self, layer: FrequencyAttention):
        def hook(_module, _inputs, output):
            return layer(output, self._group)
        return hook

    def forward(self, latents: torch.Tensor, timesteps: torch.Tensor, freq_index: torch.Tensor,
                features: torch.Tensor, group: int | None = None) -> torch.Tensor:
        """``group``: slices per photo in this batch (K by default); stage 2 attends within each group."""
        self._group = group or self.k
        if self.freq_attention is not None and latents.shape[0] % self._group:
            raise ValueError(f"stage 2 needs whole photos: batch {latents.shape[0]} is not a multiple of {self._group}")
        x = torch.cat([latents, features], dim=1)
        return self.unet(x, timesteps, class_labels=freq_index).sample


class MotionModel(nn.Module):
    """VAE + image encoder + denoiser, plus the buffers that make latents and coefficients comparable across data:
    ``scales`` (K,) frequency-adaptive normalisation, ``latent_mean``/``latent_std`` (K, C_lat) whitening, and
    ``output_gain`` (K,) the per-frequency amplitude calibration of decoded motion in pixels (ones until
    ``scripts/calibrate_motion.py`` fits it; kept in the checkpoint payload, not the state dict, so training stages
    and resumes never carry a gain fitted for another denoiser)."""

    def __init__(self, config: MotionConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.vae = build_vae(config)
        self.encoder = ImageEncoder(config)
        self.denoiser = MotionDenoiser(config)
        c = config.vae.latent_channels
        self.register_buffer("scales", torch.ones(config.k))
        self.register_buffer("latent_mean", torch.zeros(config.k, c))
        self.register_buffer("latent_std", torch.ones(config.k, c))
        self.register_buffer("output_gain", torch.ones(config.k), persistent=False)
        # gains fitted at several DDIM step counts (``set_step_gains``); None: ``output_gain`` at every count
        self.gain_steps: tuple | None = None
        self.register_buffer("gain_table", None, persistent=False)

    def set_step_gains(self, steps, gains) -> None:
        """Gains (S, K) fitted at increasing step counts (S,), or ``steps=None`` to drop them."""
        if steps is None:
            self.gain_steps, self.gain_table = None, None
            return
        steps, gains = check_gain_table({"steps": steps, "gains": gains}, self.config.k)
        self.gain_steps = steps
        self.gain_table = torch.as_tensor(gains, device=self.output_gain.device)

    def gain_for_steps(self, steps: int) -> torch.Tensor:
        """The amplitude gains (K,) for a prediction with ``steps`` DDIM steps (``calibration.gain_for_steps``)."""
        if self.gain_table is None:
            return self.output_gain
        g = gain_for_steps(self.gain_steps, self.gain_table.cpu().numpy(), steps)
        return torch.as_tensor(g, dtype=self.output_gain.dtype, device=self.output_gain.device)

    # ---- latents <-> normalised coefficient slices
    def encode(self, z_coeffs: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
        """Normalised coefficients (B, K, 4, H, W) -> whitened latents (B, K, C, h, w)."""
        b, k = z_coeffs.shape[:2]
        dist = self.vae.encode(z_coeffs.flatten(0, 1)).latent_dist
        lat = dist.sample(generator) if sample else dist.mean
        lat = lat.unflatten(0, (b, k))
        return (lat - self.latent_mean[None, :k, :, None, None]) / self.latent_std[None, :k, :, None, None]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Whitened latents (B, K, C, h, w) -> normalised coefficients (B, K, 4, H, W)."""
        b, k = latents.shape[:2]
        lat = latents * self.latent_std[None, :k, :, None, None] + self.latent_mean[None, :k, :, None, None]
        return self.vae.decode(lat.flatten(0, 1)).sample.unflatten(0, (b, k))

    def features(self, photo: torch.Tensor) -> torch.Tensor:
        """Photo (B, 3, H, W) in [0, 1] at the map size -> (B, C_feat, h, w)."""
        return self.encoder(photo)

    def forward(self, kind: str, *args, **kwargs):
        """Training entry points, so that a DDP wrapper sees every forward: ``("vae", x, generator)`` ->
        (reconstruction, posterior); ``("denoise", noisy, t, freq_index, photos, drop, group)`` -> eps."""
        if kind == "vae":
            x, generator = args
            post = self.vae.encode(x).latent_dist
            return self.vae.decode(post.sample(generator)).sample, post
        if kind == "denoise":
            noisy, t, freq_index, photos, drop, group = args
            feats = self.features(photos)
            feats = torch.where(drop[:, None, None, None], torch.zeros_like(feats), feats)
            if group > 1:
                feats = feats.repeat_interleave(group, dim=0)
            # stage 1 slices are independent; stage 2 attends within each photo's group of K
            return self.denoiser(noisy, t, freq_index, feats, group=group if self.denoiser.freq_attention else 1)
        raise ValueError(f"unknown forward kind '{kind}'")

    def count_parameters(self) -> dict:
        n = lambda m: sum(p.numel() for p in m.parameters()) if m is not None else 0  # noqa: E731
        return {"vae": n(self.vae), "encoder": n(self.encoder), "unet": n(self.denoiser.unet),
                "freq_attention": n(self.denoiser.freq_attention)}
