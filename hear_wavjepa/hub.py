"""Reading reference weights as users have them: a hub snapshot, a Lightning checkpoint, a file.

Three layouts hold the reference's (labhamlet/wavjepa) key names:

* hub: `model.safetensors` (or `pytorch_model.bin`) with a leading `model.` on every key and a
  `config.json` beside it that names the architecture (heads, widths, conv layers, channels);
* Lightning: a torch file with `state_dict` (keys may carry `_orig_mod.` from `torch.compile`)
  and `hyper_parameters`, whose transformer configs hold `torch.nn.GELU` objects;
* plain: a torch or safetensors file holding the state dict alone.

Torch files load with `torch.load(weights_only=True)`, allowing only `ALLOWED_GLOBALS` besides
tensors and containers; anything else is refused unless `trust_pickle` is set.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from hear_wavjepa.checkpoint import CheckpointError

#: the classes a reference Lightning checkpoint pickles in its `hyper_parameters` (the
#: transformer layer configs' `activation`); nothing else is unpickled without `trust_pickle`.
ALLOWED_GLOBALS: tuple[type, ...] = (torch.nn.GELU,)
#: weight files looked for, in order, in a hub snapshot folder.
SNAPSHOT_FILES = ("model.safetensors", "pytorch_model.bin")
HUB_PREFIX = "model."


@dataclass
class ReferenceWeights:
    """Reference-named tensors (prefixes removed) and what the file says about the architecture."""

    state: dict[str, torch.Tensor]
    layout: str  # "hub", "lightning" or "plain"
    source: Path
    #: architecture hints: in_channels, conv_layers, encoder / predictor {dim, depth, heads, mlp}.
    hints: dict[str, Any] = field(default_factory=dict)
    hints_source: str = ""
    step: int | None = None


def snapshot_weights(folder: Path) -> Path:
    """The weights file of a hub snapshot folder (or of a hub cache folder with one snapshot)."""
    for name in SNAPSHOT_FILES:
        if (folder / name).is_file():
            return folder / name
    snapshots = sorted(p for p in (folder / "snapshots").glob("*") if p.is_dir())
    if len(snapshots) == 1:
        return snapshot_weights(snapshots[0])
    if len(snapshots) > 1:
        names = ", ".join(p.name for p in snapshots)
        raise CheckpointError(f"{folder}: holds several snapshots ({names}); pass one of them")
    raise CheckpointError(f"{folder}: a folder without {' or '.join(SNAPSHOT_FILES)}")


def safetensors_header(path: Path) -> dict[str, str] | None:
    """The `__metadata__` of a safetensors file; None if `path` is not one (or is unreadable)."""
    try:
        with path.open("rb") as f:
            size_bytes = f.read(8)
            if len(size_bytes) < 8:
                return None
            (size,) = struct.unpack("<Q", size_bytes)
            head = f.read(min(size, 100_000_000))
    except OSError:
        return None
    if not head.startswith(b"{"):
        return None
    try:
        return dict(json.loads(head).get("__metadata__") or {})
    except (ValueError, AttributeError):
        return {}  # a safetensors file whose header is cut short: reading it will say so


def read_reference_weights(path: str | os.PathLike, trust_pickle: bool = False) -> ReferenceWeights:
    """The reference-named tensors in `path` (a file or a hub snapshot folder)."""
    path = Path(path)
    if path.is_dir():
        path = snapshot_weights(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if safetensors_header(path) is not None:
        state, blob = _read_safetensors(path), None
    else:
        blob = _read_torch(path, trust_pickle)
        state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: holds no state_dict of tensors")
    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise CheckpointError(f"{path}: state_dict entries that are not tensors: {not_tensors[:8]}")
    state = {k.replace("_orig_mod.", ""): v for k, v in state.items()}
    hub = all(k.startswith(HUB_PREFIX) for k in state)
    if hub:
        state = {k.removeprefix(HUB_PREFIX): v for k, v in state.items()}
    weights = ReferenceWeights(state, "hub" if hub else "plain", path)
    if isinstance(blob, dict) and "state_dict" in blob:
        weights.layout = "lightning"
        step = blob.get("global_step")
        weights.step = step if isinstance(step, int) and not isinstance(step, bool) else None
        if isinstance(blob.get("hyper_parameters"), dict):
            weights.hints = lightning_hints(blob["hyper_parameters"])
            weights.hints_source = f"{path} (hyper_parameters)"
    config_json = path.parent / "config.json"
    if weights.layout == "hub" and config_json.is_file():
        weights.hints = hub_hints(config_json)
        weights.hints_source = str(config_json)
    return weights


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}"
        ) from exc


def _read_torch(path: Path, trust_pickle: bool) -> Any:
    """`torch.load` with weights_only and `ALLOWED_GLOBALS`, or without restriction if trusted."""
    try:
        if trust_pickle:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = found.group(1) if found else str(exc).strip().splitlines()[-1][:200]
        allowed = ", ".join(f"{c.__module__}.{c.__qualname__}" for c in ALLOWED_GLOBALS)
        raise CheckpointError(
            f"{path}: refused: it pickles {what}, which torch.load(weights_only=True) does not "
            f"allow (allowed besides tensors: {allowed}); loading it would run code from the "
            "file; if you trust its origin, pass --trust-pickle (trust_pickle=True)"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint (truncated or corrupt?): {reason}"
        ) from exc


def hub_hints(config_json: Path) -> dict[str, Any]:
    """Architecture hints from a hub `config.json` (the reference's HF config layout)."""
    try:
        data = json.loads(config_json.read_text())
        hints: dict[str, Any] = {}
        extractor = data.get("extractor_config") or {}
        if "conv_layers_spec" in extractor:
            hints["conv_layers"] = parse_conv_spec(extractor["conv_layers_spec"])
        if "in_channels" in extractor:
            hints["in_channels"] = int(extractor["in_channels"])
        for ours, theirs in (("encoder", "encoder"), ("predictor", "decoder")):
            layer = data.get(f"{theirs}_layers_cfg") or {}
            stack = data.get(f"{theirs}_cfg") or {}
            hints[ours] = _stack_hints(layer, stack)
    except (OSError, ValueError, TypeError, AttributeError, SyntaxError) as exc:
        raise CheckpointError(f"{config_json}: not a readable WavJEPA config.json: {exc}") from exc
    return hints


def lightning_hints(hparams: dict[str, Any]) -> dict[str, Any]:
    """Architecture hints from a reference Lightning checkpoint's `hyper_parameters`."""
    hints: dict[str, Any] = {}
    for ours, theirs in (("encoder", "encoder"), ("predictor", "decoder")):
        layer = hparams.get(f"transformer_{theirs}_layers_cfg")
        stack = hparams.get(f"transformer_{theirs}_cfg")
        if isinstance(layer, dict):
            try:
                hints[ours] = _stack_hints(layer, stack if isinstance(stack, dict) else {})
            except (TypeError, ValueError):
                continue  # odd hyper_parameters: the tensor shapes decide
    return hints


def _stack_hints(layer: dict[str, Any], stack: dict[str, Any]) -> dict[str, int]:
    names = {"dim": "d_model", "heads": "nhead", "mlp": "dim_feedforward"}
    hints = {ours: int(layer[theirs]) for ours, theirs in names.items() if theirs in layer}
    if "num_layers" in stack:
        hints["depth"] = int(stack["num_layers"])
    return hints


def parse_conv_spec(text: str) -> tuple[tuple[int, int, int], ...]:
    """`"[(512, 10, 5)] + [(512, 3, 2)] * 4"` -> ((512, 10, 5), (512, 3, 2), ...), without eval:
    only int tuples, lists, `+` of lists and `*` of a list by an int are accepted."""

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Tuple | ast.List):
            items = [value(e) for e in node.elts]
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.BinOp):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Add) and isinstance(left, list) and isinstance(right, list):
                return left + right
            if isinstance(node.op, ast.Mult) and isinstance(left, list) and type(right) is int:
                return left * right
        raise ValueError(f"unsupported conv_layers_spec {text!r}")

    layers = value(ast.parse(str(text), mode="eval").body)
    if not isinstance(layers, list) or not all(
        isinstance(t, tuple) and len(t) == 3 and all(type(v) is int for v in t) for t in layers
    ):
        raise ValueError(f"conv_layers_spec {text!r} is not a list of (dim, kernel, stride)")
    return tuple(layers)
