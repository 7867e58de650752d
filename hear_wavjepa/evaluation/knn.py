"""Weighted kNN on cached scene embeddings (X-ARES / DINO style, docs/hear-protocol.md).

Embeddings are L2-normalised, so the dot product is the cosine similarity. Each test clip takes its
k most similar training clips and sums their one-hot labels weighted by softmax(similarity / T);
the normalised vote is the prediction, scored with the task's metrics (argmax for top-1).
Multiclass scene tasks only; other tasks report "n/a", as X-ARES skips them. No training, so the
valid fold is unused: the neighbours come from the fold's training splits.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

import torch

from hear_wavjepa.evaluation.cache import CachedTask
from hear_wavjepa.evaluation.folds import fold_arrays
from hear_wavjepa.evaluation.scorer import Scorer
from hear_wavjepa.evaluation.threads import cpu_threads


@dataclass(frozen=True)
class KnnSettings:
    """Neighbour count and softmax temperature (X-ARES: k = 10, T = 0.07)."""

    k: int = 10
    temperature: float = 0.07


def knn_applies(embedding: str, prediction: str) -> bool:
    """kNN is defined for multiclass scene tasks only (as X-ARES skips the others)."""
    return embedding == "scene" and prediction == "multiclass"


def knn_votes(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    query: torch.Tensor,
    settings: KnnSettings,
    chunk: int = 4096,
) -> torch.Tensor:
    """(Q, C) vote distributions of `query` (Q, D) among `train_x` (N, D) with one-hot `train_y`."""
    train_n = torch.nn.functional.normalize(train_x, dim=1)
    k = min(settings.k, len(train_x))
    out = []
    for i in range(0, len(query), chunk):
        q = torch.nn.functional.normalize(query[i : i + chunk], dim=1)
        sims, idx = (q @ train_n.T).topk(k, dim=1)
        weights = torch.softmax(sims / settings.temperature, dim=1)
        out.append(torch.einsum("qk,qkc->qc", weights, train_y[idx]))
    return torch.cat(out)


def run_knn(task: CachedTask, settings: KnnSettings | None = None) -> dict[str, Any]:
    """kNN on every fold of a multiclass scene task; {"status": "n/a", ...} for other tasks."""
    settings = settings or KnnSettings()
    if not knn_applies(task.embedding_type, task.prediction_type):
        return {
            "status": "n/a",
            "reason": f"kNN is defined for multiclass scene tasks only; this task is "
            f"{task.embedding_type}/{task.prediction_type}",
            "settings": asdict(settings),
        }
    if settings.k < 1 or settings.temperature <= 0:
        raise ValueError(f"kNN needs k >= 1 and temperature > 0, got {settings}")
    scorer = Scorer.for_task(task)
    folds: dict[str, dict[str, float]] = {}
    for test_split, train, _, test in fold_arrays(task, torch.device("cpu")):
        with cpu_threads("cpu"):
            votes = knn_votes(train.x, train.y, test.x, settings)
        scores = scorer.test(torch.log(votes.clamp_min(1e-12)), test, ())  # softmax: the votes
        del scores["test_loss"]
        folds[test_split] = scores
    values = [f["test_score"] for f in folds.values()]
    return {
        "status": "ok",
        "folds": folds,
        "test_score_mean": statistics.fmean(values),
        "test_score_std": statistics.stdev(values) if len(values) > 1 else None,
        "primary_metric": task.evaluation[0],
        "settings": asdict(settings),
        "seed": None,
    }
