"""Task suites: the task lists of `tasks/*.yaml` and where each suite's task folders live.

`hear` and `nat-hear` are the paper's 11 tasks (`tasks/hear.yaml`), read from `--tasks-dir`
(real HEAR downloads, or their naturalized versions). `mini` and `mini-nat` are the offline suite
(`tasks/mini.yaml`), built under `$HEAR_WAVJEPA_HOME/tasks/` on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from hear_wavjepa.paths import suite_file, tasks_dir

SUITES = ("hear", "nat-hear", "mini", "mini-nat")
#: metrics where lower is better
MINIMISED = ("segment_1s_er",)


@dataclass(frozen=True)
class SuiteTask:
    folder: str  # task folder name, e.g. esc50-v2.0.0-full
    short: str  # table column name
    embedding: str  # scene | event
    prediction: str  # multiclass | multilabel
    evaluation: tuple[str, ...]  # metrics, primary first
    split: str  # trainvaltest | new_split_kfold | presplit_kfold
    stands_for: str | None = None  # the HEAR column a mini task stands in for

    @property
    def primary(self) -> str:
        return self.evaluation[0]

    def applies(self, protocol: str) -> bool:
        """kNN is defined for multiclass scene tasks only (as X-ARES); MLP and linear for all."""
        return protocol != "knn" or (self.embedding == "scene" and self.prediction == "multiclass")

    @property
    def maximize(self) -> bool:
        return self.primary not in MINIMISED


def check_suite(name: str) -> str:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    return name


def suite_tasks(name: str) -> list[SuiteTask]:
    """The tasks of suite `name`, in table column order."""
    check_suite(name)
    path = suite_file("hear.yaml" if name in ("hear", "nat-hear") else "mini.yaml")
    data = yaml.safe_load(path.read_text())
    tasks = []
    for entry in data["tasks"]:
        folder = entry.get("folder") or f"{entry['task_name']}-{data['version']}-full"
        tasks.append(
            SuiteTask(
                folder=folder,
                short=entry["short"],
                embedding=entry["embedding"],
                prediction=entry["prediction"],
                evaluation=tuple(entry["evaluation"]),
                split=entry["split"],
                stands_for=entry.get("stands_for"),
            )
        )
    return tasks


def default_tasks_dir(name: str) -> Path:
    """Where the offline suites are built: `$HEAR_WAVJEPA_HOME/tasks/{mini,mini-nat}`."""
    if name not in ("mini", "mini-nat"):
        raise ValueError(f"suite {name!r} has no built-in tasks: pass --tasks-dir with its folders")
    return tasks_dir() / name
