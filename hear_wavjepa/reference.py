"""Import the reference's Lightning checkpoints (labhamlet/wavjepa key layout, docs/model.md)."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from hear_wavjepa.checkpoint import CheckpointError, load_strict, save_checkpoint
from hear_wavjepa.model.config import (
    CROP_SAMPLES,
    WAVJEPA_CONV_LAYERS,
    TransformerConfig,
    WavJEPAConfig,
)
from hear_wavjepa.model.jepa import AudioEncoder, WavJEPA
from hear_wavjepa.model.positions import positional_table

#: (reference key pattern, our key template); applied after `_orig_mod.` prefixes are removed.
KEY_MAP: list[tuple[str, str]] = [
    (r"extract_audio\.cnn\.(\d+)\.0\.weight", r"encoder.frontend.stacks.0.convs.\1.weight"),
    (r"extract_audio\.cnn\.0\.2\.(weight|bias)", r"encoder.frontend.stacks.0.norm.\1"),
    (
        r"extract_audio\.cnns\.(\d+)\.(\d+)\.0\.weight",
        r"encoder.frontend.stacks.\1.convs.\2.weight",
    ),
    (r"extract_audio\.cnns\.(\d+)\.0\.2\.(weight|bias)", r"encoder.frontend.stacks.\1.norm.\2"),
    (r"feature_norms\.(weight|bias)", r"encoder.frontend.feature_norm.\1"),
    (r"post_extraction_mapper\.(weight|bias)", r"encoder.frontend.feature_proj.\1"),
    (r"encoder\.(.+)", r"encoder.transformer.\1"),
    (r"teacher_encoder\.(.+)", r"teacher.\1"),
    (r"decoder\.(.+)", r"predictor.transformer.\1"),
    (r"encoder_to_decoder_mapper\.(weight|bias)", r"predictor.input_proj.\1"),
    (r"decoder_to_encoder_mapper\.(weight|bias)", r"predictor.output_proj.\1"),
    (r"mask_token", r"predictor.mask_token"),
]
POSITIONAL_KEYS = ("pos_encoding_encoder", "pos_encoding_decoder")


def read_reference(path: str | os.PathLike, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a reference `.ckpt`, loaded with `weights_only=True` unless trusted."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: cannot be read with torch.load(weights_only=True) because it pickles "
            f"objects other than tensors ({str(exc).splitlines()[0]}). Loading it would execute "
            "code from the file; if you trust its origin, pass trust_pickle=True "
            "(CLI: --trust-pickle)"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint: {exc}") from exc
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds no state_dict of tensors")
    return {k.replace("_orig_mod.", ""): v for k, v in state.items()}


def map_keys(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Rename reference keys to ours; positional tables are dropped (they are rebuilt)."""
    mapped, unknown = {}, []
    for key, value in state.items():
        if key in POSITIONAL_KEYS:
            continue
        for pattern, template in KEY_MAP:
            if re.fullmatch(pattern, key):
                mapped[re.sub(pattern, template, key)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{source}: keys not in the reference layout: {sorted(unknown)[:10]}")
    return mapped


def infer_config(state: dict[str, torch.Tensor], source: str) -> WavJEPAConfig:
    """The architecture implied by the tensor shapes (strides follow the wav2vec2 layout)."""
    channels = 2 if any(k.startswith("extract_audio.cnns.") for k in state) else 1
    prefix = "extract_audio.cnns.0." if channels == 2 else "extract_audio.cnn."
    convs = sorted(
        (int(m.group(1)), v.shape)
        for k, v in state.items()
        if (m := re.fullmatch(re.escape(prefix) + r"(\d+)\.0\.weight", k))
    )
    if len(convs) != len(WAVJEPA_CONV_LAYERS):
        raise CheckpointError(
            f"{source}: expected {len(WAVJEPA_CONV_LAYERS)} conv layers, found {len(convs)}"
        )
    conv_layers = tuple(
        (int(shape[0]), int(shape[2]), stride)
        for (_, shape), (_, _, stride) in zip(convs, WAVJEPA_CONV_LAYERS, strict=True)
    )

    def stack(name: str, head_dim: int) -> TransformerConfig:
        depth = len(
            {int(m.group(1)) for k in state if (m := re.match(rf"{name}\.layers\.(\d+)\.", k))}
        )
        dim = int(state[f"{name}.norm.weight"].shape[0])
        mlp = int(state[f"{name}.layers.0.linear1.weight"].shape[0])
        return TransformerConfig(dim=dim, depth=depth, heads=max(1, dim // head_dim), mlp_dim=mlp)

    try:
        encoder = stack("encoder", 64)  # 768 -> 12 heads, 1024 -> 16
        predictor = stack("decoder", 32) if "decoder.norm.weight" in state else None
    except KeyError as exc:
        raise CheckpointError(f"{source}: missing transformer tensor {exc}") from exc
    fields = {
        "in_channels": channels,
        "conv_layers": conv_layers,
        "crop_samples": CROP_SAMPLES,
        "encoder": encoder,
        "top_k_targets": min(8, encoder.depth),
    }
    if predictor is not None:
        fields["predictor"] = predictor
    return WavJEPAConfig(**fields)


def convert_reference(
    ckpt: str | os.PathLike,
    out: str | os.PathLike,
    trust_pickle: bool = False,
    config: WavJEPAConfig | None = None,
) -> Path:
    """Reference Lightning `.ckpt` -> our `.safetensors`; strict: every tensor must find its place.

    A checkpoint with predictor and teacher gives a full training model ("wavjepa"); one with only
    the inference path gives an "encoder" checkpoint.
    """
    source = str(ckpt)
    state = read_reference(ckpt, trust_pickle)
    config = config or infer_config(state, source)
    tensors = map_keys(state, source)
    _check_positional(state, config, source)
    if any(k.startswith(("predictor.", "teacher.")) for k in tensors):
        model, kind = WavJEPA(config), "wavjepa"
    else:
        model, kind = AudioEncoder(config), "encoder"
        tensors = {k.removeprefix("encoder."): v for k, v in tensors.items()}
    load_strict(model, tensors, source)
    return save_checkpoint(
        out, model.state_dict(), config, kind=kind, extra={"converted_from": Path(source).name}
    )


def _check_positional(state: dict[str, torch.Tensor], config: WavJEPAConfig, source: str) -> None:
    dims = {
        "pos_encoding_encoder": config.encoder.dim,
        "pos_encoding_decoder": config.predictor.dim,
    }
    for key, dim in dims.items():
        if key in state:
            table = positional_table(dim, config.frames_per_crop, config.in_channels)[None]
            if state[key].shape != table.shape or not torch.allclose(
                state[key].float(), table, atol=1e-4
            ):
                raise CheckpointError(
                    f"{source}: {key} differs from the sin-cos table this code builds"
                )
