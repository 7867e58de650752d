"""CLI: `hear-wavjepa plot RUN [-o PNG]`, a pretraining run's learning curves as one PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from hear_wavjepa.cli import command


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run",
        metavar="RUN",
        help="a run name under $HEAR_WAVJEPA_HOME/runs, a run folder, or its metrics.csv",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        help="the PNG to write (default: RUN/learning-curves.png)",
    )


@command(
    "plot",
    "draw a pretraining run's learning curves (loss, context rank, target std, probes) as a PNG",
    _configure,
)
def plot_command(args: argparse.Namespace) -> int:
    from hear_wavjepa.training.curves import CURVES_FILE, draw_curves, find_metrics

    metrics = find_metrics(args.run)  # CurvesError: one line, exit 2
    out = args.out or metrics.parent / CURVES_FILE
    draw_curves(metrics, out, title=f"run {metrics.parent.name}")
    print(out)
    return 0
