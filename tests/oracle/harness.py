"""Shared by `nox -s oracle` and the speed benchmark: small embedding caches and heareval runs.

The caches are HEAR-Naive embeddings of mini-suite tasks (`$HEAR_WAVJEPA_HOME/oracle/embeddings`),
subsampled into small copies (a seeded subset of clips per split, every `dim_stride`-th dimension)
so that heareval's Lightning runner finishes in minutes on 2 CPU cores. heareval runs in the oracle
venv (`$HEAR_WAVJEPA_HOME/venvs/oracle-pyX.Y`, made by `nox -s oracle`) through
`tests/oracle/heareval_runner.py`, on a fresh copy of a cache (it writes its results into it).
Cases the mini tasks do not reach come from seeded synthetic caches (`SYNTHETIC`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hear_wavjepa.evaluation.cache import COPIED_FILES, EMBEDDING_SUFFIX, CacheWriter
from hear_wavjepa.evaluation.embed import ModuleSpec, embed_task
from hear_wavjepa.evaluation.threads import protocol_threads
from hear_wavjepa.paths import home

HERE = Path(__file__).resolve().parent
ORACLE_VENV = home() / "venvs" / f"oracle-py{sys.version_info.major}.{sys.version_info.minor}"
ORACLE_PYTHON = ORACLE_VENV / "bin" / "python"
EMBEDDINGS = home() / "oracle" / "embeddings"


@dataclass(frozen=True)
class OracleTask:
    """A mini task folder name, and how many clips per split its small cache keeps."""

    name: str
    max_clips: int


#: One multiclass TVT, one k-fold, one multilabel and one event task of the mini suite.
TASKS = {
    "multiclass": OracleTask("mini_keywords-v1-full", 320),
    "kfold": OracleTask("mini_drums-v1-full", 96),
    "multilabel": OracleTask("mini_mixtures-v1-full", 200),
    "event": OracleTask("mini_events-v1-full", 24),
}


#: Synthetic event tasks (tests/synthetic_cache.py) for cases the mini tasks do not reach:
#: `no-events`, where a grid point predicts no events at its first validation (onset F NaN).
SYNTHETIC = ("no-events",)


def synthetic_cache(kind: str) -> Path:
    """The cache of synthetic task `kind`, built on first use (seeded, so always the same)."""
    from synthetic_cache import no_events_cache  # tests/ is on PYTHONPATH (nox -s oracle)

    builders = {"no-events": no_events_cache}
    root = EMBEDDINGS / "synthetic" / kind
    dst = root / f"synth_{kind.replace('-', '_')}-v0-full"
    if not (dst / ".done.embeddings").exists():
        shutil.rmtree(root, ignore_errors=True)
        builders[kind](root, dst.name)
    return dst


def full_cache(task: str) -> Path:
    """The HEAR-Naive cache of mini task `task`, embedded on first use."""
    task_dir = home() / "tasks" / "mini" / task
    if not (task_dir / "task_metadata.json").exists():
        raise ValueError(f"{task_dir}: mini task missing; build it with `nox -s build-tasks`")
    out = EMBEDDINGS / "naive" / task
    embed_task(ModuleSpec("hear_wavjepa.baselines.naive"), task_dir, out)
    return out


def small_cache(task: OracleTask, dim_stride: int) -> Path:
    """A finished cache of `task` with at most `max_clips` clips per split (a Random(0) sample)
    and every `dim_stride`-th embedding dimension, written with the project's CacheWriter."""
    src = full_cache(task.name)
    dst = EMBEDDINGS / f"naive-small-{task.max_clips}-d{dim_stride}" / task.name
    if (dst / ".done.embeddings").exists():
        return dst
    shutil.rmtree(dst, ignore_errors=True)
    metadata = json.loads((src / "task_metadata.json").read_text())
    event = metadata["embedding_type"] == "event"
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        subset = {}
        for name in COPIED_FILES:
            shutil.copy(src / name, Path(tmp) / name)
        for split in metadata["splits"]:
            clips = json.loads((src / f"{split}.json").read_text())
            keep = sorted(rng.sample(sorted(clips), min(task.max_clips, len(clips))))
            subset[split] = keep
            (Path(tmp) / f"{split}.json").write_text(json.dumps({k: clips[k] for k in keep}))
        writer = CacheWriter(tmp, dst)
        for split, keep in subset.items():
            for clip in keep:
                emb = np.load(src / split / f"{clip}{EMBEDDING_SUFFIX}")[..., ::dim_stride]
                if event:
                    stamps = json.loads((src / split / f"{clip}.timestamps.json").read_text())
                    writer.write_event(split, clip, emb, np.asarray(stamps))
                else:
                    writer.write_scene(split, clip, emb)
        writer.finalise()
    return dst


def cache_digest(cache: Path) -> str:
    """sha256 over the names and bytes of a cache's files (it is small: a few MB)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in cache.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(cache)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run_heareval(
    cache: Path, work: Path, grid: str, grid_points: int, reuse: bool = False
) -> tuple[dict, float]:
    """heareval's predictions runner on a fresh copy of `cache` under `work`: its
    `test.predicted-scores.json` and the runner's wall time in seconds (imports included).
    `reuse`: return a finished earlier run of the same cache, grid and grid points instead
    (its `oracle-run.json` records them), so a rerun of the parity checks skips heareval."""
    if not ORACLE_PYTHON.exists():
        raise FileNotFoundError(f"{ORACLE_PYTHON}: no oracle venv; run `nox -s oracle` first")
    run_dir = work / cache.name
    record = run_dir / "oracle-run.json"
    # heareval runs on the protocols' CPU thread count: the count changes the last bits of every
    # matrix product, and sequential mode matches heareval only on the same arithmetic
    threads = protocol_threads()
    wanted = {
        "cache": cache_digest(cache),
        "grid": grid,
        "grid_points": grid_points,
        "threads": threads,
    }
    if reuse and record.exists():
        done = json.loads(record.read_text())
        if {k: done.get(k) for k in wanted} == wanted:
            print(f"reusing heareval's run in {run_dir} (same cache, grid and grid points)")
            return read_scores(run_dir / "test.predicted-scores.json"), done["seconds"]
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(cache, run_dir)
    env = {
        **os.environ,
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "HEARWAVJEPA_ORACLE_THREADS": str(threads),
    }
    cmd = [str(ORACLE_PYTHON), str(HERE / "heareval_runner.py"), str(run_dir)]
    cmd += ["--grid", grid, "--grid-points", str(grid_points)]
    log = run_dir / "heareval-stdout.log"
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=work, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"heareval failed on {run_dir} (exit {done.returncode}):\n{tail}")
    scores = read_scores(run_dir / "test.predicted-scores.json")
    record.write_text(json.dumps({**wanted, "seconds": seconds}))
    return scores, seconds


def read_scores(path: Path) -> dict[str, Any]:
    """A `test.predicted-scores.json` (heareval writes NaN / Infinity tokens)."""
    return json.loads(path.read_text())


def headline_key(scores: dict[str, Any], primary: str) -> tuple[str, str]:
    """(section, key) of the reported number: test/test_<primary> or the k-fold mean."""
    if "aggregated_scores" in scores:
        return "aggregated_scores", f"test_{primary}_mean"
    return "test", f"test_{primary}"
