"""metrics.csv and TensorBoard: one row per logged optimiser update, plus the online probes'
rows (docs/pretraining.md, Metrics)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

#: the columns of a training row; `step` is the 0-based index of the update it describes.
METRICS = (
    "step",
    "loss",
    "lr",
    "weight_decay",
    "ema",
    "target_std",
    "prediction_std",
    "context_rank",
    "grad_norm",
    "crops_per_s",
    "elapsed_s",
    "skipped_clips",
)


#: probe rows' score columns are `probe/{encoder}/{protocol}/{task}`.
PROBE_PREFIX = "probe/"


def probe_column(encoder: str, protocol: str, task: str) -> str:
    """The metrics.csv column of one probe score."""
    return f"{PROBE_PREFIX}{encoder}/{protocol}/{task}"


class MetricsLog:
    """metrics.csv (+ TensorBoard, under `tensorboard/`), written by the main rank only.

    `extra` columns (the probes') are empty in training rows; a probe row fills only `step` and
    its own columns. A resumed run keeps the rows before `resume_step` and rewrites the rest."""

    def __init__(self, run: Path, resume_step: int | None, extra: Sequence[str] = ()) -> None:
        self.path = run / "metrics.csv"
        self.columns = [*METRICS, *(c for c in extra if c not in METRICS)]
        rows = []
        if resume_step is not None and self.path.is_file():
            with self.path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) < resume_step]
        self.file = self.path.open("w", newline="")
        self.writer = csv.DictWriter(
            self.file, fieldnames=self.columns, restval="", extrasaction="ignore"
        )
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.file.flush()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.board = SummaryWriter(str(run / "tensorboard"))
        except ImportError:
            self.board = None

    def write(self, row: dict[str, float]) -> None:
        """One row; float values are written exactly (repr), absent columns stay empty."""
        self.writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
        self.file.flush()
        if self.board is not None:
            for key, value in row.items():
                if key != "step":
                    tag = key if "/" in key else f"train/{key}"
                    self.board.add_scalar(tag, value, row["step"])

    def close(self) -> None:
        self.file.close()
        if self.board is not None:
            self.board.close()
