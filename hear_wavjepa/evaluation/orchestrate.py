"""`hear-wavjepa eval`: every (model, task, protocol) of a suite, run once, then the tables.

Results live in `results/<suite>/<model id>/<task folder>/scores.json`; a stored score is reused,
so adding a model evaluates only that model, and an interrupted run resumes where it stopped.
A stored score made with other settings, or on other content of the task (its digest differs), is
never replaced silently: pass `rerun=True`. Per-task facts every run shares live beside the models
and are merged, never replaced, by a run on some of the tasks: `chance.json` (the chance score) and
`task-digests.json` (the digest of the task content last evaluated; the tables show no score made
on other content). Each (model, task) job is locked (`.<model id>.<task folder>.lock` in the
suite dir): a second `eval` moves on to other jobs, then waits for the locked ones and reuses
their scores (with `rerun`, it recomputes them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hear_wavjepa.atomicio import write_json
from hear_wavjepa.evaluation.embed import embed_task, import_hear_module, task_digest
from hear_wavjepa.evaluation.models import ModelEntry
from hear_wavjepa.evaluation.scoring import (
    CHANCE_FILE,
    DIGESTS_FILE,
    PROTOCOLS,
    SCORES_FILE,
    applies,
    protocol_settings,
    score_task,
    to_run,
)
from hear_wavjepa.filelock import FileLock
from hear_wavjepa.hear_task import Task, load_task
from hear_wavjepa.suite import SuiteTask, check_suite, suite_tasks


def grid_for(task: SuiteTask, grid: str, event_grid: str | None = None) -> str:
    """The MLP grid of a task: `grid`, and for event tasks `event_grid`, by default `fast` when
    `grid` is `default` (as the paper ran DCASE) and `grid` otherwise."""
    if task.embedding != "event":
        return grid
    if event_grid is not None:
        return event_grid
    return "fast" if grid == "default" else grid


def check_tasks_dir(suite: str, tasks: Sequence[SuiteTask], tasks_dir: Path) -> Path:
    """`tasks_dir` if it holds at least one of the suite's task folders (a note names the rest)."""
    tasks_dir = Path(tasks_dir)
    if not tasks_dir.is_dir():
        raise ValueError(f"{tasks_dir}: tasks dir not found")
    missing = [t.folder for t in tasks if not (tasks_dir / t.folder).is_dir()]
    if len(missing) == len(tasks):
        raise ValueError(f"{tasks_dir}: holds none of the {suite} tasks ({tasks[0].folder}, ...)")
    if missing:
        print(f"note: {tasks_dir} lacks {len(missing)} task(s), skipped: {', '.join(missing)}")
    return tasks_dir


def chance(task: Task) -> float | None:
    """The primary score of guessing: 1 / classes (multiclass), label prevalence (mAP)."""
    metric = task.evaluation[0]
    if metric in ("top1_acc", "pitch_acc"):
        return 1.0 / len(task.labels)
    if metric == "mAP":
        test = task.clips[task.splits[-1]]
        return float(np.mean([len(c.labels) for c in test]) / len(task.labels))
    return None


def run_eval(
    suite: str,
    models: Sequence[ModelEntry],
    *,
    tasks_dir: Path,
    protocols: Sequence[str] = tuple(PROTOCOLS),
    grid: str = "default",
    results_dir: Path = Path("results"),
    rerun: bool = False,
    grid_points: int = 8,
    event_grid: str | None = None,
) -> Path:
    """Evaluate `models` on the task folders of `suite` found in `tasks_dir`; returns the suite's
    results folder. (`hear_wavjepa.pipeline.evaluate` builds the offline suites first.) Every
    stored score is checked (settings, task content) before any work starts."""
    check_suite(suite)
    protocol_settings(protocols)  # unknown protocols fail here
    tasks = suite_tasks(suite)
    folder = check_tasks_dir(suite, tasks, tasks_dir)
    tasks = [t for t in tasks if (folder / t.folder).is_dir()]
    for model in models:
        import_hear_module(model.spec.module)  # a bad module fails before anything is written
    out = Path(results_dir) / suite
    loaded = {t.folder: load_task(folder / t.folder, check_audio=False) for t in tasks}
    digests = {name: task_digest(task) for name, task in loaded.items()}
    record_tasks(out, {n: chance(t) for n, t in loaded.items()}, digests)
    jobs = []
    for model in models:
        for task in tasks:
            task_grid = grid_for(task, grid, event_grid)
            wanted = protocol_settings(
                [p for p in protocols if applies(p, task.embedding, task.prediction)],
                task_grid,
                grid_points,
            )
            target = out / model.model_id / task.folder / SCORES_FILE
            to_run(target, digests[task.folder], wanted, rerun)  # refuses before any work
            job = _Job(model, task, folder / task.folder, target, wanted, task_grid, grid_points)
            jobs.append(job)
    started = time.perf_counter()
    bar = tqdm(total=len(jobs), desc=f"eval {suite}", unit="task")
    busy = [job for job in jobs if not _run_job(job, out, digests, rerun, bar, wait=False)]
    for job in busy:  # jobs another process held: wait for them, then reuse what it stored
        _run_job(job, out, digests, rerun, bar, wait=True)
    bar.close()
    print(f"{suite}: {len(jobs)} (model, task) pairs in {time.perf_counter() - started:.0f} s")
    return out


@dataclass(frozen=True)
class _Job:
    model: ModelEntry
    task: SuiteTask
    task_dir: Path
    target: Path
    wanted: dict[str, dict]  # {protocol: settings}
    grid: str
    grid_points: int


def record_tasks(out: Path, chances: dict[str, Any], digests: dict[str, str]) -> None:
    """Merge this run's per-task chance scores and content digests into the suite's files."""
    with FileLock(out / ".tasks.lock"):
        for name, new in ((CHANCE_FILE, chances), (DIGESTS_FILE, digests)):
            path = out / name
            old = json.loads(path.read_text()) if path.is_file() else {}
            if {**old, **new} != old:
                write_json(path, {**old, **new})


def _run_job(
    job: _Job, out: Path, digests: dict[str, str], rerun: bool, bar: tqdm, wait: bool
) -> bool:
    """Embed and score one (model, task) under its lock; False if busy and not `wait`."""
    where = f"{job.model.name} / {job.task.short}"
    lock = FileLock(out / f".{job.model.model_id}.{job.task.folder}.lock")
    note = f"another eval is on {where}"
    if not lock.acquire(wait=wait, notify=lambda m: tqdm.write(f"{m}: {note}")):
        return False
    try:
        # Another process may have stored the scores while this one waited: reuse them.
        if not to_run(job.target, digests[job.task.folder], job.wanted, rerun):
            bar.update(1)
            return True
        bar.set_postfix_str(f"{where} / embedding")
        embedded = embed_task(job.model.spec, job.task_dir, progress=False)
        _write_model_json(out / job.model.model_id, job.model)
        if embedded.clips:
            tqdm.write(
                f"embedded {job.task.folder} with {job.model.name}: {embedded.clips} clips, "
                f"{embedded.clips_per_second:.1f} clips/s"
            )
        score_task(
            embedded.out_dir,
            protocols=list(job.wanted),
            grid=job.grid,
            grid_points=job.grid_points,
            rerun=rerun,
            scores_path=job.target,
            progress=lambda protocol: bar.set_postfix_str(f"{where} / {protocol}"),
        )
    finally:
        lock.release()
    bar.update(1)
    return True


def _write_model_json(model_dir: Path, model: ModelEntry) -> None:
    """`model.json` (name and module description), written once a model has embedded a task."""
    info = {"name": model.name, **model.spec.describe()}
    path = model_dir / "model.json"
    if not path.is_file() or json.loads(path.read_text()) != info:
        write_json(path, info)
