"""`hear-wavjepa pretrain --config train/X.yaml [key=value ...] [--resume RUN] [--demo]`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hear_wavjepa.cli import UsageError, command


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="recipe YAML (e.g. train/tiny-cpu.yaml)")
    parser.add_argument(
        "--resume",
        metavar="RUN",
        help="continue run RUN (a name under $HEAR_WAVJEPA_HOME/runs, or a path) "
        "from its last checkpoint, with its own recipe",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the demo's run: train/tiny-cpu.yaml into $HEAR_WAVJEPA_HOME/runs/tiny-cpu on the "
        "offline corpus (built if missing; key=value overrides such as data.path=DIR apply), "
        "resumed if unfinished, nothing done if finished",
    )
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="recipe overrides with dotted keys, e.g. data.path=~/corpus train.steps=100",
    )


@command("pretrain", "pretrain WavJEPA / WavJEPA-Nat from a recipe (torchrun for DDP)", _configure)
def pretrain_command(args: argparse.Namespace) -> int:
    from hear_wavjepa.training.loop import TrainingDiverged, pretrain, resolve_run, runs_dir
    from hear_wavjepa.training.recipe import load_recipe

    if args.demo:
        if args.config or args.resume:
            raise UsageError("--demo runs train/tiny-cpu.yaml; drop --config and --resume")
    elif args.resume:
        if args.config or args.overrides:
            raise UsageError(
                "--resume continues a run with its own recipe; drop --config and "
                "the key=value overrides"
            )
        try:
            resolve_run(args.resume)
        except ValueError as exc:  # resolve_run only checks that the run folder exists
            raise UsageError(f"--resume: {exc}") from exc
    elif args.config is None:
        raise UsageError("give --config RECIPE.yaml (see train/) or --resume RUN")
    else:
        recipe = load_recipe(args.config, args.overrides)  # RecipeError: one line, exit 2
        named = recipe.train.name and runs_dir() / recipe.train.name
        if named and (named / "config.yaml").exists():
            raise UsageError(f"{named}: the run exists; resume it with --resume {named.name}")
    try:
        if args.demo:
            from hear_wavjepa.pipeline import pretrained_tiny

            print(f"exported checkpoint: {pretrained_tiny(overrides=args.overrides)}")
            return 0
        if args.resume:
            run = pretrain(resume=args.resume, progress=not args.no_progress)
        else:
            run = pretrain(recipe, name=args.config.stem, progress=not args.no_progress)
    except TrainingDiverged as exc:
        if args.debug:
            raise
        print(f"hear-wavjepa pretrain: error: {exc}", file=sys.stderr)
        return 3
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {run}\nexported checkpoint: {run / 'model.safetensors'}")
    return 0
