"""The mini-suite recipe (`tasks/mini.yaml`): its tasks (`hear_wavjepa.suite.SuiteTask`) and the
material they draw on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hear_wavjepa.builders.mini.sources import read_list
from hear_wavjepa.paths import suite_file
from hear_wavjepa.suite import SuiteTask, read_suite

DEFAULT_RECIPE = suite_file("mini.yaml")


#: a task of tasks/mini.yaml, with how to build it (hear_wavjepa.suite reads the file)
TaskRecipe = SuiteTask


def load_recipes(path: Path = DEFAULT_RECIPE) -> list[TaskRecipe]:
    """Read the suite recipe; raises ValueError naming the file on a malformed entry."""
    recipes = read_suite(path)
    for r in recipes:
        if not (r.task_name and r.builder and r.duration is not None and r.clips is not None):
            raise ValueError(f"{path}: task {r.folder} needs task_name, builder, duration, clips")
    return recipes


def mini_material(recipe_path: Path = DEFAULT_RECIPE) -> dict[str, Any]:
    """What the mini suite draws on: soundfonts, Debian packages, recording md5s, spoken words."""
    soundfonts, packages, md5s, words = set(), set(), set(), set()
    for r in load_recipes(recipe_path):
        p = r.params
        soundfonts.update(p.get("soundfonts", []))
        for tier in (p.get("packages") or {}).values():
            packages.update(tier)
        for spec in {**p.get("sources", {}), **p.get("classes", {})}.values():
            packages.update([spec["package"]] if "package" in spec else [])
        if "list" in p:
            rows = read_list(suite_file(p["list"]))
            packages.update(row.package for row in rows)
            md5s.update(row.md5 for row in rows)
        words.update(w.lower() for w in [*p.get("keywords", []), *p.get("unknown_words", [])])
    return {"soundfonts": soundfonts, "packages": packages, "md5s": md5s, "words": words}
