"""Checkpoints: one `.safetensors` file with the architecture config and provenance in its header.

Loading never executes code: tensors come from safetensors, everything else from JSON metadata.
Loading is strict: missing keys, unexpected keys and shape mismatches are all listed in the error.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from hear_wavjepa.atomicio import atomic_path
from hear_wavjepa.model.config import WavJEPAConfig

FORMAT = "hear-wavjepa"
FORMAT_VERSION = 1
#: "wavjepa": the whole training model (encoder, predictor, teacher); "encoder": inference only.
KINDS = ("wavjepa", "encoder")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Checkpoint:
    config: WavJEPAConfig
    kind: str
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any]  # step, sha256, format_version, created_by, extra


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over (name, dtype, shape, bytes) of every tensor in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_checkpoint(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    config: WavJEPAConfig,
    *,
    kind: str = "wavjepa",
    step: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `tensors` atomically (temp file + rename); config and provenance go in the header."""
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {KINDS}, got {kind!r}")
    from hear_wavjepa import __version__

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "kind": kind,
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "step": json.dumps(step),
        "sha256": tensors_sha256(tensors),
        "created_by": f"hear-wavjepa {__version__}",
        "extra": json.dumps(extra or {}, sort_keys=True),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def read_checkpoint(path: str | os.PathLike, verify: bool = True) -> Checkpoint:
    """Read and check a checkpoint written by `save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}"
        ) from exc
    if header.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a hear-wavjepa checkpoint (header format={header.get('format')!r}); "
            "import reference Lightning checkpoints with `hear-wavjepa convert`"
        )
    if int(header.get("format_version", -1)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {header['format_version']} is newer than this code "
            f"({FORMAT_VERSION}); upgrade hear-wavjepa"
        )
    try:
        config = WavJEPAConfig.from_dict(json.loads(header["config"]))
        metadata = {
            "step": json.loads(header.get("step", "null")),
            "sha256": header.get("sha256"),
            "format_version": int(header["format_version"]),
            "created_by": header.get("created_by"),
            "extra": json.loads(header.get("extra", "{}")),
        }
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: malformed checkpoint header: {exc}") from exc
    kind = header.get("kind")
    if kind not in KINDS:
        raise CheckpointError(f"{path}: unknown checkpoint kind {kind!r}; expected one of {KINDS}")
    if verify and metadata["sha256"] != tensors_sha256(tensors):
        raise CheckpointError(f"{path}: tensor checksum mismatch (file damaged or edited)")
    return Checkpoint(config, kind, tensors, metadata)


def load_strict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """`module.load_state_dict(tensors, strict=True)` with every problem listed in one error."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(tensors))
        if tensors[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", mismatched),
        ):
            if items:
                shown = ", ".join(items[:8]) + (
                    f", ... ({len(items)} in all)" if len(items) > 8 else ""
                )
                parts.append(f"{label} keys: {shown}")
        raise CheckpointError(f"{source}: does not fit the model architecture; " + "; ".join(parts))
    module.load_state_dict(tensors, strict=True)


def encoder_tensors(checkpoint: Checkpoint) -> dict[str, torch.Tensor]:
    """The inference encoder's tensors, from a training ("wavjepa") or an "encoder" checkpoint."""
    if checkpoint.kind == "encoder":
        return dict(checkpoint.tensors)
    prefix = "encoder."
    return {k[len(prefix) :]: v for k, v in checkpoint.tensors.items() if k.startswith(prefix)}


def load_encoder(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """(AudioEncoder in eval mode with the weights of checkpoint `path`, the Checkpoint)."""
    from hear_wavjepa.model.jepa import AudioEncoder

    checkpoint = read_checkpoint(path)
    encoder = AudioEncoder(checkpoint.config)
    load_strict(encoder, encoder_tensors(checkpoint), str(path))
    return encoder.to(device).eval(), checkpoint
