"""Configs of the motion model. Plain frozen dataclasses: saved with every checkpoint and compared on load."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class VAEConfig:
    """diffusers ``AutoencoderKL`` over one 4-channel frequency slice; 2**(len(channels)-1) times smaller latents."""
    channels: tuple = (16, 32, 48, 64)
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_groups: int = 8
    mid_attention: bool = False


@dataclass(frozen=True)
class EncoderConfig:
    """Small ResNet over the photo: a stride-4 stem, one stride-2 stage per further entry of ``channels``."""
    channels: tuple = (32, 64)
    out_channels: int = 16
    norm_groups: int = 8


@dataclass(frozen=True)
class UNetConfig:
    """diffusers ``UNet2DModel`` on [noisy latent | image features]; the frequency index is its class label."""
    channels: tuple = (48, 96, 96)
    attention: tuple = (False, True, True)   # self-attention (spatial) per resolution
    layers_per_block: int = 1
    head_dim: int = 32
    norm_groups: int = 16


@dataclass(frozen=True)
class FrequencyAttentionConfig:
    """Stage 2: attention across the K frequencies after every U-Net ResNet block (zero-initialised output)."""
    enabled: bool = False
    heads: int = 4


@dataclass(frozen=True)
class DiffusionConfig:
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    prediction_type: str = "epsilon"


@dataclass(frozen=True)
class MotionConfig:
    name: str = "gid-motion"
    width: int = 256          # map size the model predicts (W, H)
    height: int = 160
    k: int = 16               # frequency bins
    cond_drop: float = 0.1    # share of training samples whose image condition is dropped (classifier-free guidance)
    vae: VAEConfig = field(default_factory=VAEConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    freq_attention: FrequencyAttentionConfig = field(default_factory=FrequencyAttentionConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.vae.channels) - 1)

    @property
    def latent_size(self) -> tuple:
        """(w, h) of the latent grid."""
        return self.width // self.downsample, self.height // self.downsample

    def validate(self) -> None:
        f = self.downsample
        if self.width % f or self.height % f:
            raise ValueError(f"map size {self.width}x{self.height} must be divisible by the VAE's factor {f}")
        if 4 * 2 ** (len(self.encoder.channels) - 1) != f:
            raise ValueError(f"the image encoder downsamples {4 * 2 ** (len(self.encoder.channels) - 1)}x but the "
                             f"VAE {f}x: they must match")
        w, h = self.latent_size
        u = 2 ** (len(self.unet.channels) - 1)
        if w % u or h % u:
            raise ValueError(f"latent {w}x{h} is not divisible by the U-Net's factor {u}: use fewer U-Net levels")
        if len(self.unet.attention) != len(self.unet.channels):
            raise ValueError("unet.attention needs one entry per unet.channels entry")
        if not 0.0 <= self.cond_drop < 1.0:
            raise ValueError("cond_drop must be in [0, 1)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MotionConfig":
        subs = {"vae": VAEConfig, "encoder": EncoderConfig, "unet": UNetConfig,
                "freq_attention": FrequencyAttentionConfig, "diffusion": DiffusionConfig}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown motion config fields: {', '.join(sorted(unknown))}")
        kw = {}
        for key, value in d.items():
            if key in subs:
                sub_known = {f.name for f in dataclasses.fields(subs[key])}
                bad = set(value) - sub_known
                if bad:
                    raise ValueError(f"unknown fields in motion config '{key}': {', '.join(sorted(bad))}")
                kw[key] = subs[key](**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
            else:
                kw[key] = value
        return cls(**kw)

    def with_stage2(self, enabled: bool = True) -> "MotionConfig":
        return dataclasses.replace(self, freq_attention=dataclasses.replace(self.freq_attention, enabled=enabled))


def config_differences(a: MotionConfig, b: MotionConfig, prefix: str = "") -> list:
    """Dotted names of the fields that differ between two configs."""
    da, db = a.to_dict(), b.to_dict()
    out = []

    def walk(x, y, path):
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key), y.get(key), f"{path}.{key}" if path else key)
        elif x != y:
            out.append(f"{path} ({x!r} vs {y!r})")

    walk(da, db, prefix)
    return out


def tiny_config() -> MotionConfig:
    """A seconds-fast model for tests and the service's ``--model tiny``: 64x48 maps, 8x6 latents."""
    return MotionConfig(
        name="tiny-random", width=64, height=48,
        vae=VAEConfig(channels=(8, 8, 8, 8), norm_groups=4),
        encoder=EncoderConfig(channels=(8, 8), out_channels=4, norm_groups=4),
        unet=UNetConfig(channels=(16, 16), attention=(False, True), head_dim=8, norm_groups=4),
        freq_attention=FrequencyAttentionConfig(enabled=True, heads=2),
    )
