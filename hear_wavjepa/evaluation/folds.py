"""The data of one protocol fold, shared by every protocol: the cached splits as tensors, checked
(multiclass rows carry one label; every valid/test class occurs in the training folds).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hear_wavjepa.evaluation.cache import CachedTask, SplitData


@dataclass
class SplitArrays:
    """Embeddings (N, D), multi-hot targets (N, C); event tasks also the split's target events."""

    x: torch.Tensor
    y: torch.Tensor
    data: SplitData
    target_events: dict[str, list[dict[str, Any]]] | None = None


def split_arrays(task: CachedTask, splits: Sequence[str], device: torch.device) -> SplitArrays:
    """The cached splits `splits` (train folds) as tensors on `device`. One split's embeddings
    are used as they are (on the CPU a memory-mapped split stays mapped, not copied); several
    are concatenated."""
    parts = [task.load(s) for s in splits]
    if len(parts) == 1:
        x = parts[0].embeddings
        if not x.flags.writeable:  # torch wants a writable array; it never writes to it
            x = np.array(x)
    else:
        x = np.concatenate([p.embeddings for p in parts])
    y = np.concatenate([task.multi_hot(p) for p in parts])
    if task.prediction_type == "multiclass" and not np.all(y.sum(axis=1) == 1):
        bad = int(np.argmax(y.sum(axis=1) != 1))
        raise ValueError(
            f"{task.path}: multiclass task but row {bad} of {'+'.join(splits)} has "
            f"{int(y[bad].sum())} labels"
        )
    events = None
    if task.embedding_type == "event":
        events = {}
        for s in splits:
            events.update(task.split_events(s))
    data = parts[0] if len(parts) == 1 else None
    return SplitArrays(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device), data, events)  # type: ignore[arg-type]


def check_train_classes(task: CachedTask, train: SplitArrays, others: Sequence[SplitArrays]):
    """ValueError if a class occurs in valid/test but never in the training folds."""
    seen = train.y.sum(0) > 0
    for other in others:
        missing = (other.y.sum(0) > 0) & ~seen
        if missing.any():
            names = [task.labels[i] for i in torch.nonzero(missing).flatten().tolist()]
            raise ValueError(
                f"{task.path}: classes {names[:5]} occur in split {other.data.split} but not in "
                "its training folds"
            )


def fold_arrays(
    task: CachedTask, device: torch.device
) -> Iterator[tuple[str, SplitArrays, SplitArrays, SplitArrays]]:
    """(test split, train, valid, test) of each fold of the task's protocol in turn, checked."""
    for train_splits, valid_split, test_split in task.protocol_splits():
        train = split_arrays(task, train_splits, device)
        valid = split_arrays(task, [valid_split], device)
        test = split_arrays(task, [test_split], device)
        check_train_classes(task, train, [valid, test])
        yield test_split, train, valid, test
