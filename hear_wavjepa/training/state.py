"""Training state on disk without pickle: one folder per checkpoint, written atomically.

`<run>/checkpoints/step-00001000/` holds
* `model.safetensors`: student, predictor and teacher (a "wavjepa" checkpoint, loadable as is);
* `optimizer.safetensors`: AdamW moments and step counts, and the torch RNG states;
* `state.json`: the step, the optimiser's param groups and anything else JSON-able.
The folder is written under a temporary name and renamed, so a killed run leaves either a complete
checkpoint or none.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from hear_wavjepa.atomicio import atomic_dir
from hear_wavjepa.checkpoint import load_strict, read_checkpoint, save_checkpoint
from hear_wavjepa.model.config import WavJEPAConfig

PREFIX = "step-"


def checkpoint_dir(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"{PREFIX}{step:08d}"


def list_checkpoints(run: Path) -> list[Path]:
    """Complete checkpoint folders of `run`, oldest first."""
    folder = run / "checkpoints"
    if not folder.is_dir():
        return []
    found = [
        p for p in folder.iterdir() if p.name.startswith(PREFIX) and (p / "state.json").is_file()
    ]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def optimizer_to_disk(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split `optimizer.state_dict()` into tensors and a JSON-able rest."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_disk(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    """Inverse of `optimizer_to_disk`: a dict for `optimizer.load_state_dict`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for index, slots in rest["scalars"].items():
        state.setdefault(int(index), {}).update(slots)
    return {"state": state, "param_groups": rest["param_groups"]}


def rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    return tensors


def restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])


def save_state(
    run: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    config: WavJEPAConfig,
    extra: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint `step` of `run` (after `step` optimiser steps); keep the newest `keep`."""
    final = checkpoint_dir(run, step)
    if (final / "state.json").is_file():
        return final
    with atomic_dir(final) as tmp:
        save_checkpoint(tmp / "model.safetensors", model.state_dict(), config, step=step)
        tensors, rest = optimizer_to_disk(optimizer)
        tensors = {
            k: v.detach().contiguous().cpu() for k, v in {**tensors, **rng_tensors()}.items()
        }
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "state.json").write_text(
            json.dumps({"step": step, "optimizer": rest, **extra}, indent=1)
        )
    for old in list_checkpoints(run)[:-keep]:
        shutil.rmtree(old)
    return final


def load_state(
    folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore model, optimiser and RNG states from checkpoint `folder`; return its JSON state."""
    checkpoint = read_checkpoint(folder / "model.safetensors")
    load_strict(model, checkpoint.tensors, str(folder / "model.safetensors"))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    state = json.loads((folder / "state.json").read_text())
    optimizer.load_state_dict(optimizer_from_disk(tensors, state["optimizer"]))
    restore_rng(tensors)
    return state
