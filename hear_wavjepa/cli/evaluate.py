"""CLI: `hear-wavjepa eval` (models x suite tasks x protocols) and `hear-wavjepa tables`."""

from __future__ import annotations

import argparse
from pathlib import Path

from hear_wavjepa.cli import command


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
        help="[NAME=]checkpoint.safetensors | MODULE | MODULE:{json options} "
        "(default: HEAR-Naive, random-init tiny, pretrained tiny)",
    )
    parser.add_argument("--protocols", default="mlp,linear,knn")
    parser.add_argument("--grid", default="default", choices=["default", "fast", "faster"])
    parser.add_argument(
        "--event-grid",
        choices=["default", "fast", "faster"],
        help="the MLP grid of event tasks (default: fast with --grid default, else --grid)",
    )
    parser.add_argument("--grid-points", type=int, default=8, help="HEAR MLP grid points")
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    parser.add_argument("--rerun", action="store_true", help="replace stored scores")


@command("eval", "evaluate models on a task suite and write the results tables", _eval_args)
def eval_command(args: argparse.Namespace) -> int:
    from hear_wavjepa.evaluation.models import parse_model
    from hear_wavjepa.evaluation.report import write_tables
    from hear_wavjepa.pipeline import default_models, evaluate, pretrained_tiny
    from hear_wavjepa.suite import check_suite

    suites = [check_suite(s) for s in args.suite]
    if args.models:
        models = [parse_model(m) for m in args.models]
    else:
        models = default_models(pretrained_tiny())
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    for suite in suites:
        nat = suite.endswith("nat") or suite == "nat-hear"
        evaluate(
            suite,
            models,
            tasks_dir=args.nat_tasks_dir if nat else args.tasks_dir,
            clean_dir=args.tasks_dir if nat else None,
            protocols=protocols,
            grid=args.grid,
            results_dir=args.results_dir,
            rerun=args.rerun,
            grid_points=args.grid_points,
            event_grid=args.event_grid,
        )
    for path in write_tables(args.results_dir):
        print(f"wrote {path}")
    return 0


def _tables_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", type=Path, default=Path("results"))


@command("tables", "regenerate results/*.md from stored scores (no model runs)", _tables_args)
def tables(args: argparse.Namespace) -> int:
    from hear_wavjepa.evaluation.report import write_tables

    for path in write_tables(args.results_dir):
        print(f"wrote {path}")
    return 0
