"""The demo's glue, above every package and below the CLI: make sure the offline suites, the
pretraining corpus and the tiny pretrained checkpoint exist, then run the evaluation; write the
results (the tables, and the learning curves of the pretraining runs they show).

These are the only library functions with heavy side effects (building a suite takes minutes,
pretraining the tiny model ~30 min on 2 cores); `hear_wavjepa.evaluation` itself never builds
suites or trains, it evaluates task folders that exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hear_wavjepa import paths
from hear_wavjepa.evaluation.embed import ModuleSpec
from hear_wavjepa.evaluation.models import ModelEntry
from hear_wavjepa.evaluation.orchestrate import run_eval
from hear_wavjepa.paths import recipe_file
from hear_wavjepa.suite import SuiteTask, check_suite, default_tasks_dir, suite_tasks

#: the demo's pretraining run, `$HEAR_WAVJEPA_HOME/runs/tiny-cpu`, trained with train/tiny-cpu.yaml
DEMO_RUN = "tiny-cpu"


def evaluate(
    suite: str,
    models: Sequence[ModelEntry],
    *,
    tasks_dir: Path | None = None,
    clean_dir: Path | None = None,
    **options,
) -> Path:
    """`run_eval` on `suite`, building or naturalizing its task folders first where needed
    (`options` are run_eval's keywords); returns the suite's results folder."""
    check_suite(suite)
    folder = ensure_tasks(suite, suite_tasks(suite), tasks_dir, clean_dir)
    return run_eval(suite, models, tasks_dir=folder, **options)


def ensure_tasks(
    suite: str, tasks: Sequence[SuiteTask], tasks_dir: Path | None, clean_dir: Path | None = None
) -> Path:
    """The folder holding the suite's tasks. The offline suites are built on first use; a Nat
    suite without its own folder is rendered from the clean one (`clean_dir`, default mini)."""
    if tasks_dir is not None:
        return Path(tasks_dir)
    if suite in ("mini", "mini-nat"):
        tasks_dir = default_tasks_dir(suite)
        if suite == "mini":
            _build_mini(tasks_dir, tasks)
        else:
            clean = default_tasks_dir("mini")
            _build_mini(clean, tasks)
            _naturalize(clean, tasks_dir, tasks)
        return tasks_dir
    if suite == "nat-hear" and clean_dir is not None:
        tasks_dir = paths.tasks_dir() / "nat-hear"
        _naturalize(Path(clean_dir), tasks_dir, tasks)
        return tasks_dir
    raise ValueError(f"suite {suite!r} needs --tasks-dir (the folder of its task folders)")


def _build_mini(out: Path, tasks: Sequence[SuiteTask]) -> None:
    from hear_wavjepa.builders.mini.build import build_mini

    missing = [t.task_name for t in tasks if not (out / t.folder).is_dir()]
    if missing:
        build_mini(out, overwrite=True, only=missing)


def _naturalize(clean: Path, out: Path, tasks: Sequence[SuiteTask]) -> None:
    from hear_wavjepa.scenes.naturalize import naturalize

    for task in tasks:
        done = (out / task.folder / "task_metadata.json").is_file()
        if (clean / task.folder).is_dir() and not done:
            naturalize(clean / task.folder, out / task.folder)


def ensure_corpus() -> Path:
    """The offline pretraining corpus, `$HEAR_WAVJEPA_HOME/corpus`, built on first use."""
    from hear_wavjepa.builders.synthetic_corpus import build_synthetic_corpus, default_out

    out = default_out()
    build_synthetic_corpus(out)  # resumes an unfinished build; seconds when complete
    return out


def default_models(pretrained: Path) -> list[ModelEntry]:
    """The embedded default: HEAR-Naive, random-init tiny WavJEPA and the tiny checkpoint
    `pretrained` (see `pretrained_tiny`)."""
    return [
        ModelEntry("hear-naive", ModuleSpec("hear_wavjepa.baselines.naive")),
        ModelEntry("wavjepa-tiny-random", ModuleSpec("hear_wavjepa", options={"preset": "tiny"})),
        ModelEntry("wavjepa-tiny-pretrained", ModuleSpec("hear_wavjepa", str(pretrained))),
    ]


def pretrained_tiny(run: str = DEMO_RUN, overrides: Sequence[str] = ()) -> Path:
    """`$HEAR_WAVJEPA_HOME/runs/<run>/model.safetensors`, resuming the unfinished run or
    pretraining train/tiny-cpu.yaml first. `overrides` (`key=value`) apply to a new run only (a
    run resumes with its own recipe); without `data.path=...` it trains on the offline corpus,
    built if missing."""
    from hear_wavjepa.training.loop import INIT_EXPORT, pretrain, runs_dir
    from hear_wavjepa.training.recipe import load_recipe

    folder = runs_dir() / run
    model = folder / "model.safetensors"
    if model.is_file() and (folder / INIT_EXPORT).is_file():
        return model
    if folder.is_dir():
        print(f"resuming the unfinished pretraining run {folder}")
        _ensure_probe_tasks(load_recipe(folder / "config.yaml"))
        pretrain(resume=str(folder))
    else:
        if not any(o.startswith("data.path=") for o in overrides):
            overrides = [f"data.path={ensure_corpus()}", *overrides]
        path = recipe_file("tiny-cpu.yaml")
        recipe = load_recipe(path, [*overrides, f"train.name={run}"])
        _ensure_probe_tasks(recipe)
        print(f"no pretrained tiny checkpoint: pretraining {path} into {folder}")
        pretrain(recipe)
    return model


def _ensure_probe_tasks(recipe) -> None:
    """Build the mini suite when the run's online probes use it (`monitor.tasks` "")."""
    if recipe.monitor.every and not recipe.monitor.tasks:
        ensure_tasks("mini", suite_tasks("mini"), None)


def write_results(results_dir: Path) -> list[Path]:
    """The results folder's tables (`write_tables`), and before them the learning curves of
    every pretraining run whose exported checkpoint the tables show (`learning-curves-<run>.png`,
    linked from the suite's "Pretrained models" section); returns the files written."""
    from hear_wavjepa.evaluation.report import pretrained_models, write_tables
    from hear_wavjepa.training.curves import METRICS_FILE, CurvesError, draw_curves

    results_dir = Path(results_dir)
    written, runs = [], {}
    if results_dir.is_dir():
        for suite_dir in sorted(p for p in results_dir.iterdir() if p.is_dir()):
            for model in pretrained_models(suite_dir):
                if model.run_dir is not None:
                    runs.setdefault(model.curves_file, model.run_dir)
    for name, run_dir in runs.items():
        if (run_dir / METRICS_FILE).is_file():
            try:
                out = results_dir / name
                draw_curves(run_dir / METRICS_FILE, out, title=f"runs/{run_dir.name}")
                written.append(out)
            except CurvesError as exc:  # a run that has logged nothing yet: no PNG
                print(f"note: no learning curves: {exc}")
    return written + write_tables(results_dir)
