"""Wall time of our batched HEAR MLP protocol against heareval 2021.1.3's runner, same embeddings.

One run each on a scene task (mini_keywords, multiclass TVT) and the event task (mini_events), on
the small HEAR-Naive caches of `nox -s oracle` (tests/oracle/harness.py), with heareval's `default`
grid (`faster` on the event task, as the oracle) and 8 grid points unless `--grid`,
`--event-grid` / `--grid-points` say otherwise. heareval runs in the
oracle venv; without it the benchmark is skipped. Prints wall and CPU seconds of both and the
heareval / ours ratios (targets: >= 10x on scene tasks, >= 2x on the event task, 2-core CPU).
heareval's time is its own `prediction-done.json` time (imports excluded); its process wall time
is shown too. CPU seconds matter on a shared machine, where wall times swing.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from harness import ORACLE_PYTHON, TASKS, run_heareval, small_cache

from hear_wavjepa.evaluation.cache import load_cached_task
from hear_wavjepa.evaluation.hear_mlp import run_hear_mlp
from hear_wavjepa.paths import home

TARGETS = {"multiclass": 10.0, "event": 2.0}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="default", choices=["default", "fast", "faster"])
    parser.add_argument(
        "--event-grid",
        default="faster",
        choices=["default", "fast", "faster"],
        help="the event task's grid (sed_eval makes heareval's event validations slow)",
    )
    parser.add_argument("--grid-points", type=int, default=8)
    parser.add_argument("--dim-stride", type=int, default=16)
    args = parser.parse_args()
    if not ORACLE_PYTHON.exists():
        print(f"SKIP bench_oracle_speed: no oracle venv at {ORACLE_PYTHON}; run `nox -s oracle`")
        return 0
    work = home() / "oracle" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in TARGETS:
        cache = small_cache(TASKS[kind], args.dim_stride)
        grid = args.event_grid if kind == "event" else args.grid
        cpu0 = children_cpu()
        _, process_wall = run_heareval(cache, work, grid, args.grid_points)
        heareval_cpu = children_cpu() - cpu0
        done = json.loads((work / cache.name / "prediction-done.json").read_text())
        heareval_wall = float(done["time"])
        wall0, cpu0 = time.perf_counter(), time.process_time()
        run_hear_mlp(load_cached_task(cache), grid, args.grid_points, "batched", "cpu")
        ours_wall, ours_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        rows.append((cache.name, heareval_wall, process_wall, heareval_cpu, ours_wall, ours_cpu))
    print(
        f"\nheareval runner vs batched protocol, grid {args.grid} (event task: {args.event_grid}), "
        f"{args.grid_points} points"
    )
    print(
        f"{'task':<22} {'heareval s':>10} {'(process)':>10} {'cpu s':>8} {'ours s':>8} "
        f"{'cpu s':>8} {'wall x':>7} {'cpu x':>7} {'target':>7}"
    )
    for (name, h_wall, p_wall, h_cpu, o_wall, o_cpu), target in zip(
        rows, TARGETS.values(), strict=True
    ):
        print(
            f"{name:<22} {h_wall:10.1f} {p_wall:10.1f} {h_cpu:8.1f} {o_wall:8.1f} {o_cpu:8.1f} "
            f"{h_wall / o_wall:7.2f} {h_cpu / o_cpu:7.2f} {target:6.0f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
