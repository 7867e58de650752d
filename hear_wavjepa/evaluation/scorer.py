"""Scoring one model's predictions on one protocol split, shared by every protocol (HEAR MLP,
linear probe, kNN): the task's metrics, heareval's monitored quantity, its loss, and its event
post-processing (median filter, threshold, minimum duration; docs/hear-protocol.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import median_filter
from sklearn.model_selection import ParameterGrid

from hear_wavjepa.evaluation.cache import CachedTask
from hear_wavjepa.evaluation.folds import SplitArrays
from hear_wavjepa.evaluation.metrics import Metric, Score, get_metric, primary_value

EVENT_POSTPROCESSING_GRID: dict[str, list[float]] = {
    "median_filter_ms": [250],
    "min_duration": [125, 250],
}

Postprocessing = tuple[tuple[str, float], ...]


def postprocessing_grid(metadata: dict[str, Any]) -> list[Postprocessing]:
    """Event post-processing settings tried at each validation, as (name, value) tuples."""
    grid = metadata.get("evaluation_params", {}).get(
        "event_postprocessing_grid", EVENT_POSTPROCESSING_GRID
    )
    return [tuple(p.items()) for p in ParameterGrid(grid)]


def events_from_frames(
    probabilities: np.ndarray,
    timestamps: np.ndarray,
    labels: Sequence[str],
    median_filter_ms: float,
    min_duration: float,
    threshold: float = 0.5,
) -> list[dict[str, Any]]:
    """One file's (T, C) frame probabilities at `timestamps` (ms) → events (heareval's rules):
    median filter of round(median_filter_ms / mean hop) frames, p > threshold, each run of active
    frames is an event from its first to its last frame timestamp, runs shorter than min_duration
    (ms) dropped; sorted by start."""
    order = np.argsort(timestamps, kind="stable")
    timestamps = timestamps[order]
    probabilities = probabilities[order]
    if median_filter_ms and len(timestamps) > 1:
        width = round(median_filter_ms / float(np.mean(np.diff(timestamps))))
        if width:
            probabilities = median_filter(probabilities, size=(width, 1))
    active = probabilities > threshold
    events = []
    for c in range(active.shape[1]):
        idx = np.flatnonzero(active[:, c])
        if len(idx) == 0:
            continue
        breaks = np.flatnonzero(np.diff(idx) != 1)
        starts = np.concatenate([[idx[0]], idx[breaks + 1]])
        ends = np.concatenate([idx[breaks], [idx[-1]]])
        for s, e in zip(starts, ends, strict=True):
            start, end = float(timestamps[s]), float(timestamps[e])
            if end - start >= min_duration:
                events.append({"label": labels[c], "start": start, "end": end})
    events.sort(key=lambda ev: ev["start"])
    return events


def events_for_files(
    probabilities: np.ndarray,
    filenames: Sequence[str],
    timestamps: np.ndarray,
    labels: Sequence[str],
    postprocessing: Postprocessing,
) -> dict[str, list[dict[str, Any]]]:
    """Frames of many files (rows) → {filename: events}; a repeated timestamp keeps its last row."""
    rows: dict[str, dict[float, int]] = {}
    for i, (name, ts) in enumerate(zip(filenames, timestamps.tolist(), strict=True)):
        rows.setdefault(name, {})[float(ts)] = i
    out = {}
    for name, by_ts in rows.items():
        idx = np.fromiter(by_ts.values(), dtype=np.int64)
        out[name] = events_from_frames(
            probabilities[idx], np.fromiter(by_ts.keys(), dtype=np.float64), labels,
            **dict(postprocessing),
        )  # fmt: skip
    return out


def heareval_loss(logits: torch.Tensor, y: torch.Tensor, multiclass: bool) -> torch.Tensor:
    """heareval's loss of one model's logits (N, C): CE on argmax(one-hot), or BCE-with-logits."""
    if multiclass:
        return F.cross_entropy(logits, y.argmax(dim=1))
    return F.binary_cross_entropy_with_logits(logits, y)


def predict_logits(net: torch.nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Eval-mode logits (N, C), batch by batch."""
    net.eval()
    with torch.no_grad():
        return torch.cat([net(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@dataclass
class Scorer:
    """Scores predictions of one split the way heareval's validation/test epoch ends do."""

    task: CachedTask
    metrics: list[Metric]
    multiclass: bool
    monitor_loss: bool
    post_grid: list[Postprocessing]

    @classmethod
    def for_task(cls, task: CachedTask) -> Scorer:
        """The task's metrics (`evaluation`, primary first) and its monitored quantity."""
        monitor_loss = not task.metadata.get("use_scoring_for_early_stopping", True)
        is_event = task.embedding_type == "event"
        return cls(
            task,
            [get_metric(name) for name in task.evaluation],
            task.prediction_type == "multiclass",
            monitor_loss,
            postprocessing_grid(task.metadata) if is_event else [],
        )

    @property
    def maximize(self) -> bool:
        """Whether the monitored value is better when larger (val_loss and error rates are not)."""
        return False if self.monitor_loss else self.metrics[0].maximize

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> float:
        return float(heareval_loss(logits, y, self.multiclass))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """heareval's predictions: softmax (multiclass) or sigmoid of logits (N, C)."""
        return torch.softmax(logits, dim=-1) if self.multiclass else torch.sigmoid(logits)

    def validate(self, logits: torch.Tensor, split: SplitArrays) -> tuple[float, Postprocessing]:
        """The monitored value and (event tasks) the best post-processing of this validation."""
        probs = self.probabilities(logits)
        if self.monitor_loss:
            value = self.loss(logits, split.y)
            post = self._best_postprocessing(probs, split)[1] if split.target_events else ()
            return value, post
        if split.target_events is None:
            return primary_value(self._scene(self.metrics[0], probs, split)), ()
        return self._best_postprocessing(probs, split)

    def _scene(self, metric: Metric, probs: torch.Tensor, split: SplitArrays) -> Score:
        return metric(probs.cpu().numpy(), split.y.cpu().numpy())

    def _events(self, probs: torch.Tensor, split: SplitArrays, post: Postprocessing) -> dict:
        data = split.data
        return events_for_files(
            probs.cpu().numpy(), data.filenames, data.timestamps, self.task.labels, post
        )

    def _best_postprocessing(
        self, probs: torch.Tensor, split: SplitArrays
    ) -> tuple[float, Postprocessing]:
        """heareval's pick: the post-processing ranked first with NaN counted as 0 (ties go to the
        larger setting), returned with its raw score (NaN when no event is predicted), which is
        the value heareval monitors."""
        scored = []
        for post in self.post_grid:
            events = self._events(probs, split, post)
            value = primary_value(self.metrics[0](events, split.target_events, self.task.labels))
            scored.append((0.0 if math.isnan(value) else value, post, value))
        _, post, value = max(scored, key=lambda s: (s[0], s[1]))
        return value, post

    def test(
        self, logits: torch.Tensor, split: SplitArrays, post: Postprocessing
    ) -> dict[str, float]:
        """heareval's test dict: test_loss, test_<metric> (and sub-scores), test_score."""
        probs = self.probabilities(logits)
        out = {"test_loss": self.loss(logits, split.y)}
        events = self._events(probs, split, post) if split.target_events is not None else None
        for metric in self.metrics:
            if events is not None:
                score = metric(events, split.target_events, self.task.labels)
            else:
                score = self._scene(metric, probs, split)
            if isinstance(score, tuple):
                values = {f"test_{metric.name}_{k}": float(v) for k, v in score}
                values[f"test_{metric.name}"] = primary_value(score)
            else:
                values = {f"test_{metric.name}": float(score)}
            out.update(values)
        out["test_score"] = out[f"test_{self.metrics[0].name}"]
        return out
