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
from hear_wavjepa.evaluation.embed import ModuleSpec, embed_task
from hear_wavjepa.evaluation.models import ModelEntry
from hear_wavjepa.evaluation.scoring import PROTOCOLS, SCORES_FILE, score_task
from hear_wavjepa.evaluation.suites import SuiteTask, check_suite, default_tasks_dir, suite_tasks
from hear_wavjepa.hear_task import Task, load_task
from hear_wavjepa.paths import home, recipe_file


def grid_for(task: SuiteTask, grid: str, event_grid: str | None = None) -> str:
    """The MLP grid of a task: `grid`, and for event tasks `event_grid`, by default `fast` when
    `grid` is `default` (as the paper ran DCASE) and `grid` otherwise."""
    if task.embedding != "event":
        return grid
    if event_grid is not None:
        return event_grid
    return "fast" if grid == "default" else grid


def ensure_tasks(
    suite: str, tasks: Sequence[SuiteTask], tasks_dir: Path | None, clean_dir: Path | None = None
) -> Path:
    """The folder holding the suite's tasks. The offline suites are built on first use; a Nat
    suite without its own folder is rendered from the clean one (`clean_dir`, default mini)."""
    if tasks_dir is None:
        if suite in ("mini", "mini-nat"):
            tasks_dir = default_tasks_dir(suite)
            if suite == "mini":
                _build_mini(tasks_dir, tasks)
            else:
                clean = default_tasks_dir("mini")
                _build_mini(clean, tasks)
                _naturalize(clean, tasks_dir, tasks)
        elif suite == "nat-hear" and clean_dir is not None:
            tasks_dir = home() / "tasks" / "nat-hear"
            _naturalize(Path(clean_dir), tasks_dir, tasks)
        else:
            raise ValueError(f"suite {suite!r} needs --tasks-dir (the folder of its task folders)")
    tasks_dir = Path(tasks_dir)
    if not tasks_dir.is_dir():
        raise ValueError(f"{tasks_dir}: tasks dir not found")
    missing = [t.folder for t in tasks if not (tasks_dir / t.folder).is_dir()]
    if len(missing) == len(tasks):
        raise ValueError(f"{tasks_dir}: holds none of the {suite} tasks ({tasks[0].folder}, ...)")
    if missing:
        print(f"note: {tasks_dir} lacks {len(missing)} task(s), skipped: {', '.join(missing)}")
    return tasks_dir


def _build_mini(out: Path, tasks: Sequence[SuiteTask]) -> None:
    from hear_wavjepa.builders.mini.build import build_mini

    missing = [t.folder.rsplit("-", 2)[0] for t in tasks if not (out / t.folder).is_dir()]
    if missing:
        build_mini(out, overwrite=True, only=missing)


def _naturalize(clean: Path, out: Path, tasks: Sequence[SuiteTask]) -> None:
    from hear_wavjepa.scenes.naturalize import naturalize

    for task in tasks:
        done = (out / task.folder / "task_metadata.json").is_file()
        if (clean / task.folder).is_dir() and not done:
            naturalize(clean / task.folder, out / task.folder)


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
    protocols: Sequence[str] = PROTOCOLS,
    grid: str = "default",
    tasks_dir: Path | None = None,
    results_dir: Path = Path("results"),
    rerun: bool = False,
    clean_dir: Path | None = None,
    grid_points: int = 8,
    event_grid: str | None = None,
) -> Path:
    """Evaluate `models` on `suite`; returns the suite's results folder."""
    check_suite(suite)
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocols {unknown}; choose from {', '.join(PROTOCOLS)}")
    tasks = suite_tasks(suite)
    folder = ensure_tasks(suite, tasks, tasks_dir, clean_dir)
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
        wanted = [p for p in protocols if task.applies(p)]
        embedded = embed_task(model.spec, folder / task.folder, progress=False)
        if embedded.clips:
            tqdm.write(
                f"embedded {task.folder} with {model.name}: {embedded.clips} clips, "
                f"{embedded.clips_per_second:.1f} clips/s"
            )
        cache = embedded.out_dir
        score_task(
            cache,
            wanted,
            grid=grid_for(task, grid, event_grid),
            grid_points=grid_points,
            rerun=rerun,
            scores_path=target,
            progress=lambda protocol, where=where: bar.set_postfix_str(f"{where} / {protocol}"),
        )
    print(f"{suite}: {len(jobs)} (model, task) pairs in {time.perf_counter() - started:.0f} s")
    return out


def ensure_corpus() -> Path:
    """The offline pretraining corpus, `$HEAR_WAVJEPA_HOME/corpus`, built on first use."""
    from hear_wavjepa.builders.synthetic_corpus import build_synthetic_corpus, default_out

    out = default_out()
    build_synthetic_corpus(out)  # resumes an unfinished build; seconds when complete
    return out


def default_models() -> list[ModelEntry]:
    """The embedded default: HEAR-Naive, random-init tiny WavJEPA and the pretrained tiny one
    (trained with train/tiny-cpu.yaml on the offline corpus first if no checkpoint exists)."""
    return [
        ModelEntry("hear-naive", ModuleSpec("hear_wavjepa.baselines.naive")),
        ModelEntry("wavjepa-tiny-random", ModuleSpec("hear_wavjepa", options={"preset": "tiny"})),
        ModelEntry("wavjepa-tiny-pretrained", ModuleSpec("hear_wavjepa", str(pretrained_tiny()))),
    ]


def pretrained_tiny(run: str = "tiny-cpu") -> Path:
    """`$HEAR_WAVJEPA_HOME/runs/tiny-cpu/model.safetensors`, pretraining (or resuming) if needed."""
    from hear_wavjepa.training.loop import pretrain, runs_dir
    from hear_wavjepa.training.recipe import load_recipe

    folder = runs_dir() / run
    model = folder / "model.safetensors"
    if model.is_file():
        return model
    if folder.is_dir():
        print(f"resuming the unfinished pretraining run {folder}")
        pretrain(resume=str(folder))
    else:
        corpus = ensure_corpus()
        path = recipe_file("tiny-cpu.yaml")
        recipe = load_recipe(path, [f"data.path={corpus}", f"train.name={run}"])
        print(f"no pretrained tiny checkpoint: pretraining {path} into {folder}")
        pretrain(recipe)
    return model
