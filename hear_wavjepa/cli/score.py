"""CLI: `hear-wavjepa score` (downstream protocols on a cached task)."""

from __future__ import annotations

import argparse

from hear_wavjepa.cli import UsageError, command, positive_float, positive_int


def _score_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", required=True, help="a finished embedding cache dir of one task")
    parser.add_argument("--protocols", default="mlp,linear,knn", help="comma-separated subset")
    parser.add_argument("--grid", default="default", choices=["default", "fast", "faster"])
    parser.add_argument("--grid-points", type=positive_int, default=8)
    parser.add_argument("--mode", default="batched", choices=["batched", "sequential"])
    parser.add_argument("--device", default="cpu", help="torch device for the MLP and linear probe")
    parser.add_argument("--knn-k", type=positive_int, default=10)
    parser.add_argument("--knn-temperature", type=positive_float, default=0.07)
    parser.add_argument("--rerun", action="store_true", help="recompute stored results")
    parser.add_argument("--out", help="scores file to write (default: CACHE/scores.json)")


@command("score", "run the HEAR MLP / linear / kNN protocols on a cached task", _score_args)
def score(args: argparse.Namespace) -> int:
    from hear_wavjepa.cli.embed import check_device
    from hear_wavjepa.evaluation.cache import load_cached_task
    from hear_wavjepa.evaluation.knn import KnnSettings
    from hear_wavjepa.evaluation.scoring import PROTOCOLS, SCORES_FILE, headline, score_task

    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    if not protocols or any(p not in PROTOCOLS for p in protocols):
        raise UsageError(f"--protocols {args.protocols!r}: choose from {', '.join(PROTOCOLS)}")
    check_device(args.device)
    try:
        load_cached_task(args.cache)
    except ValueError as exc:  # load_cached_task only reads and checks the cache's files
        raise UsageError(f"--cache: {exc}") from exc
    scores = score_task(
        args.cache,
        protocols=protocols,
        grid=args.grid,
        grid_points=args.grid_points,
        mode=args.mode,
        device=args.device,
        knn=KnnSettings(args.knn_k, args.knn_temperature),
        rerun=args.rerun,
        scores_path=args.out,
    )
    for protocol in protocols:
        value = headline(scores, protocol)
        shown = "n/a" if value is None else f"{value:.4f}"
        print(f"{scores['task']}  {protocol:<6} {shown}")
    print(f"wrote {args.out or f'{args.cache}/{SCORES_FILE}'}")
    return 0
