"""`hear-wavjepa` command line: every subcommand lives in this package and registers in `COMMANDS`.

The command modules are thin: they parse arguments and call the library below them. Nothing
outside `hear_wavjepa.cli` imports it (the layer contract in pyproject.toml checks this).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

#: Modules of this package that register subcommands with `@command` when imported.
COMMAND_MODULES: list[str] = [
    "hear_wavjepa.cli.model",
    "hear_wavjepa.cli.pretrain",
    "hear_wavjepa.cli.data",
    "hear_wavjepa.cli.score",
    "hear_wavjepa.cli.embed",
    "hear_wavjepa.cli.evaluate",
    "hear_wavjepa.cli.naturalize",
]

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register `fn(args) -> int | None` as subcommand `name`."""

    def register(fn: Callable) -> Callable:
        COMMANDS[name] = (help, configure, fn)
        return fn

    return register


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


@command("info", "print version, model presets and the compute device", _no_arguments)
def info(args: argparse.Namespace) -> int:
    del args
    import torch

    from hear_wavjepa import __version__
    from hear_wavjepa.model.presets import PRESETS, count_parameters

    print(f"hear-wavjepa {__version__} (torch {torch.__version__})")
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU)"
    else:
        device = f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {device}")
    print("presets (trainable parameters, counted on the meta device):")
    for name in PRESETS:
        counts = count_parameters(name)
        trainable, inference = counts["trainable"], counts["inference"]
        print(f"  {name:<9} trainable {trainable:>12,}   inference {inference:>12,}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(
        prog="hear-wavjepa",
        description="WavJEPA / WavJEPA-Nat: pretraining, HEAR embeddings, (Nat-)HEAR evaluation.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, configure, _) in COMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command][2](args) or 0
