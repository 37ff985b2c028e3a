"""Motion model v2: how much moves (a deterministic energy head) times how it moves (a diffusion model).

Why not v1's design: v1 sampled whole spectral volumes through a learned VAE; its samples collapsed toward zero
(the VAE alone kept 0.12-0.31 of the power, the sampler lost more, and per-step gains of 3-22x hid it), its motion was
speckle, and a few dozen real clips could not teach a photo encoder trained from scratch what moves. v2 factorises
the spectral volume of every frequency k >= 1 into

    c_k(p) = E_k(p) * n_k(p),   n_k = u_k / local RMS of u_k

* **E_k** (energy, px): the local RMS amplitude of frequency k, sqrt(mean over a 4x4 cell of |c_k|^2) at 1/4 of the
  map. A deterministic head regresses log(E_k + eps_k) from a frozen ImageNet trunk (EfficientNet-Lite0, stride
  4..32 maps and dense class evidence), colour and the optional "moves here" hint: where and how much is a
  regression problem, and a regression does not collapse.
* **u_k** (shape, 4 channels Re x, Im x, Re y, Im y at 1/8 of the map): the cell-mean coefficient divided by the
  cell's RMS amplitude: direction, phase and coherence (|u| = 1 when a cell moves as one). A latent diffusion model
  samples it; the "VAE" is a fixed linear code (area-average down, bilinear up), which keeps a field that smooth with
  no loss of amplitude. All K-1 frequencies are channels of one map, so the U-Net mixes frequencies directly (no
  separate frequency-attention stage) and one forward pass serves a whole photo.
* **decoding** (``shape_norm``): "local" (default) divides the sampled shape by its local RMS, so the amount of motion comes from the energy head alone and the diffusion decides
  direction, phase and how the motion varies within a neighbourhood (the RMS is taken over 9x9 pixels of the
  upsampled field, so interpolation between cells of different phase does not lose amplitude either). Measured on held-out clips: where a photo looked
  still-ish to the model the sampled |u| fell to 0.28 against 0.76 in the truth and divided the motion by another
  3x on top of the energy head's own error. "coherence" (the first decoding) keeps the sample's magnitude and
  divides by kappa_k, the energy-weighted mean coherence of the training data.

The constant term c_0 is set so the loop passes through the photo at t = 0 (as every real window does):
Re c_0 = -sum_k Re c_k, Im c_0 = 0. Shapes: B photos; K frequencies; maps (H, W), energy (h4, w4), latent (h8, w8).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from .config import MotionV2Config
from .trunk import CHANNELS, NUM_CLASSES, EfficientNetLite0

SHAPE_FLOOR = 0.05  # below this local shape magnitude a sample is taken for "no particular direction": it fades


@dataclasses.dataclass
class Condition:
    """What the networks see of one batch of photos: ``c8`` (B, C, h8, w8) for the denoiser, ``log_energy``
    (B, K-1, h4, w4) from the energy head, ``hint`` (B, 1, H, W) or None."""
    c8: torch.Tensor
    log_energy: torch.Tensor
    hint: Optional[torch.Tensor]


def trunk_features(trunk: EfficientNetLite0, photo: torch.Tensor) -> dict:
    """The trunk's maps for photos (B, 3, H, W) in [0, 1]: {4, 8, 16, 32, "logits"} (float32, no gradient)."""
    with torch.no_grad():
        return trunk(photo)


class _Res(nn.Module):
    def __init__(self, c: int, groups: int, dilation: int = 1):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(groups, c), nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation)
        self.n2, self.c2 = nn.GroupNorm(groups, c), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        y = self.c1(F.silu(self.n1(x)))
        return x + self.c2(F.silu(self.n2(y)))


def _groups(c: int) -> int:
    return 8 if c % 8 == 0 else 4 if c % 4 == 0 else 1


def area(x: torch.Tensor, size_hw) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size_hw), mode="area")


def hint_channels(hint: Optional[torch.Tensor], b: int, size_hw, like: torch.Tensor) -> torch.Tensor:
    """[hint, present] (B, 2, h, w): the hint area-averaged to ``size_hw``, and 1 for photos with a hint. A photo
    of a batch without a hint has the value -1 everywhere in ``hint`` (absent = automatic)."""
    if hint is None:
        return like.new_zeros((b, 2, *size_hw))
    present = (hint.flatten(1).amax(1) >= 0).to(like)[:, None, None, None]
    h = area(hint.to(like).clamp_min(0.0), size_hw) * present
    return torch.cat([h, present.expand(-1, 1, *size_hw)], dim=1)


class ConditionEncoder(nn.Module):
    """Trunk maps + colour + hint -> the condition map ``c8`` at 1/8 and the fine skip ``s4`` at 1/4."""

    def __init__(self, cfg: MotionV2Config):
        super().__init__()
        c = cfg.cond_channels
        self.classes = nn.Conv2d(NUM_CLASSES, cfg.class_channels, 1)
        n_in = CHANNELS[8] + CHANNELS[16] + CHANNELS[32] + cfg.class_channels + 3 + 2
        self.inp = nn.Conv2d(n_in, c, 1)
        self.blocks = nn.Sequential(*[_Res(c, _groups(c), dilation=d) for d in (1, 2, 4, 1)[:cfg.cond_blocks]])
        self.global_mlp = nn.Sequential(nn.Linear(c, c), nn.SiLU(), nn.Linear(c, 2 * c))
        nn.init.zeros_(self.global_mlp[-1].weight)
        nn.init.zeros_(self.global_mlp[-1].bias)
        self.skip = nn.Conv2d(CHANNELS[4] + 3 + 2, cfg.energy_channels, 3, padding=1)

    def forward(self, feats: dict, photo: torch.Tensor, hint: Optional[torch.Tensor]) -> tuple:
        f8 = feats[8]
        b, _, h8, w8 = f8.shape
        up = lambda x: F.interpolate(x, size=(h8, w8), mode="bilinear", align_corners=False)  # noqa: E731
        classes = self.classes(torch.log_softmax(feats["logits"], dim=1))
        x = torch.cat([f8, up(feats[16]), up(feats[32]), up(classes), area(photo, (h8, w8)),
                       hint_channels(hint, b, (h8, w8), f8)], dim=1)
        x = self.blocks(self.inp(x))
        scale, shift = self.global_mlp(x.mean((2, 3))).chunk(2, dim=1)  # the whole photo's context
        c8 = x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        f4 = feats[4]
        s4 = self.skip(torch.cat([f4, area(photo, f4.shape[-2:]), hint_channels(hint, b, f4.shape[-2:], f4)], 1))
        return c8, s4


class EnergyHead(nn.Module):
    """(c8, s4) -> log(E_k + eps_k) for k = 1..K-1 at 1/4 of the map, (B, K-1, h4, w4)."""

    def __init__(self, cfg: MotionV2Config):
        super().__init__()
        e = cfg.energy_channels
        self.c8 = nn.Conv2d(cfg.cond_channels, e, 3, padding=1)
        self.mix = nn.Sequential(nn.SiLU(), nn.Conv2d(2 * e, e, 3, padding=1), _Res(e, _groups(e)),
                                 _Res(e, _groups(e)), nn.GroupNorm(_groups(e), e), nn.SiLU())
        self.out = nn.Conv2d(e, cfg.k - 1, 3, padding=1)

    def forward(self, c8: torch.Tensor, s4: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.c8(c8), size=s4.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(self.mix(torch.cat([x, s4], dim=1)))


class ShapeDenoiser(nn.Module):
    """diffusers ``UNet2DModel`` over [noisy shape latent (4(K-1) channels) | condition c8] -> model output
    (v-prediction) of the shape latent."""

    def __init__(self, cfg: MotionV2Config):
        super().__init__()
        from diffusers import UNet2DModel

        u = cfg.unet
        down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in u.attention)
        up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(u.attention))
        self.unet = UNet2DModel(
            sample_size=cfg.latent_size[::-1], in_channels=cfg.shape_channels + cfg.cond_channels,
            out_channels=cfg.shape_channels, down_block_types=down, up_block_types=up,
            block_out_channels=tuple(u.channels), layers_per_block=u.layers_per_block,
            attention_head_dim=u.head_dim, norm_num_groups=u.norm_groups)

    def forward(self, latents: torch.Tensor, timesteps: torch.Tensor, c8: torch.Tensor) -> torch.Tensor:
        return self.unet(torch.cat([latents, c8], dim=1), timesteps).sample


class MotionModelV2(nn.Module):
    """Energy head + shape diffusion on a frozen trunk. Buffers (from the training data, saved with the weights):
    ``scales`` (K,) s_k, ``eps`` (K-1,) envelope floors, ``shape_std`` (4(K-1),) latent whitening, ``coherence``
    (K-1,) kappa_k. The trunk is not part of the state dict: its weights come from the installed package
    (``attach_trunk``), so a checkpoint holds only what was trained here."""

    architecture = "v2"

    def __init__(self, config: MotionV2Config):
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = ConditionEncoder(config)
        self.energy = EnergyHead(config)
        self.denoiser = ShapeDenoiser(config)
        k = config.k
        self.register_buffer("scales", torch.ones(k))
        self.register_buffer("eps", torch.full((k - 1,), 0.01))
        self.register_buffer("shape_std", torch.ones(config.shape_channels))
        self.register_buffer("coherence", torch.ones(k - 1))
        object.__setattr__(self, "_trunk", None)  # not a submodule: never saved, never trained

    # ---- the trunk
    def attach_trunk(self, trunk: EfficientNetLite0) -> "MotionModelV2":
        object.__setattr__(self, "_trunk", trunk)
        return self

    @property
    def trunk(self) -> EfficientNetLite0:
        if self._trunk is None:
            from .trunk import load_trunk

            self.attach_trunk(load_trunk(device=self.scales.device))
        return self._trunk

    def _apply(self, fn, *args, **kwargs):  # .to(device) moves the attached trunk too
        out = super()._apply(fn, *args, **kwargs)
        if self._trunk is not None:
            self._trunk._apply(fn, *args, **kwargs)
        return out

    # ---- conditioning
    def condition(self, photo: torch.Tensor, hint: Optional[torch.Tensor] = None,
                  feats: Optional[dict] = None) -> Condition:
        """Photos (B, 3, H, W) in [0, 1] at the map size (and their trunk maps when cached) -> Condition."""
        feats = feats if feats is not None else trunk_features(self.trunk, photo)
        c8, s4 = self.encoder(feats, photo, hint)
        return Condition(c8, self.energy(c8, s4), hint)

    def forward(self, kind: str, *args):
        """Training entry point (so that a DDP wrapper sees every forward): ``("train", feats, photo, hint, noisy,
        t, keep)`` -> (log energy (B, K-1, h4, w4), denoiser output (B, 4(K-1), h8, w8)); ``keep`` (B,) is 0 for
        photos whose condition is dropped (classifier-free guidance)."""
        if kind != "train":
            raise ValueError(f"unknown forward kind '{kind}'")
        feats, photo, hint, noisy, t, keep = args
        c8, s4 = self.encoder(feats, photo, hint)
        return self.energy(c8, s4), self.denoiser(noisy, t, c8 * keep[:, None, None, None])

    # ---- latents <-> coefficients
    def energy_px(self, log_energy: torch.Tensor) -> torch.Tensor:
        """log(E + eps) (B, K-1, h4, w4) -> E in px, >= 0."""
        return (log_energy.exp() - self.eps[None, :, None, None]).clamp_min(0.0)

    def decode(self, latents: torch.Tensor, log_energy: torch.Tensor) -> torch.Tensor:
        """Whitened shape latents (B, 4(K-1), h8, w8) + log energy -> coefficients (B, K, 4, H, W) in px."""
        cfg = self.config
        k = cfg.k
        size = (cfg.height, cfg.width)
        u = (latents * self.shape_std[None, :, None, None]).unflatten(1, (k - 1, 4))  # (B, K-1, 4, h8, w8)
        u = F.interpolate(u.flatten(1, 2), size=size, mode="bilinear", align_corners=False).unflatten(1, (k - 1, 4))
        if cfg.shape_norm == "local":  # amplitude from the energy head alone: unit local RMS of the shape
            local = F.avg_pool2d(u.pow(2).sum(2), 9, stride=1, padding=4, count_include_pad=False).sqrt()
            u = u / (local + SHAPE_FLOOR)[:, :, None]
            gain = torch.ones_like(self.coherence)
        else:  # "coherence": the sample's own magnitude times 1 / kappa_k
            gain = 1.0 / self.coherence
        e = F.interpolate(self.energy_px(log_energy), size=size, mode="bilinear", align_corners=False)
        c = u * (e * gain[None, :, None, None])[:, :, None]
        c0 = torch.zeros_like(c[:, :1])
        c0[:, 0, 0] = -c[:, :, 0].sum(1)  # Re x_0: the loop passes through the photo at t = 0
        c0[:, 0, 2] = -c[:, :, 2].sum(1)  # Re y_0
        return torch.cat([c0, c], dim=1)

    def count_parameters(self) -> dict:
        n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        return {"encoder": n(self.encoder), "energy": n(self.energy), "unet": n(self.denoiser)}


# ------------------------------------------------------------------------------------------------ targets
def energy_and_shape(coeffs: torch.Tensor, eps: torch.Tensor) -> tuple:
    """Training targets from true coefficients (B, K, 4, H, W): energy E (B, K-1, H/4, W/4) in px and shape
    u (B, 4(K-1), H/8, W/8) = cell mean of c_k / (cell RMS of c_k + eps_k)."""
    c = coeffs[:, 1:]
    b, k1, _, h, w = c.shape
    power = (c ** 2).sum(2)  # (B, K-1, H, W)
    energy = area(power, (h // 4, w // 4)).sqrt()
    mean8 = area(c.flatten(1, 2), (h // 8, w // 8)).unflatten(1, (k1, 4))
    rms8 = area(power, (h // 8, w // 8)).sqrt()
    shape = mean8 / (rms8 + eps[None, :, None, None])[:, :, None]
    return energy, shape.flatten(1, 2)


def amplitude(coeffs: torch.Tensor) -> torch.Tensor:
    """Motion amplitude sqrt(sum_{k>=1} |c_k|^2) of coefficients (B, K, 4, H, W) -> (B, 1, H, W)."""
    return (coeffs[:, 1:] ** 2).sum((1, 2)).sqrt()[:, None]


def training_hint(amp: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A "moves here" hint like a person would paint it from the true amplitude (B, 1, H, W) -> (B, 1, H, W) in
    [0, 1]: where the amplitude is above a random share of its peak, coarse (cells of 8-32 px), dilated, blurred."""
    b, _, h, w = amp.shape
    out = []
    for i in range(b):
        r = torch.rand(4, generator=generator)
        cell = int(8 * 2 ** int(r[0] * 3))  # 8, 16 or 32 px
        a = F.avg_pool2d(amp[i:i + 1], cell, ceil_mode=True)
        m = (a > (0.1 + 0.3 * float(r[1])) * a.amax().clamp_min(1e-6)).float()
        grow = int(r[2] * 2)
        if grow:
            m = F.max_pool2d(m, 2 * grow + 1, stride=1, padding=grow)
        m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
        sigma = 1 + 3 * float(r[3])
        out.append(_blur(m, sigma).clamp(0, 1))
    return torch.cat(out)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = int(3 * sigma)
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = (g / g.sum()).view(1, 1, 1, -1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), g)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), g.transpose(2, 3))
