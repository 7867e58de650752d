"""Task suites: the one reader of the suite definitions (`tasks/hear.yaml`, `tasks/mini.yaml`)
and the HEAR task-folder name.

`hear` and `nat-hear` are the paper's 11 tasks (`tasks/hear.yaml`), read from `--tasks-dir`
(real HEAR downloads, or their naturalized versions). `mini` and `mini-nat` are the offline suite
(`tasks/mini.yaml`), whose entries also say how each task is built (builder, clips, params).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hear_wavjepa.config_io import ConfigError, from_dict, read_yaml
from hear_wavjepa.paths import suite_file, tasks_dir

#: suite name -> its definition file (a Nat suite has the tasks of its clean suite)
SUITE_FILES = {"hear": "hear.yaml", "nat-hear": "hear.yaml", "mini": "mini.yaml",
               "mini-nat": "mini.yaml"}  # fmt: skip
SUITES = tuple(SUITE_FILES)


def task_folder(task_name: str, version: str) -> str:
    """The HEAR task folder name, `<task_name>-<version>-full` (hear-preprocess)."""
    return f"{task_name}-{version}-full"


def task_name_of(folder: str) -> str:
    """The task name of a task folder name (the inverse of `task_folder`)."""
    return folder.rsplit("-", 2)[0]


@dataclass(frozen=True)
class SuiteTask:
    """One task of a suite. The fields from `task_name` on say how an offline task is built
    (tasks/mini.yaml); `clips` is the total at scale 1.0 and `duration` is in seconds."""

    folder: str  # task folder name, e.g. esc50-v2.0.0-full
    short: str  # table column name
    embedding: str  # scene | event
    prediction: str  # multiclass | multilabel
    evaluation: tuple[str, ...]  # metrics, primary first
    split: str  # trainvaltest | new_split_kfold | presplit_kfold
    stands_for: str | None = None  # the HEAR column a mini task stands in for
    nfolds: int | None = None
    task_name: str = ""
    version: str = ""
    builder: str | None = None
    duration: float | None = None
    clips: int | None = None
    min_per_class: int = 1
    params: dict[str, Any] = field(default_factory=dict)
    requires: str | None = None

    @property
    def primary(self) -> str:
        return self.evaluation[0]

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


def check_suite(name: str) -> str:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    return name


def suite_tasks(name: str) -> list[SuiteTask]:
    """The tasks of suite `name`, in table column order."""
    return read_suite(suite_file(SUITE_FILES[check_suite(name)]))


def default_tasks_dir(name: str) -> Path:
    """Where the offline suites are built: `$HEAR_WAVJEPA_HOME/tasks/{mini,mini-nat}`."""
    if name not in ("mini", "mini-nat"):
        raise ValueError(f"suite {name!r} has no built-in tasks: pass --tasks-dir with its folders")
    return tasks_dir() / name


def read_suite(path: Path | str) -> list[SuiteTask]:
    """Read a suite definition; ConfigError (a ValueError) naming the file on a malformed entry."""
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'tasks' list")
    version = str(data.get("version", "v1"))
    tasks = []
    for entry in data["tasks"]:
        try:
            values = dict(entry)
            if "task_name" in values:
                values["version"] = version
                values.setdefault("folder", task_folder(values["task_name"], version))
            for key, kind in (("duration", float), ("clips", int), ("min_per_class", int)):
                if key in values:
                    values[key] = kind(values[key])
            values["params"] = dict(values.get("params") or {})
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"{path}: task entry {entry!r} is malformed ({err!r})") from err
        tasks.append(from_dict(SuiteTask, values, f"{path}: task {values.get('folder')}"))
    names = [t.folder for t in tasks]
    if len(set(names)) != len(names) or len({t.short for t in tasks}) != len(tasks):
        raise ConfigError(f"{path}: task names and short names must be unique")
    return tasks
