"""Model presets as plain factory functions returning a `WavJEPAConfig`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from hear_wavjepa.model.config import WAVJEPA_CONV_LAYERS, TransformerConfig, WavJEPAConfig


def base() -> WavJEPAConfig:
    """WavJEPA-B: 6-layer 512-ch front end, ViT-B encoder (768 x 12), predictor 384 x 12."""
    return WavJEPAConfig()


def large() -> WavJEPAConfig:
    """Encoder 1024 x 24 (16 heads); the predictor stays 384 x 12 (docs/model.md, Presets)."""
    return WavJEPAConfig(encoder=TransformerConfig(dim=1024, depth=24, heads=16, mlp_dim=4096))


def base_nat() -> WavJEPAConfig:
    """WavJEPA-Nat-B: two independent conv stacks (one per ear), 400 tokens per crop."""
    return dataclasses.replace(base(), in_channels=2)


def small() -> WavJEPAConfig:
    """GPU-hour-sized: the base model's 512-ch front end, encoder 384 x 8 (6 heads), predictor
    192 x 6 (top-4 target layers); about a third of base's compute per crop, a fifth with the
    front end frozen (train/small-gpu.yaml)."""
    return WavJEPAConfig(
        encoder=TransformerConfig(dim=384, depth=8, heads=6, mlp_dim=1536),
        predictor=TransformerConfig(dim=192, depth=6, heads=6, mlp_dim=768),
        top_k_targets=4,
    )


def tiny() -> WavJEPAConfig:
    """CPU-sized: 128-ch front end, encoder 192 x 4, predictor 96 x 2; same tokens and masks."""
    return WavJEPAConfig(
        conv_layers=tuple((128, k, s) for _, k, s in WAVJEPA_CONV_LAYERS),
        encoder=TransformerConfig(dim=192, depth=4, heads=3, mlp_dim=768),
        predictor=TransformerConfig(dim=96, depth=2, heads=3, mlp_dim=384),
        top_k_targets=2,
    )


def tiny_nat() -> WavJEPAConfig:
    return dataclasses.replace(tiny(), in_channels=2)


PRESETS: dict[str, Callable[[], WavJEPAConfig]] = {
    "base": base,
    "large": large,
    "base-nat": base_nat,
    "small": small,
    "tiny": tiny,
    "tiny-nat": tiny_nat,
}


def preset(name: str) -> WavJEPAConfig:
    """The config of preset `name`; a ValueError lists the valid names."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def count_parameters(config: WavJEPAConfig | str) -> dict[str, int]:
    """Parameter counts of the training model, built on the meta device (no memory used)."""
    from hear_wavjepa.model.jepa import WavJEPA

    if isinstance(config, str):
        config = preset(config)
    with torch.device("meta"):
        model = WavJEPA(config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "trainable": trainable,
        "teacher": sum(p.numel() for p in model.teacher.parameters()),
        "inference": sum(p.numel() for p in model.encoder.parameters()),
        "positional": sum(b.numel() for b in model.buffers()),
    }
