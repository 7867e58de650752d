"""Import the reference's checkpoints (labhamlet/wavjepa key layout, docs/model.md).

`import_reference` maps a hub snapshot, a Lightning checkpoint or a plain state dict (read by
`hear_wavjepa.hub`) to this package's model in memory; `convert_reference` writes the result as a
sealed `.safetensors` checkpoint. An imported Nat model records the reference's `interleaved`
mask order unless told otherwise.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hear_wavjepa.checkpoint import CheckpointError, load_strict, save_checkpoint
from hear_wavjepa.hub import ReferenceWeights, read_reference_weights
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
    """The reference-named tensors of a checkpoint file or hub snapshot folder."""
    return read_reference_weights(path, trust_pickle).state


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
    if unknown and not mapped:
        raise CheckpointError(
            f"{source}: not a WavJEPA checkpoint: none of its {len(unknown)} keys is in the "
            f"reference layout ({_listed(unknown)})"
        )
    if unknown:
        raise CheckpointError(f"{source}: keys not in the reference layout: {_listed(unknown)}")
    return mapped


def _listed(keys: list[str], shown: int = 10) -> str:
    keys = sorted(keys)
    more = f", ... ({len(keys)} in all)" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def infer_config(
    state: dict[str, torch.Tensor],
    source: str,
    hints: dict[str, Any] | None = None,
    hints_source: str = "the architecture description",
) -> WavJEPAConfig:
    """The architecture implied by the tensor shapes. `hints` (from a hub config.json or Lightning
    hyper_parameters) supply what shapes cannot tell: heads and conv strides; where they also
    give a width or depth it must agree with the tensors."""
    hints = hints or {}
    channels = 2 if any(k.startswith("extract_audio.cnns.") for k in state) else 1
    prefix = "extract_audio.cnns.0." if channels == 2 else "extract_audio.cnn."
    convs = sorted(
        (int(m.group(1)), v.shape)
        for k, v in state.items()
        if (m := re.fullmatch(re.escape(prefix) + r"(\d+)\.0\.weight", k))
    )
    if not convs:
        raise CheckpointError(
            f"{source}: not a WavJEPA checkpoint: no conv front end (extract_audio.cnn.* or "
            f"extract_audio.cnns.*); its keys: {_listed(list(state))}"
        )
    strides = [s for _, _, s in hints.get("conv_layers", WAVJEPA_CONV_LAYERS)]
    if len(convs) != len(strides):
        raise CheckpointError(f"{source}: expected {len(strides)} conv layers, found {len(convs)}")
    conv_layers = tuple(
        (int(shape[0]), int(shape[2]), stride)
        for (_, shape), stride in zip(convs, strides, strict=True)
    )
    if tuple(hints.get("conv_layers", conv_layers)) != conv_layers:
        raise CheckpointError(
            f"{source}: conv layers (channels, kernel, stride) are {list(conv_layers)} in the "
            f"weights but {list(hints['conv_layers'])} in {hints_source}"
        )

    def stack(name: str, ours: str, head_dim: int) -> TransformerConfig:
        depth = len(
            {int(m.group(1)) for k in state if (m := re.match(rf"{name}\.layers\.(\d+)\.", k))}
        )
        dim = int(state[f"{name}.norm.weight"].shape[0])
        mlp = int(state[f"{name}.layers.0.linear1.weight"].shape[0])
        found = {"dim": dim, "depth": depth, "mlp": mlp}
        hint = dict(hints.get(ours, {}))
        if hint.get("dim", dim) != dim:
            hint = {}  # e.g. hyper_parameters edited after saving (the reference's "large")
        for key, value in found.items():
            if hint.get(key, value) != value:
                raise CheckpointError(
                    f"{source}: {ours} {key} is {value} in the weights but {hint[key]} in "
                    f"{hints_source}"
                )
        heads = hint.get("heads", max(1, dim // head_dim))
        return TransformerConfig(dim=dim, depth=depth, heads=heads, mlp_dim=mlp)

    try:
        encoder = stack("encoder", "encoder", 64)  # 768 -> 12 heads, 1024 -> 16
        predictor = stack("decoder", "predictor", 32) if "decoder.norm.weight" in state else None
    except KeyError as exc:
        raise CheckpointError(f"{source}: missing transformer tensor {exc}") from exc
    except ValueError as exc:  # heads that do not divide the width
        raise CheckpointError(f"{source}: impossible architecture: {exc}") from exc
    if hints.get("in_channels", channels) != channels:
        raise CheckpointError(
            f"{source}: {hints_source} says {hints['in_channels']} channels, the weights hold "
            f"{channels} conv stacks"
        )
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


@dataclass(frozen=True)
class Imported:
    """A reference checkpoint mapped to this package: our config, kind and tensor names."""

    config: WavJEPAConfig
    kind: str  # "wavjepa" (with predictor and teacher) or "encoder"
    tensors: dict[str, torch.Tensor]
    weights: ReferenceWeights


def import_reference(
    path: str | os.PathLike,
    trust_pickle: bool = False,
    config: WavJEPAConfig | None = None,
    nat_order: str = "interleaved",
) -> Imported:
    """A hub snapshot (folder or weights file), Lightning or plain reference checkpoint, mapped
    and checked in memory; strict: every tensor must find its place. A Nat model records
    `nat_order` (the reference trained with "interleaved")."""
    weights = read_reference_weights(path, trust_pickle)
    source = str(weights.source)
    state = weights.state
    tensors = map_keys(state, source)
    config = config or infer_config(state, source, weights.hints, weights.hints_source)
    if config.in_channels == 2:
        masking = dataclasses.replace(config.masking, nat_order=nat_order)
        config = dataclasses.replace(config, masking=masking)
    _check_positional(state, config, source)
    if any(k.startswith(("predictor.", "teacher.")) for k in tensors):
        model, kind = WavJEPA(config), "wavjepa"
    else:
        model, kind = AudioEncoder(config), "encoder"
        tensors = {k.removeprefix("encoder."): v for k, v in tensors.items()}
    load_strict(model, tensors, source)
    return Imported(config, kind, model.state_dict(), weights)


def convert_reference(
    ckpt: str | os.PathLike,
    out: str | os.PathLike,
    trust_pickle: bool = False,
    config: WavJEPAConfig | None = None,
    nat_order: str = "interleaved",
) -> Path:
    """A reference checkpoint (see `import_reference`) -> our sealed `.safetensors`.

    A checkpoint with predictor and teacher gives a full training model ("wavjepa"); one with only
    the inference path gives an "encoder" checkpoint.
    """
    imported = import_reference(ckpt, trust_pickle, config, nat_order)
    weights = imported.weights
    extra = {"converted_from": weights.source.name, "layout": weights.layout}
    return save_checkpoint(
        out, imported.tensors, imported.config, kind=imported.kind, step=weights.step, extra=extra
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
