"""Checkpoints: one `.safetensors` file with the architecture config and provenance in its header.

Loading never executes code: tensors come from safetensors, everything else from JSON metadata.
Loading is strict: missing keys, unexpected keys and shape mismatches are all listed in the error.
The header is sealed: `header_sha256` holds one digest per header field (the `sha256` field being
the tensors' digest), so an edited field is refused by name. Files written before the seal existed
load with a one-line notice.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
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
#: the header field holding {field: sha256} of every other header field.
SEAL = "header_sha256"
_NOTICED: set[str] = set()


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Checkpoint:
    config: WavJEPAConfig
    kind: str
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any]  # step, sha256, format_version, created_by, extra, sealed


def notice(message: str) -> None:
    """Print `hear-wavjepa: notice: message` (one line) to stderr, once per process."""
    if message not in _NOTICED:
        _NOTICED.add(message)
        print(f"hear-wavjepa: notice: {message}", file=sys.stderr)


def _field_digest(name: str, value: str) -> str:
    return hashlib.sha256(f"{name}\0{value}".encode()).hexdigest()


def seal_header(header: dict[str, str]) -> dict[str, str]:
    """`header` plus its seal: the sha256 of every field (name and value)."""
    seal = {name: _field_digest(name, value) for name, value in header.items() if name != SEAL}
    return {**header, SEAL: json.dumps(seal, sort_keys=True)}


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
    header = {
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
        save_file(tensors, str(tmp), metadata=seal_header(header))
    return Path(path)


def read_checkpoint(path: str | os.PathLike, verify: bool = True) -> Checkpoint:
    """Read and check a checkpoint written by `save_checkpoint` (`verify`: hash the tensors)."""
    path = Path(path)
    header, tensors = _open(path, tensors=True)
    kind, config, metadata = _parse_header(path, header)
    if verify and metadata["sha256"] != tensors_sha256(tensors):
        raise CheckpointError(f"{path}: tensor checksum mismatch (file damaged or edited)")
    return Checkpoint(config, kind, tensors, metadata)


def read_header(path: str | os.PathLike) -> Checkpoint:
    """A checkpoint's config, kind and metadata (step, extra: run, recipe...), header checks
    included, without reading its tensors (`tensors` is empty)."""
    path = Path(path)
    header, _ = _open(path, tensors=False)
    kind, config, metadata = _parse_header(path, header)
    return Checkpoint(config, kind, {}, metadata)


def _open(path: Path, tensors: bool) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            read = {name: f.get_tensor(name) for name in f.keys()} if tensors else {}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}"
        ) from exc
    return header, read


def _parse_header(path: Path, header: dict[str, str]) -> tuple[str, WavJEPAConfig, dict]:
    """(kind, config, metadata) of a checkpoint header; a CheckpointError names the bad field."""
    if header.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a hear-wavjepa checkpoint (header format={header.get('format')!r}); "
            "import reference checkpoints with `hear-wavjepa convert`"
        )
    version = _parse_field(path, header, "format_version", int, "an integer")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {version} is newer than this code ({FORMAT_VERSION}); "
            "upgrade hear-wavjepa"
        )
    sealed = _check_seal(path, header)
    kind = _parse_field(path, header, "kind", _kind, f"one of {KINDS}")
    config = _parse_field(path, header, "config", _config, "a WavJEPAConfig as JSON")
    metadata = {
        "step": _parse_field(path, header, "step", _step, "an integer or null", "null"),
        "sha256": _parse_field(path, header, "sha256", _hex_digest, "a sha256 hex digest"),
        "format_version": version,
        "created_by": header.get("created_by"),
        "extra": _parse_field(path, header, "extra", _json_object, "a JSON object", "{}"),
        "sealed": sealed,
    }
    return kind, config, metadata


def _parse_field(path: Path, header: dict, name: str, parse, expected: str, default=None):
    """`parse(header[name])`; a CheckpointError naming the file and the field if it fails."""
    if name not in header and default is None:
        raise CheckpointError(f"{path}: header field {name!r} is missing")
    value = header.get(name, default)
    try:
        return parse(value)
    except (ValueError, TypeError, KeyError) as exc:
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise CheckpointError(
            f"{path}: header field {name!r} is malformed: {shown!r} is not {expected} ({exc})"
        ) from exc


def _kind(value: str) -> str:
    if value not in KINDS:
        raise ValueError("unknown kind")
    return value


def _config(value: str) -> WavJEPAConfig:
    return WavJEPAConfig.from_dict(json.loads(value))


def _step(value: str) -> int | None:
    step = json.loads(value)
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
        raise ValueError("not a non-negative integer")
    return step


def _hex_digest(value: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError("expected 64 lowercase hex digits")
    return value


def _json_object(value: str) -> dict:
    data = json.loads(value)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return data


def _check_seal(path: Path, header: dict[str, str]) -> bool:
    """True if the header carries a seal matching every field; False (with a notice) for files
    written before the seal existed; a CheckpointError naming the first edited field otherwise."""
    if SEAL not in header:
        notice(
            f"{path}: written before checkpoint headers were sealed; its config and provenance "
            "cannot be verified (re-save it to seal it)"
        )
        return False
    try:
        seal = _json_object(header[SEAL])
    except ValueError as exc:
        raise CheckpointError(f"{path}: header field {SEAL!r} is malformed ({exc})") from exc
    for name in sorted((set(header) - {SEAL}) | set(seal)):
        if name not in header:
            raise CheckpointError(f"{path}: header field {name!r} was removed after writing")
        if name not in seal:
            raise CheckpointError(f"{path}: header field {name!r} was added after writing")
        if seal[name] != _field_digest(name, header[name]):
            raise CheckpointError(
                f"{path}: header field {name!r} was edited after writing (it no longer matches "
                "the header seal); refusing the file"
            )
    return True


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
