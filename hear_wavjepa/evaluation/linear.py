"""X-ARES-style linear probe: LayerNorm + Linear on cached embeddings (docs/hear-protocol.md).

Scene tasks use the clip embedding (the module's time mean); event tasks are probed frame by frame
and scored on events made with heareval's post-processing (chosen on validation). Adam (lr 1e-3),
cosine annealing per epoch down to 0.1 × lr, 10 epochs, batch 32 (shuffled by a seeded generator),
validation every epoch (a NaN validation score ranks last), the best epoch's weights tested;
seed 42. Same folds as the HEAR protocol.
"""

from __future__ import annotations

import copy
import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

import torch
from tqdm import tqdm

from hear_wavjepa.evaluation.cache import CachedTask
from hear_wavjepa.evaluation.folds import SplitArrays, fold_arrays
from hear_wavjepa.evaluation.scorer import Scorer, heareval_loss, predict_logits
from hear_wavjepa.evaluation.threads import cpu_threads


@dataclass(frozen=True)
class LinearSettings:
    """Linear-probe hyper-parameters (X-ARES defaults)."""

    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    epochs: int = 10
    batch_size: int = 32
    seed: int = 42


def train_probe(
    train: SplitArrays,
    valid: SplitArrays,
    scorer: Scorer,
    settings: LinearSettings,
    generator: torch.Generator,
) -> tuple[torch.nn.Module, float, int, tuple]:
    """Train one probe; return its best-validation copy, score, epoch and post-processing."""
    dim, classes = train.x.shape[1], train.y.shape[1]
    device = train.x.device
    model = torch.nn.Sequential(torch.nn.LayerNorm(dim), torch.nn.Linear(dim, classes))
    with torch.no_grad():  # initialise from the probe's own generator, not the global RNG
        bound = dim**-0.5
        model[1].weight.uniform_(-bound, bound, generator=generator)
        model[1].bias.uniform_(-bound, bound, generator=generator)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=settings.epochs, eta_min=settings.lr * settings.min_lr_ratio
    )
    best: tuple[torch.nn.Module, float, int, tuple] | None = None
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(len(train.x), generator=generator).to(device)
        for i in range(0, len(order), settings.batch_size):
            idx = order[i : i + settings.batch_size]
            loss = heareval_loss(model(train.x[idx]), train.y[idx], scorer.multiclass)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        value, post = scorer.validate(predict_logits(model, valid.x, 4096), valid)
        if best is None or _rank(value, scorer.maximize) > _rank(best[1], scorer.maximize):
            best = (copy.deepcopy(model), value, epoch, post)
    assert best is not None
    return best


def _rank(value: float, maximize: bool) -> float:
    """A validation value as a key where larger is better; NaN (e.g. onset F when no event is
    predicted) ranks below every number, so the first epoch with a score wins over it."""
    if math.isnan(value):
        return -math.inf
    return value if maximize else -value


def run_linear(
    task: CachedTask,
    settings: LinearSettings | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Linear probe on every fold: per-fold test scores, mean and std (ddof=1; None if 1 fold).
    On the CPU it runs on one intra-op thread (its batches are too small for more)."""
    with cpu_threads(device, 1):
        return _run_linear(task, settings or LinearSettings(), device, progress)


def _run_linear(
    task: CachedTask, settings: LinearSettings, device: str, progress: bool
) -> dict[str, Any]:
    scorer = Scorer.for_task(task)
    generator = torch.Generator().manual_seed(settings.seed)
    folds: dict[str, dict[str, float]] = {}
    for test_split, train, valid, test in tqdm(
        fold_arrays(task, torch.device(device)),
        desc=f"linear {task.path.name}",
        total=len(task.protocol_splits()),
        leave=False,
        disable=not progress,
    ):
        model, value, epoch, post = train_probe(train, valid, scorer, settings, generator)
        scores = scorer.test(predict_logits(model, test.x, 4096), test, post)
        scores.update(validation_score=value, epoch=epoch)
        if post:
            scores["postprocessing"] = [list(p) for p in post]
        folds[test_split] = scores
    values = [f["test_score"] for f in folds.values()]
    return {
        "folds": folds,
        "test_score_mean": statistics.fmean(values),
        "test_score_std": statistics.stdev(values) if len(values) > 1 else None,
        "primary_metric": task.evaluation[0],
        "settings": asdict(settings),
        "seed": settings.seed,
    }
