"""Where things live: generated data under `$HEAR_WAVJEPA_HOME` (default `~/.cache/hear-wavjepa`),
and the suite definitions (`tasks/`) and pretraining recipes (`train/`) that ship with the package.

The repository keeps `tasks/` and `train/` at its top level; packaging maps them into the package
as `hear_wavjepa.task_suites` and `hear_wavjepa.recipes`, so a wheel installed anywhere finds them
through importlib.resources, exactly as a source checkout does.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path


def home() -> Path:
    """The project's data folder: task suites, scene banks, embedding caches, runs, venvs."""
    default = Path.home() / ".cache" / "hear-wavjepa"
    return Path(os.environ.get("HEAR_WAVJEPA_HOME", default)).expanduser()


def tasks_dir() -> Path:
    """Built task suites: `tasks/mini`, `tasks/mini-nat`, `tasks/nat-hear`."""
    return home() / "tasks"


def embeddings_dir() -> Path:
    """Embedding caches, one folder per (module, weights, options) key and task."""
    return home() / "embeddings"


def runs_dir() -> Path:
    """Pretraining runs, one folder per run name."""
    return home() / "runs"


def corpora_dir() -> Path:
    """Decoded pretraining corpora (float16 memmaps), one folder per source and settings key."""
    return home() / "corpora"


def corpus_dir() -> Path:
    """The offline synthetic pretraining corpus (`hear-wavjepa tasks build-corpus`)."""
    return home() / "corpus"


def scenes_dir() -> Path:
    """Scene banks (rooms, noise), one folder per settings key."""
    return home() / "scenes"


def sources_dir() -> Path:
    """Downloaded and converted source recordings (Debian packages) of the builders."""
    return home() / "sources"


def suite_file(name: str) -> Path:
    """A file of the shipped suite definitions (the repository's `tasks/`), e.g. `mini.yaml`."""
    return _packaged("hear_wavjepa.task_suites", name)


def recipe_file(name: str) -> Path:
    """A shipped pretraining recipe (the repository's `train/`), e.g. `tiny-cpu.yaml`."""
    return _packaged("hear_wavjepa.recipes", name)


def _packaged(package: str, name: str) -> Path:
    path = Path(str(files(package).joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"{name}: not among the files shipped in {package}")
    return path
