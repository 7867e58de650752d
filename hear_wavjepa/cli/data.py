"""`hear-wavjepa tasks build-mini|build-corpus|check`: offline mini suite, pretraining corpus,
validation of task folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from hear_wavjepa.cli import command


def _configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    build = actions.add_parser("build-mini", help="build the offline mini-HEAR suite")
    build.add_argument("out", nargs="?", type=Path,
                       help="output folder (default $HEAR_WAVJEPA_HOME/tasks/mini)")  # fmt: skip
    build.add_argument("--scale", type=float, default=1.0, help="clip counts x S (default 1.0)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--overwrite", action="store_true",
                       help="replace the built tasks in a non-empty OUT")  # fmt: skip
    build.add_argument("--only", nargs="+", metavar="TASK", help="task names or short names")
    build.add_argument("--sounds", choices=["small", "default", "more"], default="default",
                       help="Debian sound packages to download (cumulative tiers)")  # fmt: skip
    build.add_argument("--more-sounds", dest="sounds", action="store_const", const="more",
                       help="= --sounds more (adds the large game-data packages)")  # fmt: skip
    build.add_argument("--workers", type=int, default=2, help="synthesis threads (default 2)")
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    corpus = actions.add_parser("build-corpus", help="build the offline pretraining corpus")
    corpus.add_argument("out", nargs="?", type=Path,
                        help="output folder (default $HEAR_WAVJEPA_HOME/corpus)")  # fmt: skip
    corpus.add_argument("--clips", type=int, default=800, help="10-s clips (default 800)")
    corpus.add_argument("--seed", type=int, default=0)
    corpus.add_argument("--workers", type=int, default=2, help="synthesis threads (default 2)")
    corpus.add_argument("--no-progress", action="store_true", help="no progress bars")
    check = actions.add_parser("check", help="validate HEAR task folders and summarise them")
    check.add_argument("folders", nargs="+", type=Path)
    check.add_argument("--sample-rate", type=int, default=None)


@command(
    "tasks",
    "build the offline mini-HEAR suite or corpus, or validate HEAR task folders",
    _configure,
)
def tasks(args: argparse.Namespace) -> int:
    if args.action == "check":
        from hear_wavjepa.hear_task import load_task

        for folder in args.folders:
            task = load_task(folder, args.sample_rate)
            counts = " ".join(f"{s}={len(task.clips[s])}" for s in task.splits)
            print(f"ok {task.name}: {task.embedding_type}/{task.prediction_type}, "
                  f"{len(task.labels)} labels, {task.primary_metric}, {counts}")  # fmt: skip
        return 0
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
