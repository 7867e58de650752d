"""`nox -s oracle`: our HEAR MLP protocol against heareval 2021.1.3 on the same cached embeddings.

For one multiclass TVT, one k-fold, one multilabel and one event mini task (small HEAR-Naive
caches, see harness.py), and a synthetic event task where a grid point predicts no events at its
first validation (`no-events`), it runs heareval's predictions runner, then `run_hear_mlp` in
`sequential` and `batched` mode with the same grid (event tasks: `--event-grid`, default
`faster`, as heareval's event validations run sed_eval and are slow), and prints the scores side
by side. Checks:
(a) metrics: our metrics on heareval's saved test predictions (`<fold>.predictions.pkl`) equal the
    test scores heareval reports (compared after float32 rounding, as Lightning logs them);
(b) sequential: every test split's primary score within max(1 point, 1 test item) of heareval's;
(c) batched: the reported score within two standard errors of heareval's, SE = sqrt(p(1-p)/N)
    with N the test items (clips, or reference events for event tasks) and at least 1/N; for a
    k-fold task (a mean over k separately trained models) at least the standard error of the
    fold mean, std(fold scores) / sqrt(k) (mini tasks only);
(d) `no-events` instead of (c): heareval's logs show a grid point stopped at a NaN validation
    score (Lightning's EarlyStopping, check_finite, which moves the random stream of every later
    point), and sequential equals heareval exactly (float32): the chosen grid point and, per
    test split, every test score, the validation score and the best epoch.
Prints PASS/FAIL per check; exits 1 on any FAIL.
"""

from __future__ import annotations

import argparse
import csv
import math
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from harness import SYNTHETIC, TASKS, headline_key, run_heareval, small_cache, synthetic_cache

from hear_wavjepa.evaluation.cache import CachedTask, load_cached_task
from hear_wavjepa.evaluation.hear_mlp import run_hear_mlp
from hear_wavjepa.evaluation.metrics import get_metric
from hear_wavjepa.paths import home


def same_float32(a: float, b: float) -> bool:
    """Equal after rounding to float32 (NaN equals NaN)."""
    a32, b32 = np.float32(a), np.float32(b)
    return bool(a32 == b32 or (np.isnan(a32) and np.isnan(b32)))


def metric_agreement(
    task: CachedTask, run_dir: Path, scores: dict
) -> list[tuple[str, float, float]]:
    """(key, ours, heareval's) for every test metric of every test split, ours recomputed on
    heareval's saved targets and predictions (event tasks: its predicted and target events)."""
    rows = []
    for split, reported in scores.items():
        pkl = run_dir / f"{split}.predictions.pkl"
        if not pkl.exists():
            continue
        with open(pkl, "rb") as f:
            saved = pickle.load(f)
        for name in task.evaluation:
            metric = get_metric(name)
            if metric.event:
                value = metric(saved["predicted_events"], saved["target_events"], task.labels)
            else:
                value = metric(saved["prediction"].numpy(), saved["target"].numpy())
            subs = value if isinstance(value, tuple) else ()
            pairs = [(f"test_{name}", value[0][1] if subs else value)]
            pairs += [(f"test_{name}_{k}", v) for k, v in subs]
            for key, ours in pairs:
                rows.append((f"{split}/{key}", float(ours), float(reported[key])))
    return rows


def test_items(task: CachedTask, split: str) -> int:
    """N for a split's standard error: clips, or the reference events of an event split."""
    if task.embedding_type == "event":
        return sum(len(v) for v in task.split_events(split).values())
    return len(task.load(split).labels)


def primary_per_split(scores: dict, primary: str) -> dict[str, float]:
    return {
        k: float(v[f"test_{primary}"])
        for k, v in scores.items()
        if isinstance(v, dict) and f"test_{primary}" in v
    }


def fmt(x: float) -> str:
    return f"{x:8.4f}" if math.isfinite(x) else f"{x!s:>8}"


def check_task(
    kind: str, cache: Path, work: Path, grid: str, grid_points: int, rerun: bool
) -> list[bool]:
    task = load_cached_task(cache)
    primary = task.evaluation[0]
    print(f"\n=== {kind}: {cache.name} ({task.prediction_type}, {primary}) ===", flush=True)
    theirs, t_heareval = run_heareval(cache, work, grid, grid_points, reuse=not rerun)
    start = time.perf_counter()
    seq = run_hear_mlp(load_cached_task(cache), grid, grid_points, "sequential", "cpu")
    t_seq = time.perf_counter() - start
    start = time.perf_counter()
    bat = run_hear_mlp(load_cached_task(cache), grid, grid_points, "batched", "cpu")
    t_bat = time.perf_counter() - start
    print(f"wall s: heareval {t_heareval:.1f}  sequential {t_seq:.1f}  batched {t_bat:.1f}")
    print(f"best hparams: heareval lr={theirs['hparams']['lr']} "
          f"layers={theirs['hparams']['hidden_layers']}  sequential lr={seq['hparams']['lr']} "
          f"layers={seq['hparams']['hidden_layers']}  batched lr={bat['hparams']['lr']} "
          f"layers={bat['hparams']['hidden_layers']}")  # fmt: skip
    results = []

    rows = metric_agreement(task, work / cache.name, theirs)
    bad = [r for r in rows if not same_float32(r[1], r[2])]
    for key, ours, ref in bad:
        print(f"  metric mismatch {key}: ours {ours!r} heareval {ref!r}")
    ok = bool(rows) and not bad
    results.append(ok)
    print(f"(a) metrics on heareval's predictions: {len(rows) - len(bad)}/{len(rows)} equal  "
          f"{'PASS' if ok else 'FAIL'}")  # fmt: skip

    print(f"    {'split':<10} {'heareval':>8} {'seq':>8} {'diff':>8} {'batched':>8} {'diff':>8}  "
          f"epochs h/s/b")  # fmt: skip
    ref_split, seq_split = primary_per_split(theirs, primary), primary_per_split(seq, primary)
    bat_split = primary_per_split(bat, primary)
    ok_seq = True
    for split, ref in ref_split.items():
        tol = max(0.01, 1 / test_items(task, split))
        diff = seq_split[split] - ref
        ok_seq &= abs(diff) <= tol
        epochs = [int(s[split]["epoch"]) for s in (theirs, seq, bat)]
        print(f"    {split:<10} {fmt(ref)} {fmt(seq_split[split])} {fmt(diff)} "
              f"{fmt(bat_split[split])} {fmt(bat_split[split] - ref)}  {epochs}")  # fmt: skip
    results.append(ok_seq)
    print(f"(b) sequential within max(1 point, 1 item) per split: {'PASS' if ok_seq else 'FAIL'}")

    if kind in SYNTHETIC:  # a few reference events: a statistical bound says nothing here
        print("(c) batched: n/a on a synthetic task")
        return [*results, exact_agreement(theirs, seq, work / cache.name)]
    section, key = headline_key(theirs, primary)
    ref, ours = float(theirs[section][key]), float(bat[section][key])
    n = sum(test_items(task, s) for s in ref_split)
    se = math.sqrt(max(ref * (1 - ref), 0.0) / n) if 0 <= ref <= 1 else math.inf
    if len(ref_split) > 1:  # a fold mean of k models: its SE includes the spread between folds
        folds = list(ref_split.values())
        se = max(se, float(np.std(folds, ddof=1)) / math.sqrt(len(folds)))
    tol = max(2 * se, 1 / n)
    ok_bat = abs(ours - ref) <= tol
    results.append(ok_bat)
    print(f"(c) batched {key}: heareval {ref:.4f} ours {ours:.4f} diff {ours - ref:+.4f}, "
          f"2 SE = {2 * se:.4f} (N={n}): {'PASS' if ok_bat else 'FAIL'}")  # fmt: skip
    return results


def heareval_validations(run_dir: Path) -> list[list[float]]:
    """The monitored validation scores of each grid point heareval trained (Lightning's CSV
    logs, one version per grid point and fold, in training order)."""
    out = []
    logs = sorted((run_dir / "lightning_logs").glob("version_*"), key=lambda p: int(p.name[8:]))
    for version in logs:
        with open(version / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        out.append([float(r["val_score"]) for r in rows if r.get("val_score", "") != ""])
    return out


def exact_agreement(theirs: dict, seq: dict, run_dir: Path) -> bool:
    """(d): heareval stopped a grid point at a NaN validation score (the case is reached), and
    sequential's chosen grid point and every per-split test score, validation score and best
    epoch equal heareval's (float32)."""
    checks = heareval_validations(run_dir)
    print(f"    heareval's validation scores per grid point: {checks}")
    bad = [] if any(c and math.isnan(c[-1]) for c in checks) else ["no point stopped at NaN"]
    bad += [k for k in ("lr", "hidden_layers") if theirs["hparams"][k] != seq["hparams"][k]]
    for split, ref in theirs.items():
        if not (isinstance(ref, dict) and "test_score" in ref):
            continue
        keys = [k for k in ref if k.startswith("test_") or k in ("validation_score", "epoch")]
        bad += [f"{split}/{k}" for k in keys if not same_float32(seq[split][k], ref[k])]
        print(f"    {split}: validation score heareval {ref['validation_score']} "
              f"sequential {seq[split]['validation_score']}, epoch {ref['epoch']} "
              f"{seq[split]['epoch']}")  # fmt: skip
    for key in bad:
        print(f"  differs: {key}")
    print(f"(d) sequential equals heareval exactly: {'PASS' if not bad else 'FAIL'}")
    return not bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="default", choices=["default", "fast", "faster"])
    parser.add_argument("--event-grid", default="faster", choices=["default", "fast", "faster"])
    parser.add_argument("--grid-points", type=int, default=2)
    parser.add_argument("--dim-stride", type=int, default=16, help="keep every k-th dimension")
    known = (*TASKS, *SYNTHETIC)
    parser.add_argument("--tasks", default=",".join(known), help=f"of {','.join(known)}")
    parser.add_argument(
        "--rerun-heareval",
        action="store_true",
        help="run heareval again even where a finished run of the same inputs exists",
    )
    args = parser.parse_args(argv)
    kinds = [k for k in args.tasks.split(",") if k]
    unknown = set(kinds) - set(known)
    if unknown:
        parser.error(f"unknown tasks {sorted(unknown)}")
    work = home() / "oracle" / "runs"
    work.mkdir(parents=True, exist_ok=True)
    outcome: dict[str, Any] = {}
    for kind in kinds:
        if kind in SYNTHETIC:
            cache = synthetic_cache(kind)
        else:
            cache = small_cache(TASKS[kind], args.dim_stride)
        event = kind == "event" or kind in SYNTHETIC
        grid = args.event_grid if event else args.grid  # sed_eval makes event epochs slow
        outcome[kind] = check_task(kind, cache, work, grid, args.grid_points, args.rerun_heareval)
    print("\n=== summary (a) metrics, (b) sequential, (c) batched or (d) exact ===")
    for kind, res in outcome.items():
        print(f"  {kind:<11} " + "  ".join("PASS" if r else "FAIL" for r in res))
    return 0 if all(all(r) for r in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
