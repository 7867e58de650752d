"""`hear-wavjepa eval`: every (model, task, protocol) of a suite, run once, then the tables.

Results live in `results/<suite>/<model id>/<task folder>/scores.json`; a stored score is reused,
so adding a model evaluates only that model, and an interrupted run resumes where it stopped.
A stored score made with other settings is never replaced silently: pass `rerun=True`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hear_wavjepa.atomicio import write_json
from hear_wavjepa.evaluation.embed import embed_task
from hear_wavjepa.evaluation.models import ModelEntry
from hear_wavjepa.evaluation.scoring import PROTOCOLS, SCORES_FILE, applies, score_task
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
    results folder. (`hear_wavjepa.pipeline.evaluate` builds the offline suites first.)"""
    check_suite(suite)
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocols {unknown}; choose from {', '.join(PROTOCOLS)}")
    tasks = suite_tasks(suite)
    folder = check_tasks_dir(suite, tasks, tasks_dir)
    tasks = [t for t in tasks if (folder / t.folder).is_dir()]
    out = Path(results_dir) / suite
    chances = {t.folder: chance(load_task(folder / t.folder, check_audio=False)) for t in tasks}
    write_json(out / "chance.json", chances)
    jobs = [(m, t) for m in models for t in tasks]
    started = time.perf_counter()
    bar = tqdm(jobs, desc=f"eval {suite}", unit="task")
    for model, task in bar:
        where = f"{model.name} / {task.short}"
        bar.set_postfix_str(f"{where} / embedding")
        target = out / model.model_id / task.folder / SCORES_FILE
        write_json(
            out / model.model_id / "model.json", {"name": model.name, **model.spec.describe()}
        )
        wanted = [p for p in protocols if applies(p, task.embedding, task.prediction)]
        embedded = embed_task(model.spec, folder / task.folder, progress=False)
        if embedded.clips:
            tqdm.write(
                f"embedded {task.folder} with {model.name}: {embedded.clips} clips, "
                f"{embedded.clips_per_second:.1f} clips/s"
            )
        cache = embedded.out_dir
        score_task(
            cache,
            protocols=wanted,
            grid=grid_for(task, grid, event_grid),
            grid_points=grid_points,
            rerun=rerun,
            scores_path=target,
            progress=lambda protocol, where=where: bar.set_postfix_str(f"{where} / {protocol}"),
        )
    print(f"{suite}: {len(jobs)} (model, task) pairs in {time.perf_counter() - started:.0f} s")
    return out
