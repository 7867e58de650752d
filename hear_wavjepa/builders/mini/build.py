"""Build the offline mini-HEAR suite: each task in a temp folder, validated, renamed into place."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from hear_wavjepa.builders.mini import events, mixtures, music, sounds, speech
from hear_wavjepa.builders.mini.context import SOUND_TIERS, BuildContext
from hear_wavjepa.builders.mini.recipe import DEFAULT_RECIPE, TaskRecipe, load_recipes
from hear_wavjepa.hear_task import load_task
from hear_wavjepa.paths import sources_dir, tasks_dir

BUILDERS = {
    "keywords": speech.build_keywords,
    "langid": speech.build_langid,
    "count": speech.build_count,
    "pitch": music.build_pitch,
    "family": music.build_family,
    "drums": music.build_drums,
    "sounds": sounds.build_sounds,
    "mixtures": mixtures.build_mixtures,
    "events": events.build_events,
}


def default_out() -> Path:
    return tasks_dir() / "mini"


@dataclass(frozen=True)
class TaskReport:
    """One built task: clips per split, wall seconds, bytes newly stored (hard links count 0)."""

    folder: str
    clips: dict[str, int]
    seconds: float
    bytes: int


def select(recipes: list[TaskRecipe], only: Sequence[str] | None, out: Path) -> list[TaskRecipe]:
    """The recipes named in `only` (task name, short name or folder; all if None) plus any task they
    require that `out` does not already hold, in recipe order."""
    if not only:
        return recipes
    known = {key: r for r in recipes for key in (r.task_name, r.short, r.folder)}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; known: {[r.task_name for r in recipes]}")
    wanted = {known[name].task_name for name in only}
    for r in recipes:
        if r.task_name in wanted and r.requires and not (out / known[r.requires].folder).is_dir():
            wanted.add(r.requires)
    return [r for r in recipes if r.task_name in wanted]


def _new_bytes(folder: Path, seen: set[tuple[int, int]]) -> int:
    total = 0
    for path in sorted(folder.rglob("*")):
        st = path.stat()
        if path.is_file() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def build_mini(
    out: Path | str | None = None,
    *,
    scale: float = 1.0,
    seed: int = 0,
    overwrite: bool = False,
    only: Sequence[str] | None = None,
    sounds: str = "default",
    workers: int = 2,
    recipe_path: Path = DEFAULT_RECIPE,
    progress: bool = True,
) -> list[TaskReport]:
    """Build the suite into `out` (default `$HEAR_WAVJEPA_HOME/tasks/mini`).

    A non-empty `out` is refused (ValueError, nothing touched) unless `overwrite`, which replaces
    only the tasks being built. Each task is written to a temp folder inside `out`, validated with
    `load_task`, then renamed into place, so an interrupted build leaves no half-written task.
    """
    out = Path(out) if out is not None else default_out()
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if sounds not in SOUND_TIERS:
        raise ValueError(f"sounds must be one of {SOUND_TIERS}, got {sounds!r}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(
            f"{out}: output folder is not empty; pass --overwrite to replace its tasks"
        )
    recipes = select(load_recipes(recipe_path), only, out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".build-*"):  # left by a killed build
        shutil.rmtree(stale, ignore_errors=True)
    ctx = BuildContext(out, sources_dir(), seed, scale, sounds, workers, progress)
    reports, seen = [], set()
    for recipe in tqdm(recipes, desc="mini suite", unit="task", disable=not progress):
        start = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".build-{recipe.folder}-"))
        try:
            BUILDERS[recipe.builder](recipe, ctx, tmp)
            task = load_task(tmp, 16000)
            tmp.chmod(0o755)  # mkdtemp makes it private
            final = out / recipe.folder
            if final.exists():
                old = Path(tempfile.mkdtemp(dir=out, prefix=f".build-old-{recipe.folder}-"))
                final.rename(old / "task")
                tmp.rename(final)
                shutil.rmtree(old)
            else:
                tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        clips = {s: len(task.clips[s]) for s in task.splits}
        reports.append(TaskReport(recipe.folder, clips, time.perf_counter() - start,
                                  _new_bytes(final, seen)))  # fmt: skip
    return reports
