"""Write one HEAR task folder exactly as hear-preprocess lays it out (docs/hear-protocol.md).

`task_metadata.json`, `labelvocabulary.csv`, `<split>.json` and `16000/<split>/<file>.wav`
(PCM-16 mono), plus `SOURCES.md` (licences and attributions). JSON has sorted keys and no
timestamps, and samples are quantised by `signal.to_pcm16`: the same inputs give identical bytes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hear_wavjepa.builders.mini.attributions import sources_markdown
from hear_wavjepa.builders.mini.recipe import TaskRecipe
from hear_wavjepa.builders.mini.signal import SAMPLE_RATE, to_pcm16
from hear_wavjepa.hear_task import wav_target, write_task_files, write_wav


class TaskWriter:
    """Collects clips of one task under `root`; `finish` writes the metadata files."""

    def __init__(self, root: Path, recipe: TaskRecipe, labels: Sequence[str]):
        self.root, self.recipe, self.labels = Path(root), recipe, list(labels)
        self.tables: dict[str, dict[str, Any]] = {s: {} for s in recipe.splits}
        self.n_samples = round(recipe.duration * SAMPLE_RATE)

    def _target(self, split: str, name: str, labels: Any) -> Path:
        if split not in self.tables:
            raise ValueError(f"{self.recipe.task_name}: unknown split {split!r}")
        if name in self.tables[split]:
            raise ValueError(f"{self.recipe.task_name}: {split}/{name} written twice")
        self.tables[split][name] = labels
        return wav_target(self.root, SAMPLE_RATE, split, name)

    def add(self, split: str, name: str, audio: np.ndarray, labels: Any) -> None:
        """Write `audio` (float32 (samples,), `duration` s at 16 kHz) to `<split>/<name>`."""
        if audio.shape != (self.n_samples,):
            raise ValueError(f"{name}: audio shape {audio.shape}, expected ({self.n_samples},)")
        self._target(split, name, labels)
        write_wav(self.root, SAMPLE_RATE, split, name, to_pcm16(audio))

    def link(self, split: str, name: str, source: Path, labels: Any) -> None:
        """Hard-link an existing wav (same file system) instead of writing a copy."""
        os.link(source, self._target(split, name, labels))

    def finish(
        self, sources: Sequence[str], versions: dict[str, str] | None = None, notes: str = ""
    ) -> None:
        """Write task_metadata.json, labelvocabulary.csv, one json per split and SOURCES.md."""
        write_task_files(self.root, self.recipe.metadata(), self.labels, self.tables)
        (self.root / "SOURCES.md").write_text(
            sources_markdown(self.recipe, sources, versions, notes)
        )
