"""`hear-wavjepa naturalize IN [OUT]`: write the Nat-HEAR version of a HEAR task folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from hear_wavjepa.cli import UsageError, command


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", type=Path, help="HEAR task folder (16 kHz or 48 kHz audio)")
    parser.add_argument("out", nargs="?", type=Path,
                        help="output folder (default: <suite>-nat/<task>)")  # fmt: skip
    parser.add_argument("--config", type=Path, default=None,
                        help="conversion settings (default: tasks/nat.yaml)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=None, help="per-clip scene seed")
    parser.add_argument("--snr", type=float, nargs=2, metavar=("MIN", "MAX"), help="SNR range, dB")
    parser.add_argument("--rt60", type=float, nargs=2, metavar=("MIN", "MAX"),
                        help="RT60 range of the room bank, s")  # fmt: skip
    parser.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


@command("naturalize", "write a 2-channel reverberant noisy (Nat-HEAR) copy of a HEAR task",
         _configure)  # fmt: skip
def naturalize_command(args: argparse.Namespace) -> int:
    from hear_wavjepa.hear_task import load_task
    from hear_wavjepa.scenes.naturalize import (
        DEFAULT_CONFIG,
        STATE,
        default_out,
        load_nat_config,
        naturalize,
    )

    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0 (0 = all cores), got {args.workers}")
    try:  # load_nat_config only reads and checks the settings
        config = load_nat_config(args.config or DEFAULT_CONFIG, seed=args.seed, snr=args.snr,
                                 rt60=args.rt60)  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    load_task(args.task)  # TaskError names the file
    out = args.out if args.out is not None else default_out(args.task)
    if out.resolve() == args.task.resolve():
        raise UsageError(f"{out}: the output folder must differ from the input task folder")
    if out.is_dir() and any(out.iterdir()) and not (out / STATE).is_file():
        raise UsageError(f"{out} exists and is not a naturalize output folder (no {STATE})")
    out = naturalize(args.task, args.out, config, workers=args.workers,
                     progress=not args.no_progress)  # fmt: skip
    print(f"naturalized {args.task} -> {out}")
    return 0
