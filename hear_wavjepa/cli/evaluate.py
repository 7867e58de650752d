"""CLI: `hear-wavjepa eval` (models x suite tasks x protocols) and `hear-wavjepa tables`."""

from __future__ import annotations

import argparse
from pathlib import Path

from hear_wavjepa.cli import UsageError, command, positive_int


def _eval_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", nargs="+", required=True, help="hear nat-hear mini mini-nat")
    parser.add_argument("--tasks-dir", type=Path, help="folder of HEAR task folders (hear)")
    parser.add_argument(
        "--nat-tasks-dir",
        type=Path,
        help="folder of Nat-HEAR task folders (default: naturalize the --tasks-dir tasks)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        help="[NAME=]CHECKPOINT (.safetensors, .ckpt, .bin, .pt, or a hub snapshot folder) "
        "| MODULE | MODULE:{json options} "
        "(default: HEAR-Naive, random-init tiny, pretrained tiny)",
    )
    parser.add_argument("--protocols", default="mlp,linear,knn")
    parser.add_argument("--grid", default="default", choices=["default", "fast", "faster"])
    parser.add_argument(
        "--event-grid",
        choices=["default", "fast", "faster"],
        help="the MLP grid of event tasks (default: fast with --grid default, else --grid)",
    )
    parser.add_argument("--grid-points", type=positive_int, default=8, help="HEAR MLP grid points")
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    parser.add_argument("--rerun", action="store_true", help="replace stored scores")


def _suite_dirs(args: argparse.Namespace, suite: str) -> tuple[Path | None, Path | None]:
    """(tasks dir, clean dir) of `suite` as `run_eval` takes them."""
    nat = suite in ("nat-hear", "mini-nat")
    return (args.nat_tasks_dir, args.tasks_dir) if nat else (args.tasks_dir, None)


def _check_suite_folder(suite: str, tasks_dir: Path | None, clean_dir: Path | None) -> list[Path]:
    """The user-given task folders `suite` will read (none for the built-in suites' defaults);
    refuses a missing dir, one without the suite's tasks, or a suite that needs a dir."""
    from hear_wavjepa.suite import suite_tasks

    nat = suite in ("nat-hear", "mini-nat")
    given = tasks_dir or (clean_dir if suite == "nat-hear" else None)
    if given is None:
        if suite in ("mini", "mini-nat"):
            return []
        need = "--nat-tasks-dir or --tasks-dir (naturalized)" if nat else "--tasks-dir"
        raise UsageError(f"suite {suite} needs {need}: the folder of its task folders")
    flag = "--nat-tasks-dir" if nat and given is tasks_dir else "--tasks-dir"
    if not given.is_dir():
        raise UsageError(f"{flag} {given}: not a directory")
    present = [given / t.folder for t in suite_tasks(suite) if (given / t.folder).is_dir()]
    if not present:
        first = suite_tasks(suite)[0].folder
        raise UsageError(f"{flag} {given}: holds none of the {suite} tasks ({first}, ...)")
    return present


def check_eval_args(args: argparse.Namespace) -> tuple[list, list[str]]:
    """Every check `eval` makes before any work: suites, protocols, results dir, models (each
    module imports, each checkpoint reads) and every task folder it will read (wav headers too)."""
    from hear_wavjepa.cli.embed import check_spec, check_task_folders
    from hear_wavjepa.evaluation.models import parse_model
    from hear_wavjepa.evaluation.scoring import PROTOCOLS
    from hear_wavjepa.suite import SUITES

    unknown = [s for s in args.suite if s not in SUITES]
    if unknown:
        raise UsageError(f"unknown suite(s) {unknown}; choose from {', '.join(SUITES)}")
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    wrong = [p for p in protocols if p not in PROTOCOLS]
    if wrong or not protocols:
        raise UsageError(f"--protocols {args.protocols!r}: choose from {', '.join(PROTOCOLS)}")
    if args.results_dir.exists() and not args.results_dir.is_dir():
        raise UsageError(f"--results-dir {args.results_dir}: exists and is not a directory")
    models = []
    for text in args.models or []:
        try:
            models.append(parse_model(text))
        except ValueError as exc:  # parse_model only parses and checks the file exists
            raise UsageError(f"--models: {exc}") from exc
    for model in models:
        check_spec(model.spec)
    folders = [f for s in args.suite for f in _check_suite_folder(s, *_suite_dirs(args, s))]
    check_task_folders(dict.fromkeys(folders))
    return models, protocols


@command("eval", "evaluate models on a task suite and write the results tables", _eval_args)
def eval_command(args: argparse.Namespace) -> int:
    from hear_wavjepa.pipeline import default_models, evaluate, pretrained_tiny, write_results

    models, protocols = check_eval_args(args)
    models = models or default_models(pretrained_tiny())
    for suite in dict.fromkeys(args.suite):
        tasks_dir, clean_dir = _suite_dirs(args, suite)
        evaluate(
            suite,
            models,
            tasks_dir=tasks_dir,
            clean_dir=clean_dir,
            protocols=protocols,
            grid=args.grid,
            results_dir=args.results_dir,
            rerun=args.rerun,
            grid_points=args.grid_points,
            event_grid=args.event_grid,
        )
    for path in write_results(args.results_dir):
        print(f"wrote {path}")
    return 0


def _tables_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", type=Path, default=Path("results"))


@command(
    "tables",
    "regenerate results/*.md (and the learning curves they show) from stored scores",
    _tables_args,
)
def tables(args: argparse.Namespace) -> int:
    from hear_wavjepa.pipeline import write_results

    if not args.results_dir.is_dir():
        raise UsageError(f"--results-dir {args.results_dir}: not a directory")

    for path in write_results(args.results_dir):
        print(f"wrote {path}")
    return 0
