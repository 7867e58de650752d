"""`hear-wavjepa` command line: every subcommand lives in this package and registers in `COMMANDS`.

The command modules are thin: they parse arguments and call the library below them. Nothing
outside `hear_wavjepa.cli` imports it (the layer contract in pyproject.toml checks this).

A user error (a bad argument, task folder, checkpoint, recipe...) prints one line,
`hear-wavjepa <command>: error: <message>`, and exits 2; `--debug` shows its traceback instead.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

#: Modules of this package that register subcommands with `@command` when imported.
COMMAND_MODULES: list[str] = [
    "hear_wavjepa.cli.model",
    "hear_wavjepa.cli.pretrain",
    "hear_wavjepa.cli.plot",
    "hear_wavjepa.cli.data",
    "hear_wavjepa.cli.score",
    "hear_wavjepa.cli.embed",
    "hear_wavjepa.cli.evaluate",
    "hear_wavjepa.cli.naturalize",
]

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}

#: The project's user-error classes, `module:Class`; `main` prints them as one line (exit 2).
USER_ERRORS: tuple[str, ...] = (
    "hear_wavjepa.cli:UsageError",
    "hear_wavjepa.checkpoint:CheckpointError",
    "hear_wavjepa.hear_task:TaskError",
    "hear_wavjepa.evaluation.embed:ContractError",
    "hear_wavjepa.evaluation.scoring:ScoresExist",
    "hear_wavjepa.training.recipe:RecipeError",
    "hear_wavjepa.training.monitor:MonitorError",
    "hear_wavjepa.training.decoded_corpus:CorpusError",
    "hear_wavjepa.training.curves:CurvesError",
    "hear_wavjepa.config_io:ConfigError",
)


class UsageError(ValueError):
    """A command-line argument is wrong; raised by a command before it does any work."""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def is_user_error(exc: BaseException) -> bool:
    """Whether `exc` is one of `USER_ERRORS` (only modules already imported can have raised one)."""
    for entry in USER_ERRORS:
        module, _, name = entry.partition(":")
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


class _Parser(argparse.ArgumentParser):
    """An argument error is one line, `PROG: error: MESSAGE`, and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


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


def _add_debug(parser: argparse.ArgumentParser, top: bool, seen: set[int]) -> None:
    """`--debug` on `parser` and every subcommand parser below it (given anywhere, it holds)."""
    if id(parser) in seen:
        return
    seen.add(id(parser))
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show the traceback of a user error instead of one line",
    )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_debug(child, False, seen)


def build_parser() -> argparse.ArgumentParser:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    parser = _Parser(
        prog="hear-wavjepa",
        description="WavJEPA / WavJEPA-Nat: pretraining, HEAR embeddings, (Nat-)HEAR evaluation.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, configure, _) in COMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    _add_debug(parser, True, set())
    return parser


def command_name(args: argparse.Namespace) -> str:
    """`eval`, or `tasks check` for a command with actions: how error lines name the command."""
    action = getattr(args, "action", None)
    return f"{args.command} {action}" if isinstance(action, str) else args.command


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user error prints one line and returns 2 (`--debug`: its traceback)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][2](args) or 0
    except Exception as exc:
        if args.debug or not is_user_error(exc):
            raise
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"hear-wavjepa {command_name(args)}: error: {message}", file=sys.stderr)
        return 2
