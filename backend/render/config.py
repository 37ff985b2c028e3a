"""The renderer's configuration (saved with the weights and checked on load) and its factory."""
from __future__ import annotations

import dataclasses

KINDS = ("pyramid", "baseline")


@dataclasses.dataclass(frozen=True)
class RendererConfig:
    """What network to build.

    ``kind``: "pyramid" = the paper's renderer (multi-scale features of I_0 softmax-splatted at every scale with
    the motion-magnitude metric, then a synthesis decoder); "baseline" = the ablation's single-scale splat with a
    learned metric. ``channels``: encoder feature channels at full, 1/2, 1/4 ... resolution (the pyramid has one
    level per entry; the baseline uses ``channels[0]`` at full resolution and the rest inside its decoder).
    ``metric_range``: softmax-splat metric of the fastest-moving pixel (static = 0), as in the preview.
    ``min_motion_px``: RMS motion below which the metric is not stretched to the full range (sub-pixel noise
    does not decide who is in front).
    ``source_inputs``: the decoder's finest level also sees the photo where the pixel started (unwarped), the
    photo sampled at p - F(p) (backward warping with the forward flow: what the frame edge brings in) and the flow
    itself; with them it can tell where the splat's content or hole filling is less likely than the photo's own
    pixels (pyramid only; fine-tuning from a checkpoint without them starts from that checkpoint's output).
    ``decoder_blocks``: residual blocks per decoder level (pyramid only; a checkpoint with fewer starts a run with
    more, the new ones beginning as the identity).
    """

    kind: str = "pyramid"
    channels: tuple = (16, 32, 48)
    metric_range: float = 20.0
    min_motion_px: float = 1.0
    source_inputs: bool = False
    decoder_blocks: int = 1

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "source_inputs", bool(self.source_inputs))
        object.__setattr__(self, "decoder_blocks", int(self.decoder_blocks))
        self.validate()

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"renderer kind '{self.kind}' is unknown: use one of {', '.join(KINDS)}")
        if not 1 <= len(self.channels) <= 5 or min(self.channels) < 4:
            raise ValueError(f"channels {self.channels}: give 1 to 5 levels of at least 4 channels each")
        if len(self.channels) < 2 and self.kind == "baseline":
            raise ValueError("the baseline needs at least 2 channel entries (full resolution + its decoder)")
        if not 0 < self.metric_range <= 60:
            raise ValueError(f"metric_range must be in (0, 60] (exp() must not underflow), got {self.metric_range}")
        if self.source_inputs and self.kind != "pyramid":
            raise ValueError("source_inputs is an option of the pyramid renderer")
        if not 1 <= self.decoder_blocks <= 8:
            raise ValueError(f"decoder_blocks must be 1 to 8, got {self.decoder_blocks}")
        if self.decoder_blocks != 1 and self.kind != "pyramid":
            raise ValueError("decoder_blocks is an option of the pyramid renderer")
        if self.min_motion_px <= 0:
            raise ValueError(f"min_motion_px must be positive, got {self.min_motion_px}")

    @property
    def multiple(self) -> int:
        """Frame sizes are padded to a multiple of this (one halving per extra level)."""
        return 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "RendererConfig":
        if not isinstance(data, dict):
            raise ValueError(f"renderer config must be a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"renderer config has unknown fields {unknown}: the checkpoint was written by another "
                             "version of image-dynamics")
        return cls(**data)
