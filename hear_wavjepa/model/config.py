"""Architecture and masking configs: small frozen dataclasses that round-trip through JSON/YAML."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from hear_wavjepa.audio import SAMPLE_RATE
from hear_wavjepa.config_io import check_keys

#: int(2.01 * 16000): float truncation makes this 32,159, not 32,160 (docs/faithfulness.md).
CROP_SAMPLES = 32_159
#: wav2vec2's feature encoder minus its last layer: (out_channels, kernel, stride) per layer.
WAVJEPA_CONV_LAYERS: tuple[tuple[int, int, int], ...] = (
    (512, 10, 5),
    (512, 3, 2),
    (512, 3, 2),
    (512, 3, 2),
    (512, 3, 2),
    (512, 2, 2),
)


@dataclass(frozen=True)
class TransformerConfig:
    """A post-LN transformer stack (+ final LayerNorm). Widths in features, depth in layers."""

    dim: int
    depth: int
    heads: int
    mlp_dim: int

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")


@dataclass(frozen=True)
class MaskingConfig:
    """The time-inverse block masker (docs/model.md, Masking); probabilities are fairseq's
    `mask_prob`."""

    groups: int = 4
    context_prob: float = 0.65
    context_span: int = 10
    target_prob: float = 0.25
    target_span: int = 10
    min_context_ratio: float = 0.1
    #: False (faithful): span starts stop at T - L - 1, so the last frame is never masked.
    spans_reach_end: bool = False
    #: Nat token order of the masks: "aligned" masks the same times in both ears (the fix);
    #: "interleaved" reproduces the reference's time-major repeat over channel-major tokens.
    nat_order: Literal["aligned", "interleaved"] = "aligned"

    def __post_init__(self) -> None:
        if self.nat_order not in ("aligned", "interleaved"):
            raise ValueError(
                f"nat_order must be 'aligned' or 'interleaved', got {self.nat_order!r}"
            )
        if not 0.0 <= self.min_context_ratio < 1.0:
            raise ValueError(f"min_context_ratio must be in [0, 1), got {self.min_context_ratio}")
        if self.groups < 1:
            raise ValueError(f"groups must be >= 1, got {self.groups}")


@dataclass(frozen=True)
class WavJEPAConfig:
    """Everything that determines the architecture; stored in every checkpoint."""

    in_channels: int = 1
    conv_layers: tuple[tuple[int, int, int], ...] = WAVJEPA_CONV_LAYERS
    crop_samples: int = CROP_SAMPLES
    encoder: TransformerConfig = field(
        default_factory=lambda: TransformerConfig(dim=768, depth=12, heads=12, mlp_dim=3072)
    )
    predictor: TransformerConfig = field(
        default_factory=lambda: TransformerConfig(dim=384, depth=12, heads=12, mlp_dim=1536)
    )
    #: the targets average the outputs of this many top target-encoder layers.
    top_k_targets: int = 8
    #: how each target layer is standardised per crop: "joint" over (tokens x features), as the
    #: reference; or "per_feature", each feature over the crop's tokens (data2vec's instance norm).
    target_norm: str = "joint"
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        if self.in_channels not in (1, 2):
            raise ValueError(f"in_channels must be 1 or 2, got {self.in_channels}")
        if not 1 <= self.top_k_targets <= self.encoder.depth:
            raise ValueError(
                f"top_k_targets must be in 1..{self.encoder.depth}, got {self.top_k_targets}"
            )
        if self.target_norm not in ("joint", "per_feature"):
            raise ValueError(f"target_norm must be joint or per_feature, got {self.target_norm!r}")
        if self.frames_per_crop < 1:
            raise ValueError(f"crop of {self.crop_samples} samples gives no frame")

    @property
    def frames_per_crop(self) -> int:
        """Frames (tokens per channel) of one crop, from the unpadded conv recursion."""
        return frames_for_samples(self.crop_samples, self.conv_layers)

    @property
    def tokens_per_crop(self) -> int:
        return self.in_channels * self.frames_per_crop

    @property
    def hop_samples(self) -> int:
        hop = 1
        for _, _, stride in self.conv_layers:
            hop *= stride
        return hop

    @property
    def receptive_field(self) -> int:
        """Input samples seen by one frame."""
        rf = 1
        for _, kernel, stride in reversed(self.conv_layers):
            rf = (rf - 1) * stride + kernel
        return rf

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WavJEPAConfig:
        data = dict(data)
        check_keys(data, (f.name for f in dataclasses.fields(cls)), "WavJEPAConfig")
        if "conv_layers" in data:
            data["conv_layers"] = tuple(
                tuple(int(v) for v in layer) for layer in data["conv_layers"]
            )
        for key in ("encoder", "predictor"):
            if key in data and isinstance(data[key], dict):
                data[key] = TransformerConfig(**data[key])
        if "masking" in data and isinstance(data["masking"], dict):
            data["masking"] = MaskingConfig(**data["masking"])
        return cls(**data)


def frames_for_samples(samples: int, conv_layers: tuple[tuple[int, int, int], ...]) -> int:
    """L_{k+1} = floor((L_k - K_k) / S_k) + 1 through the conv stack; 0 if too short."""
    length = samples
    for _, kernel, stride in conv_layers:
        if length < kernel:
            return 0
        length = (length - kernel) // stride + 1
    return length
