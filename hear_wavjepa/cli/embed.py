"""CLI: `hear-wavjepa embed --module M [--model PATH] [--options JSON] --task DIR [DIR ...]`.

`check_spec` and `check_task_folders` are the pre-checks `embed` and `eval` run before any work.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from hear_wavjepa.cli import UsageError, command

if TYPE_CHECKING:
    from hear_wavjepa.evaluation.embed import ModuleSpec
    from hear_wavjepa.hear_task import Task

CHANNELS = ("auto", "native", "mean", "first")


def _args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--module", default="hear_wavjepa", help="importable HEAR module")
    parser.add_argument("--model", default="", help="weights file for load_model")
    parser.add_argument("--options", default="{}", help="load_model keyword options, as JSON")
    parser.add_argument("--channels", default="auto", choices=CHANNELS,
                        help="how multi-channel audio reaches the module")  # fmt: skip
    parser.add_argument("--task", nargs="+", required=True, help="HEAR task folder(s)")
    parser.add_argument("--out", help="cache dir (one task only; default under $HEAR_WAVJEPA_HOME)")
    parser.add_argument("--device", help="e.g. cpu, cuda:0 (default: cuda if available)")


def check_spec(spec: ModuleSpec) -> None:
    """Refuse, before any work, a module that does not import or lacks the HEAR functions
    (ContractError), a missing weights file, and bad hear_wavjepa options or checkpoints."""
    from hear_wavjepa.evaluation.embed import import_hear_module

    import_hear_module(spec.module)
    if spec.model_path and not Path(spec.model_path).exists():
        raise UsageError(f"{spec.model_path}: weights file not found")
    if spec.module != "hear_wavjepa":
        return
    from hear_wavjepa.api import HearOptions, checkpoint_config
    from hear_wavjepa.model.presets import preset

    known = {f.name for f in dataclasses.fields(HearOptions)}
    unknown = sorted(set(spec.options) - known)
    if unknown:
        raise UsageError(f"unknown hear_wavjepa options {unknown}; valid: {sorted(known)}")
    try:
        options = HearOptions(**spec.options)
        if options.preset is not None:
            preset(options.preset)
    except ValueError as exc:  # HearOptions and preset only validate their arguments
        raise UsageError(f"hear_wavjepa options {spec.options}: {exc}") from exc
    if spec.model_path:
        checkpoint_config(spec.model_path)  # verifies or imports it; CheckpointError names the file


def check_task_folders(folders: Iterable[Path | str]) -> list[Task]:
    """Load every task folder with its wav headers: a TaskError names the file before any work."""
    from hear_wavjepa.hear_task import load_task

    return [load_task(folder) for folder in folders]


def check_device(device: str | None) -> None:
    """Refuse a device string torch cannot parse."""
    if device is None:
        return
    import torch

    try:
        torch.device(device)
    except RuntimeError as exc:
        raise UsageError(f"--device {device!r}: {exc}") from exc


@command("embed", "embed HEAR task folders with a HEAR module into a resumable cache", _args)
def embed(args: argparse.Namespace) -> int:
    from hear_wavjepa.evaluation.embed import ModuleSpec, embed_task

    try:
        options = json.loads(args.options)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--options is not valid JSON: {exc}") from exc
    if not isinstance(options, dict):
        raise UsageError(f"--options must be a JSON object, got {args.options}")
    if args.out and len(args.task) > 1:
        raise UsageError("--out names one cache dir: give one --task with it")
    check_device(args.device)
    spec = ModuleSpec(args.module, args.model, options, args.channels)
    check_spec(spec)
    check_task_folders(args.task)
    for task in args.task:
        result = embed_task(spec, task, args.out, device=args.device)
        print(
            f"{result.out_dir}: {result.clips} clips in {result.seconds:.1f} s "
            f"({result.clips_per_second:.1f} clips/s)"
        )
    return 0
