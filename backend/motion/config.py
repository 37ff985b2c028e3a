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
    prediction_type: str = "epsilon"          # v1: epsilon; v2: v_prediction
    timestep_spacing: str = "leading"         # v2: "trailing" (the first step starts at pure noise)
    rescale_betas_zero_snr: bool = False      # v2: True (zero terminal SNR: samples do not regress to the mean)


def _check_unet(latent_size: tuple, unet) -> None:
    """The U-Net's levels must halve the latent grid evenly and name attention per level."""
    w, h = latent_size
    u = 2 ** (len(unet.channels) - 1)
    if w % u or h % u:
        raise ValueError(f"latent {w}x{h} is not divisible by the U-Net's factor {u}: use fewer U-Net levels")
    if len(unet.attention) != len(unet.channels):
        raise ValueError("unet.attention needs one entry per unet.channels entry")


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
        _check_unet(self.latent_size, self.unet)
        if not 0.0 <= self.cond_drop < 1.0:
            raise ValueError("cond_drop must be in [0, 1)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MotionConfig":
        subs = {"vae": VAEConfig, "encoder": EncoderConfig, "unet": UNetConfig,
                "freq_attention": FrequencyAttentionConfig, "diffusion": DiffusionConfig}
        return _from_dict(cls, d, subs)

    def with_stage2(self, enabled: bool = True) -> "MotionConfig":
        return dataclasses.replace(self, freq_attention=dataclasses.replace(self.freq_attention, enabled=enabled))


@dataclass(frozen=True)
class ShapeUNetConfig:
    """v2's denoiser: a diffusers ``UNet2DModel`` over all K-1 frequencies' shape fields stacked as channels."""
    channels: tuple = (64, 128, 128)
    attention: tuple = (False, True, True)
    layers_per_block: int = 1
    head_dim: int = 32
    norm_groups: int = 16


def _v2_diffusion() -> DiffusionConfig:
    return DiffusionConfig(prediction_type="v_prediction", timestep_spacing="trailing", rescale_betas_zero_snr=True)


@dataclass(frozen=True)
class MotionV2Config:
    """Motion model v2 (``backend/motion/models_v2.py``): a frozen ImageNet trunk, a deterministic energy head
    (how much each pixel moves per frequency) and a diffusion model over the envelope-normalised "shape" of the
    motion (direction, phase, coherence) at 1/8 resolution. Optional "moves here" hint."""
    architecture: str = "v2"
    name: str = "gid-motion-v2"
    width: int = 256
    height: int = 160
    k: int = 16
    trunk: str = "efficientnet-lite0"
    cond_channels: int = 96        # condition map at 1/8 (the shape latent's grid)
    class_channels: int = 32       # projection of the dense ImageNet class evidence
    energy_channels: int = 64      # energy head width at 1/4
    cond_blocks: int = 3
    cond_drop: float = 0.1         # image condition dropped for classifier-free guidance
    hint_drop: float = 0.5         # training hints dropped (absent = automatic)
    envelope_floor: float = 0.1    # eps_k = envelope_floor * s_k (s_k: 95th percentile of |c_k| in the data)
    shape_norm: str = "local"      # decoding: "local" (amplitude from the energy head) or "coherence" (models_v2)
    unet: ShapeUNetConfig = field(default_factory=ShapeUNetConfig)
    diffusion: DiffusionConfig = field(default_factory=_v2_diffusion)

    @property
    def latent_size(self) -> tuple:
        """(w, h) of the shape latent (1/8 of the map)."""
        return self.width // 8, self.height // 8

    @property
    def energy_size(self) -> tuple:
        """(w, h) of the energy map (1/4 of the map)."""
        return self.width // 4, self.height // 4

    @property
    def shape_channels(self) -> int:
        return 4 * (self.k - 1)

    def validate(self) -> None:
        if self.architecture != "v2":
            raise ValueError(f"architecture must be 'v2', got {self.architecture!r}")
        if self.width % 32 or self.height % 32:
            raise ValueError(f"map size {self.width}x{self.height} must be divisible by 32 (the trunk's stride)")
        _check_unet(self.latent_size, self.unet)
        if not (0.0 <= self.cond_drop < 1.0 and 0.0 <= self.hint_drop <= 1.0):
            raise ValueError("cond_drop must be in [0, 1) and hint_drop in [0, 1]")
        if self.k < 2:
            raise ValueError("k must be at least 2")
        if self.shape_norm not in ("local", "coherence"):
            raise ValueError(f"shape_norm must be 'local' or 'coherence', got {self.shape_norm!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MotionV2Config":
        subs = {"unet": ShapeUNetConfig, "diffusion": DiffusionConfig}
        return _from_dict(cls, d, subs)


def _from_dict(cls, d: dict, subs: dict):
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
            kw[key] = tuple(value) if isinstance(value, list) else value
    return cls(**kw)


def config_from_dict(d: dict):
    """The saved config of either architecture (v1 files have no ``architecture`` field)."""
    if d.get("architecture") == "v2":
        return MotionV2Config.from_dict(d)
    return MotionConfig.from_dict(d)


def config_differences(a, b, prefix: str = "") -> list:
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


def tiny_v2_config() -> MotionV2Config:
    """A seconds-fast v2 model for tests: 64x64 maps, 8x8 shape latents."""
    return MotionV2Config(name="tiny-v2-random", width=64, height=64, cond_channels=16, class_channels=8,
                          energy_channels=16, cond_blocks=1,
                          unet=ShapeUNetConfig(channels=(32, 32), attention=(False, True), layers_per_block=1,
                                               head_dim=8, norm_groups=8))


def tiny_config() -> MotionConfig:
    """A seconds-fast model for tests and the service's ``--model tiny``: 64x48 maps, 8x6 latents."""
    return MotionConfig(
        name="tiny-random", width=64, height=48,
        vae=VAEConfig(channels=(8, 8, 8, 8), norm_groups=4),
        encoder=EncoderConfig(channels=(8, 8), out_channels=4, norm_groups=4),
        unet=UNetConfig(channels=(16, 16), attention=(False, True), head_dim=8, norm_groups=4),
        freq_attention=FrequencyAttentionConfig(enabled=True, heads=2),
    )
