"""Where generated data lives: `$HEAR_WAVJEPA_HOME` (default `~/.cache/hear-wavjepa`)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The project's data folder: task suites, scene banks, embedding caches, runs, venvs."""
    default = Path.home() / ".cache" / "hear-wavjepa"
    return Path(os.environ.get("HEAR_WAVJEPA_HOME", default)).expanduser()
