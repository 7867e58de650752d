"""The three protocols at the size of the paper's 11 HEAR tasks: time, peak memory, FLOP rate.

For every task of `tasks/hear.yaml` a synthetic embedding cache is written in the real cache
layout (`hear_wavjepa/evaluation/cache.py`: raw float32 `<split>.embeddings.npy`, labels pickle,
dimensions, file names and, for event tasks, per-frame timestamps) with the task's clips per
split or fold, label count, prediction type and split mode (`SIZES` below), 768-d embeddings
(event tasks: one row per 10 ms frame, as the HEAR module's timestamp embeddings). Each protocol
then runs in its own subprocess (so peaks do not accumulate): the HEAR MLP with the main job's
grids (`default` for scene tasks, `fast` for the event task; 8 grid points), the linear probe and
kNN (multiclass scene tasks only). A row gives the wall time, the peak RSS (VmHWM of that
process, which includes memory-mapped file pages), the FLOPs of the protocol's matrix products
and their rate against the matmul rate measured in the same run; on CUDA also the peak memory
torch allocated.

The default run (about 10 minutes on 2 loaded CPU cores) scales down: every MLP grid point trains
`--epochs` (1) epoch(s) and validates at its end, instead of up to 500 (`default`) or 50 (`fast`)
epochs with early stopping, and the big tasks keep a fraction of their clips (event tasks: of
each clip's frames). Such rows are marked, and their times are extrapolated: linearly in clips,
and the MLP's training (its `train_stack` time) linearly in epochs to the grid's epoch bound (an
upper bound: real runs stop early). FSD50K's MLP and linear
rows always run at full size, so their peak memory is measured, not extrapolated. `--full` runs
real sizes and real grids (early stopping on synthetic data). heareval 2021.1.3's runner (the
oracle venv of `nox -s oracle`) runs on one task's cache (`--heareval-task`, default ESC-50),
on every task when CUDA is present, for a time ratio against our MLP on the same cache.

Run: `nox -s bench -- hear_scale`, or with options
`PYTHONPATH=tests:tests/oracle python tests/benchmarks/bench_hear_scale.py --full --device cuda`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import pickle
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hear_wavjepa.evaluation.cache import DONE_MARKER, timestamp_labels
from hear_wavjepa.hear_task import write_task_files
from hear_wavjepa.paths import home

DIM = 768
HOP_MS = 10.0  # the HEAR module's frame grid (docs/hear-api.md)
SCENE_GRID, EVENT_GRID, GRID_POINTS = "default", "fast", 8
EPOCH_BOUND = {"default": 500, "fast": 50}  # the grids' largest max_epochs


@dataclass(frozen=True)
class TaskSize:
    """One HEAR task's shape: clips per split (TVT) or per fold, labels, types, metrics."""

    short: str
    task_name: str
    embedding: str
    prediction: str
    split_mode: str
    clips: tuple[int, ...]  # (train, valid, test) or one entry per fold
    labels: int
    evaluation: tuple[str, ...]
    clip_seconds: float = 0.0  # event tasks: frames per clip = seconds / 10 ms

    @property
    def splits(self) -> tuple[str, ...]:
        if self.split_mode == "trainvaltest":
            return ("train", "valid", "test")
        return tuple(f"fold{i:02d}" for i in range(len(self.clips)))


def _folds(total: int, k: int) -> tuple[int, ...]:
    return tuple(total // k + (i < total % k) for i in range(k))


_SCENE_METRICS = ("top1_acc", "mAP", "d_prime", "aucroc")

#: The paper's 11 HEAR tasks (tasks/hear.yaml) with the HEAR 2021 task facts: total clips, folds,
#: labels, clip length, as published in the HEAR paper's task table (Turian et al., "HEAR:
#: Holistic Evaluation of Audio Representations", PMLR 176, 2022) and on hearbenchmark.com.
#: Per-split counts of the train/valid/test tasks: FSD50K's official split (36,796 / 4,170 /
#: 10,231); SC-5 keeps the official test set (4,890) and we split the other 18,000 clips 80/20;
#: NSynth-5h's 5,000 clips 80/10/10 and DCASE's 72 clips 60/20/20 (hear-preprocess's percentages)
#: are our approximations of the exact counts. k-fold tasks: the total divided evenly over folds.
SIZES: tuple[TaskSize, ...] = (
    TaskSize("DCASE", "dcase2016_task2", "event", "multilabel", "trainvaltest", (44, 14, 14), 11,
             ("event_onset_200ms_fms", "segment_1s_er"), clip_seconds=120.0),
    TaskSize("FSD50K", "fsd50k", "scene", "multilabel", "trainvaltest", (36796, 4170, 10231), 200,
             ("mAP", "d_prime", "aucroc", "top1_acc")),
    TaskSize("LC", "libricount", "scene", "multiclass", "new_split_kfold", _folds(5720, 5), 11,
             _SCENE_METRICS),
    TaskSize("ESC-50", "esc50", "scene", "multiclass", "presplit_kfold", _folds(2000, 5), 50,
             _SCENE_METRICS),
    TaskSize("CD", "tfds_crema_d", "scene", "multiclass", "new_split_kfold", _folds(7438, 5), 6,
             _SCENE_METRICS),
    TaskSize("VL", "vox_lingua_top10", "scene", "multiclass", "new_split_kfold", _folds(972, 5),
             10, _SCENE_METRICS),
    TaskSize("SC-5", "speech_commands", "scene", "multiclass", "trainvaltest", (14400, 3600, 4890),
             12, ("top1_acc",)),
    TaskSize("NS", "nsynth_pitch", "scene", "multiclass", "trainvaltest", (4000, 500, 500), 88,
             ("pitch_acc", "chroma_acc")),
    TaskSize("BO", "beijing_opera", "scene", "multiclass", "new_split_kfold", _folds(236, 5), 4,
             _SCENE_METRICS),
    TaskSize("Mri-S", "mridangam_stroke", "scene", "multiclass", "new_split_kfold",
             _folds(6977, 5), 10, _SCENE_METRICS),
    TaskSize("Mri-T", "mridangam_tonic", "scene", "multiclass", "new_split_kfold",
             _folds(6977, 5), 6, _SCENE_METRICS),
)  # fmt: skip

#: The default (CPU) run's fraction of clips (event tasks: of each clip's frames) per task.
CPU_FRACTION = {"DCASE": 0.02, "SC-5": 0.5}


# ----------------------------------------------------------------------------------------------
# Synthetic caches in the real layout


def _frames(task: TaskSize, fraction: float) -> int:
    return max(20, int(task.clip_seconds * 1000 / HOP_MS * fraction))


def write_cache(task: TaskSize, root: Path, fraction: float, epochs: int | None) -> Path:
    """A finished cache of `task` (a `fraction` of its clips, or of each event clip's frames)
    under `root`; `epochs` caps every MLP grid point through the task's param grid (None: the
    real grid). Written once; a finished cache is reused."""
    name = f"{task.short}-f{fraction:g}-e{epochs or 'all'}-d{DIM}"
    out = root / name
    if (out / DONE_MARKER).exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = [f"l{i:03d}" for i in range(task.labels)]
    means = rng.normal(0, 0.3, (task.labels, DIM)).astype(np.float32)
    event = task.embedding == "event"
    scaled = [n if event else max(2 * task.labels, round(n * fraction)) for n in task.clips]
    tables: dict[str, dict[str, Any]] = {}
    for split, n in zip(task.splits, scaled, strict=True):
        if event:
            tables[split] = _event_split(out, split, n, _frames(task, fraction), labels, means, rng)
        else:
            tables[split] = _scene_split(out, split, n, task, labels, means, rng)
    meta: dict[str, Any] = {
        "task_name": task.task_name,
        "version": "synthetic",
        "mode": "full",
        "embedding_type": task.embedding,
        "prediction_type": task.prediction,
        "split_mode": task.split_mode,
        "splits": list(task.splits),
        "sample_duration": task.clip_seconds or None,
        "evaluation": list(task.evaluation),
    }
    if task.split_mode != "trainvaltest":
        meta["nfolds"] = len(task.splits)
    if epochs:
        grid = {"max_epochs": [epochs], "check_val_every_n_epoch": [epochs]}
        meta["evaluation_params"] = {"task_specific_param_grid": grid}
    write_task_files(out, meta, labels, tables)
    (out / DONE_MARKER).write_bytes(b"")
    return out


def _write_rows(out: Path, split: str, chunks, rows: int) -> None:
    with open(out / f"{split}.embeddings.npy", "wb") as f:
        for chunk in chunks:
            f.write(np.ascontiguousarray(chunk, dtype=np.float32).tobytes())
    (out / f"{split}.embedding-dimensions.json").write_text(json.dumps([rows, DIM]))


def _scene_split(out, split, n, task, labels, means, rng) -> dict[str, list[str]]:
    """n clips: one class each (multiclass, round robin so every class occurs), or 1-3 classes
    (multilabel, the first one round robin); embedding = sum of class means + noise."""
    classes = []
    for i in range(n):
        first = i % len(labels)
        if task.prediction == "multilabel":
            extra = rng.choice(len(labels), int(rng.integers(0, 3)), replace=False).tolist()
            classes.append(sorted({first, *extra}))
        else:
            classes.append([first])
    order = rng.permutation(n)
    classes = [classes[i] for i in order]
    names = [f"{split}-{i:06d}.wav" for i in range(n)]

    def chunks():
        for start in range(0, n, 4096):
            block = classes[start : start + 4096]
            x = rng.normal(0, 1.0, (len(block), DIM)).astype(np.float32)
            for row, cls in enumerate(block):
                x[row] += means[cls].sum(axis=0)
            yield x

    _write_rows(out, split, chunks(), n)
    row_labels = [[labels[c] for c in cls] for cls in classes]
    with open(out / f"{split}.target-labels.pkl", "wb") as f:
        pickle.dump(row_labels, f)
    (out / f"{split}.filenames.json").write_text(json.dumps(names))
    return dict(zip(names, row_labels, strict=True))


def _event_split(out, split, n, frames, labels, means, rng) -> dict[str, list[dict]]:
    """n clips of `frames` 10 ms frames; each clip holds 8 events of random labels and lengths
    (0.2-2 s); frame embedding = noise + the means of the labels active at its timestamp."""
    ts = np.arange(frames) * HOP_MS + HOP_MS * 0.75  # frame centres of the 10 ms grid
    duration = frames * HOP_MS
    table, row_labels, stamps = {}, [], []

    def chunks():
        for i in range(n):
            name = f"{split}-{i:03d}.wav"
            events = []
            for _ in range(8):
                start = float(rng.uniform(0, duration * 0.9))
                end = min(duration, start + float(rng.uniform(200, 2000)))
                events.append({"label": labels[int(rng.integers(len(labels)))], "start": start,
                               "end": end})  # fmt: skip
            events.sort(key=lambda e: e["start"])
            table[name] = events
            frame_labels = timestamp_labels(events, ts)
            x = rng.normal(0, 1.0, (frames, DIM)).astype(np.float32)
            for row, active in enumerate(frame_labels):
                for label in active:
                    x[row] += means[labels.index(label)]
            row_labels.extend(frame_labels)
            stamps.extend([str(out / split / name), float(t)] for t in ts)
            yield x

    _write_rows(out, split, chunks(), n * frames)
    with open(out / f"{split}.target-labels.pkl", "wb") as f:
        pickle.dump(row_labels, f)
    (out / f"{split}.filename-timestamps.json").write_text(json.dumps(stamps))
    (out / f"{split}.filenames.json").write_text(json.dumps([Path(p).name for p, _ in stamps]))
    return table


# ----------------------------------------------------------------------------------------------
# FLOPs of the protocols' matrix products (multiply-adds count 2)


def mlp_dims(conf: dict[str, Any], classes: int) -> list[int]:
    return [DIM] + [int(conf["hidden_dim"])] * int(conf["hidden_layers"]) + [classes]


def forward_flops(dims: list[int]) -> int:
    return sum(2 * a * b for a, b in itertools.pairwise(dims))


def train_flops(dims: list[int]) -> int:
    """Forward, weight gradients, and input gradients of every layer but the first."""
    return 3 * forward_flops(dims) - 2 * dims[0] * dims[1]


# ----------------------------------------------------------------------------------------------
# Workers (one subprocess per protocol)


def vm_hwm_mb() -> float:
    """This process's peak resident set (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def matmul_worker(device: str, seconds: float = 0.4) -> dict[str, Any]:
    """GFLOP/s of float32 matmuls of the MLP's shapes: a (1024, 768) x (768, 1024) product and
    a batched one of 4 such products, best of 3 timings of `seconds` each."""
    import torch

    from hear_wavjepa.evaluation.threads import protocol_threads

    torch.set_num_threads(protocol_threads())  # the MLP's and kNN's count
    dev = torch.device(device)
    a = torch.randn(1024, DIM, device=dev)
    b = torch.randn(DIM, 1024, device=dev)
    a4, b4 = a.expand(4, -1, -1).contiguous(), b.expand(4, -1, -1).contiguous()
    rates, cpu_best = {}, 0.0
    for name, fn, flops in (
        ("mm", lambda: a @ b, 2 * 1024 * DIM * 1024),
        ("bmm", lambda: torch.bmm(a4, b4), 4 * 2 * 1024 * DIM * 1024),
    ):
        best = 0.0
        for _ in range(3):
            reps, start, cpu = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - start < seconds:
                fn()
                reps += 1
            if dev.type == "cuda":
                torch.cuda.synchronize()
            best = max(best, reps * flops / (time.perf_counter() - start))
            cpu_best = max(cpu_best, reps * flops / max(time.process_time() - cpu, 1e-9))
        rates[name] = best / 1e9
    return {
        "gflops": max(rates.values()),
        "gflops_cpu": cpu_best / 1e9,  # per CPU second: what a busy machine leaves to a process
        "rates": rates,
        "threads": torch.get_num_threads(),
    }


def protocol_worker(protocol: str, cache: str, device: str) -> dict[str, Any]:
    """Run one protocol on one cache; wall seconds, VmHWM, FLOPs of its matrix products."""
    import torch

    from hear_wavjepa.evaluation import hear_mlp
    from hear_wavjepa.evaluation.cache import load_cached_task
    from hear_wavjepa.evaluation.knn import run_knn
    from hear_wavjepa.evaluation.linear import LinearSettings, run_linear

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its lazy imports (seconds) untimed
    # the matmul rate right before the protocol, at its thread count (the machine's load varies)
    rate = matmul_worker(device, 0.2)
    base_mb = vm_hwm_mb()
    task = load_cached_task(cache)
    classes = len(task.labels)
    rows = {s: json.loads((task.path / f"{s}.embedding-dimensions.json").read_text())[0]
            for s in task.splits}  # fmt: skip
    folds = task.protocol_splits()
    flops = 0
    trained: list[tuple[dict, int, int]] = []  # (conf, epochs, train rows) per trained point
    train_seconds: list[float] = []  # wall time of each stack's training (epochs, validations)
    train_cpu: list[float] = []  # and its CPU time
    start, cpu_start = time.perf_counter(), time.process_time()
    if protocol == "mlp":
        train_stack = hear_mlp.train_stack

        def counting(confs, train, *args, **kwargs):
            t0, c0 = time.perf_counter(), time.process_time()
            points = train_stack(confs, train, *args, **kwargs)
            train_seconds.append(time.perf_counter() - t0)
            train_cpu.append(time.process_time() - c0)
            trained.extend((p.conf, p.last_epoch + 1, len(train.x)) for p in points)
            return points

        hear_mlp.train_stack = counting
        grid = EVENT_GRID if task.embedding_type == "event" else SCENE_GRID
        result = hear_mlp.run_hear_mlp(task, grid, GRID_POINTS, "batched", device)
        score = result.get("aggregated_scores", {}).get("test_score_mean")
        if score is None:
            score = result["test"]["test_score"]
        valid_rows = rows[folds[0][1]]
        for conf, epochs, n_train in trained:
            dims = mlp_dims(conf, classes)
            checks = epochs // int(conf["check_val_every_n_epoch"])
            flops += epochs * n_train * train_flops(dims)
            flops += checks * valid_rows * forward_flops(dims)
        best = mlp_dims(result["hparams"], classes)
        flops += sum(rows[test] for _, _, test in folds) * forward_flops(best)
    elif protocol == "linear":
        settings = LinearSettings()
        result = run_linear(task, settings, device)
        score = result["test_score_mean"]
        dims = [DIM, classes]
        for train_splits, valid, test in folds:
            n_train = sum(rows[s] for s in train_splits)
            per_epoch = n_train * train_flops(dims) + rows[valid] * forward_flops(dims)
            flops += settings.epochs * per_epoch
            flops += rows[test] * forward_flops(dims)
    elif protocol == "knn":
        result = run_knn(task)
        score = result.get("test_score_mean", float("nan"))
        for train_splits, _, test in folds:
            flops += 2 * rows[test] * sum(rows[s] for s in train_splits) * DIM
    else:
        raise ValueError(protocol)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    out = {"seconds": seconds, "peak_mb": vm_hwm_mb(), "base_mb": base_mb, "flops": flops,
           "score": score, "gflops": rate["gflops"], "gflops_cpu": rate["gflops_cpu"],
           "cpu_seconds": cpu_seconds}  # fmt: skip
    if train_seconds:
        out["train_seconds"] = sum(train_seconds)
        out["train_cpu_seconds"] = sum(train_cpu)
    if device.startswith("cuda"):
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run_worker(args: list[str]) -> dict[str, Any]:
    """This script as a subprocess (`--worker ...`); its last stdout line is JSON."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# heareval


def heareval_seconds(cache: Path, grid: str) -> float | None:
    """heareval's own time (its prediction-done.json, imports excluded) on a copy of `cache`;
    None without the oracle venv."""
    try:
        from harness import ORACLE_PYTHON, run_heareval
    except ImportError:
        return None
    if not ORACLE_PYTHON.exists():
        return None
    work = home() / "bench" / "hear-scale-heareval"
    work.mkdir(parents=True, exist_ok=True)
    run_heareval(cache, work, grid, GRID_POINTS, reuse=True)  # the same cache, grid, threads
    done = json.loads((work / cache.name / "prediction-done.json").read_text())
    return float(done["time"])


# ----------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="real sizes and grids (no scaling)")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--epochs", type=int, default=1, help="MLP epochs per grid point (scaled)")
    parser.add_argument("--tasks", default=",".join(t.short for t in SIZES))
    parser.add_argument("--protocols", default="mlp,linear,knn")
    parser.add_argument("--heareval-task", default="ESC-50", help="'none' to skip heareval")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        out = matmul_worker(*rest) if kind == "matmul" else protocol_worker(kind, *rest)
        print(json.dumps(out))
        return 0
    wanted = args.tasks.split(",")
    unknown = set(wanted) - {t.short for t in SIZES}
    if unknown:
        parser.error(f"unknown tasks {sorted(unknown)}")
    protocols = args.protocols.split(",")
    root = home() / "bench" / "hear-scale"
    rate = run_worker(["matmul", args.device])
    print(
        f"matmul rate ({args.device}, {rate['threads']} threads): "
        + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in rate["rates"].items()),
        flush=True,
    )
    rows = []
    for task in SIZES:
        if task.short not in wanted:
            continue
        fraction = 1.0 if args.full else CPU_FRACTION.get(task.short, 1.0)
        epochs = None if args.full else args.epochs
        grid = EVENT_GRID if task.embedding == "event" else SCENE_GRID
        t0 = time.perf_counter()
        cache = write_cache(task, root, fraction, epochs)
        print(f"{task.short}: cache {cache} ({time.perf_counter() - t0:.0f} s)", flush=True)
        for protocol in protocols:
            if protocol == "knn" and (task.embedding, task.prediction) != ("scene", "multiclass"):
                continue
            f = fraction
            if protocol != "knn" and task.short == "FSD50K":
                f = 1.0  # FSD50K's MLP and linear rows run at full size (peak memory)
            run_cache = cache if f == fraction else write_cache(task, root, f, epochs)
            result = run_worker([protocol, str(run_cache), args.device])
            scale = 1.0 / f if protocol != "knn" else 1.0 / f**2
            if protocol == "mlp" and epochs:
                # training scales with the epochs; loading, folds and testing do not
                train = result["train_seconds"]
                full = result["seconds"] + train * (EPOCH_BOUND[grid] / epochs - 1)
                scale *= full / result["seconds"]
            heareval = None
            if protocol == "mlp" and (
                args.device.startswith("cuda") or task.short == args.heareval_task
            ):
                heareval = heareval_seconds(run_cache, grid)
            row = (task, protocol, f, result, scale, heareval)
            rows.append(row)
            print_row(row, rate["gflops"], header=len(rows) == 1)
    print_summary(rows, rate, args)
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def print_row(row, gflops: float, header: bool = False) -> None:
    task, protocol, fraction, r, scale, heareval = row
    if header:
        print(
            f"{'task':<7} {'protocol':<7} {'clips':>6} {'run s':>7} {'cpu s':>7} "
            f"{'est. full s':>11} {'peak MB':>8} {'GFLOP':>8} {'GF/cpu s':>8} {'limit':>6} "
            f"{'x limit':>7} {'(wall)':>7} {'score':>6} {'heareval s':>10} {'ratio':>6}"
        )
    # the MLP's FLOPs are in its training and validation (train_stack); the others' in the run
    busy = r.get("train_seconds", r["seconds"])
    busy_cpu = r.get("train_cpu_seconds", r["cpu_seconds"])
    gflop = r["flops"] / 1e9
    rate_cpu = gflop / busy_cpu if busy_cpu else math.inf
    x_cpu = r["gflops_cpu"] / rate_cpu if gflop else math.inf
    x_wall = busy / (gflop / r["gflops"]) if gflop else math.inf
    est = f"{r['seconds'] * scale:11.0f}" if scale != 1 else f"{'(measured)':>11}"
    he = f"{heareval:10.1f} {heareval / r['seconds']:5.1f}x" if heareval else f"{'':>10} {'':>6}"
    peak = f"{r['peak_mb']:8.0f}"
    if "cuda_peak_mb" in r:
        peak += f" (cuda {r['cuda_peak_mb']:.0f})"
    print(
        f"{task.short:<7} {protocol:<7} {fraction:6.0%} {r['seconds']:7.1f} "
        f"{r['cpu_seconds']:7.1f} {est} {peak} {gflop:8.1f} {rate_cpu:8.1f} "
        f"{r['gflops_cpu']:6.0f} {x_cpu:6.2f}x {x_wall:6.2f}x {r['score']:6.3f} {he}",
        flush=True,
    )


def print_summary(rows, rate, args) -> None:
    print()
    total: dict[str, float] = {}
    for _, protocol, _, r, scale, _ in rows:
        total[protocol] = total.get(protocol, 0.0) + r["seconds"] * scale
    mode = "real sizes and grids" if args.full else (
        f"scaled: MLP {args.epochs} epoch(s) per grid point, 'clips' = the fraction of clips "
        "(event tasks: frames) kept; 'est. full s' extrapolates linearly to all clips and the "
        f"MLP's training to the grid's epoch bound ({EPOCH_BOUND['default']} default, "
        f"{EPOCH_BOUND['fast']} fast)"
    )  # fmt: skip
    print(f"mode: {mode}")
    print(
        "GFLOP: the protocol's matrix products (multiply-add = 2); GF/cpu s: their rate per CPU "
        "second; limit: the float32\nmatmul GFLOP per CPU second measured in the same process "
        "just before it; x limit = limit / GF/cpu s ((wall): the same\nin wall time); for the "
        "MLP over its training and validation (train_stack), for the others over the run"
    )
    print("peak MB = VmHWM of the protocol's process (python + torch alone: "
          f"{rows[0][3]['base_mb']:.0f} MB; memory-mapped cache pages count)")  # fmt: skip
    for protocol, seconds in total.items():
        note = "" if args.full else " (estimated)"
        print(f"all tasks, {protocol}: {seconds / 60:.1f} min{note}")


if __name__ == "__main__":
    sys.exit(main())
