"""The mini-suite recipe (`tasks/mini.yaml`) as frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hear_wavjepa.builders.mini.sources import read_list
from hear_wavjepa.paths import suite_file

DEFAULT_RECIPE = suite_file("mini.yaml")


@dataclass(frozen=True)
class TaskRecipe:
    """How to build one mini task. `clips` is the total at scale 1.0; `duration` is in seconds."""

    task_name: str
    version: str
    short: str
    stands_for: str | None
    builder: str
    embedding: str
    prediction: str
    evaluation: tuple[str, ...]
    split: str
    nfolds: int | None
    duration: float
    clips: int
    min_per_class: int
    params: dict[str, Any]
    requires: str | None = None

    @property
    def folder(self) -> str:
        """The HEAR folder name, `<task_name>-<version>-full`."""
        return f"{self.task_name}-{self.version}-full"

    @property
    def splits(self) -> tuple[str, ...]:
        if self.split == "trainvaltest":
            return ("train", "valid", "test")
        return tuple(f"fold{i:02d}" for i in range(self.nfolds or 0))

    def n_clips(self, scale: float, n_classes: int = 1) -> int:
        """Total clips at `scale`, at least `min_per_class` per class."""
        return max(round(self.clips * scale), self.min_per_class * n_classes)

    def metadata(self) -> dict[str, Any]:
        """task_metadata.json, as hear-preprocess writes it (docs/hear-protocol.md)."""
        meta: dict[str, Any] = {
            "task_name": self.task_name,
            "version": self.version,
            "mode": "full",
            "embedding_type": self.embedding,
            "prediction_type": self.prediction,
            "split_mode": self.split,
            "splits": list(self.splits),
            "sample_duration": self.duration,
            "evaluation": list(self.evaluation),
        }
        if self.nfolds is not None:
            meta["nfolds"] = self.nfolds
        if self.builder == "pitch":
            lo, hi = self.params["pitch_range"]
            meta["pitch_range_min"], meta["pitch_range_max"] = lo, hi
        return meta


def load_recipes(path: Path = DEFAULT_RECIPE) -> list[TaskRecipe]:
    """Read the suite recipe; raises ValueError naming the file on a malformed entry."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise ValueError(f"{path}: expected a mapping with a 'tasks' list")
    recipes = []
    for entry in data["tasks"]:
        try:
            recipes.append(
                TaskRecipe(
                    task_name=entry["task_name"],
                    version=str(data.get("version", "v1")),
                    short=entry["short"],
                    stands_for=entry.get("stands_for"),
                    builder=entry["builder"],
                    embedding=entry["embedding"],
                    prediction=entry["prediction"],
                    evaluation=tuple(entry["evaluation"]),
                    split=entry["split"],
                    nfolds=entry.get("nfolds"),
                    duration=float(entry["duration"]),
                    clips=int(entry["clips"]),
                    min_per_class=int(entry.get("min_per_class", 1)),
                    params=dict(entry.get("params") or {}),
                    requires=entry.get("requires"),
                )
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"{path}: task entry {entry!r} is malformed ({err!r})") from err
    names = [r.task_name for r in recipes]
    if len(set(names)) != len(names) or len({r.short for r in recipes}) != len(recipes):
        raise ValueError(f"{path}: task names and short names must be unique")
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
