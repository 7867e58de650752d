"""`hear-wavjepa tasks build-mini|build-corpus|check`: offline mini suite, pretraining corpus,
validation of task folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hear_wavjepa.cli import UsageError, command, positive_float, positive_int


def _configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    build = actions.add_parser("build-mini", help="build the offline mini-HEAR suite")
    build.add_argument("out", nargs="?", type=Path,
                       help="output folder (default $HEAR_WAVJEPA_HOME/tasks/mini)")  # fmt: skip
    build.add_argument(
        "--scale", type=positive_float, default=1.0, help="clip counts x S (default 1.0)"
    )
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--overwrite", action="store_true",
                       help="replace the built tasks in a non-empty OUT")  # fmt: skip
    build.add_argument("--only", nargs="+", metavar="TASK", help="task names or short names")
    build.add_argument("--sounds", choices=["small", "default", "more"], default="default",
                       help="Debian sound packages to download (cumulative tiers)")  # fmt: skip
    build.add_argument("--more-sounds", dest="sounds", action="store_const", const="more",
                       help="= --sounds more (adds the large game-data packages)")  # fmt: skip
    build.add_argument("--workers", type=positive_int, default=2,
                       help="synthesis threads (default 2)")  # fmt: skip
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    corpus = actions.add_parser("build-corpus", help="build the offline pretraining corpus")
    corpus.add_argument("out", nargs="?", type=Path,
                        help="output folder (default $HEAR_WAVJEPA_HOME/corpus)")  # fmt: skip
    corpus.add_argument("--clips", type=positive_int, default=800, help="10-s clips (default 800)")
    corpus.add_argument("--seed", type=int, default=0)
    corpus.add_argument("--workers", type=positive_int, default=2,
                        help="synthesis threads (default 2)")  # fmt: skip
    corpus.add_argument("--no-progress", action="store_true", help="no progress bars")
    check = actions.add_parser("check", help="validate HEAR task folders and summarise them")
    check.add_argument("folders", nargs="+", type=Path)
    check.add_argument("--sample-rate", type=positive_int, default=None,
                       help="check only this rate folder (default: every one present)")  # fmt: skip
    check.add_argument("--deep", action="store_true",
                       help="also read the samples: NaN or Inf, silence, duplicates")  # fmt: skip


@command(
    "tasks",
    "build the offline mini-HEAR suite or corpus, or validate HEAR task folders",
    _configure,
)
def tasks(args: argparse.Namespace) -> int:
    if args.action == "check":
        return check_folders(args.folders, args.sample_rate, args.deep, args.debug)
    if args.action == "build-corpus":
        from hear_wavjepa.builders.synthetic_corpus import build_synthetic_corpus

        report = build_synthetic_corpus(
            args.out, clips=args.clips, seed=args.seed, workers=args.workers,
            progress=not args.no_progress,
        )  # fmt: skip
        mix = ", ".join(f"{kind} {n}" for kind, n in report.kinds.items())
        print(f"corpus: {sum(report.kinds.values())} clips ({mix}); {report.written} written in "
              f"{report.seconds:.1f} s; {report.bytes / 1e6:.1f} MB -> {report.out}")  # fmt: skip
        return 0

    from hear_wavjepa.builders.mini.build import build_mini, default_out

    out = args.out or default_out()
    _check_build_args(out, args.overwrite, args.only)
    reports = build_mini(out, scale=args.scale, seed=args.seed, overwrite=args.overwrite,
                         only=args.only, sounds=args.sounds, workers=args.workers,
                         progress=not args.no_progress)  # fmt: skip
    print(f"{'task':<26} {'clips':>6} {'seconds':>8} {'MB':>7}")
    for r in reports:
        print(f"{r.folder:<26} {sum(r.clips.values()):>6} {r.seconds:>8.1f} {r.bytes / 1e6:>7.1f}")
    total_s, total_b = sum(r.seconds for r in reports), sum(r.bytes for r in reports)
    print(f"{'total':<26} {sum(sum(r.clips.values()) for r in reports):>6} "
          f"{total_s:>8.1f} {total_b / 1e6:>7.1f}   -> {out}")  # fmt: skip
    return 0


def check_folders(
    folders: list[Path], sample_rate: int | None, deep: bool, debug: bool = False
) -> int:
    """`tasks check`: one `ok` line per valid folder, one error line per invalid one (exit 2;
    `debug` raises the first instead), warnings on stderr."""
    from hear_wavjepa.hear_task import TaskError, audit_task, load_task

    failed = 0
    for folder in folders:
        try:
            task = load_task(folder, sample_rate)
            warnings = audit_task(task, deep)
        except TaskError as exc:
            if debug:
                raise
            print(f"hear-wavjepa tasks check: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        counts = " ".join(f"{s}={len(task.clips[s])}" for s in task.splits)
        print(f"ok {task.name}: {task.embedding_type}/{task.prediction_type}, "
              f"{len(task.labels)} labels, {task.primary_metric}, {counts}")  # fmt: skip
        for warning in warnings:
            print(f"hear-wavjepa tasks check: warning: {warning}", file=sys.stderr)
    return 2 if failed else 0


def _check_build_args(out: Path, overwrite: bool, only: list[str] | None) -> None:
    """`build-mini` refusals before any work: OUT a file, OUT not empty, unknown --only names."""
    from hear_wavjepa.builders.mini.build import select
    from hear_wavjepa.builders.mini.recipe import DEFAULT_RECIPE, load_recipes

    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(
            f"{out}: output folder is not empty; pass --overwrite to replace its tasks"
        )
    if only:
        try:
            select(load_recipes(DEFAULT_RECIPE), only, out)
        except ValueError as exc:  # select only matches the names against the recipes
            raise UsageError(f"--only: {exc}") from exc
