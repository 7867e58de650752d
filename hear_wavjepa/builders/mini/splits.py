"""Assign source groups (speakers, instruments, kits, recordings) to splits; none spans two."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fraction_split(
    groups: Sequence[str],
    splits: Sequence[str],
    fractions: Sequence[float],
    rng: np.random.Generator,
) -> dict[str, str]:
    """Shuffle the (sorted, unique) groups, cut them by `fractions`; each split gets >= 1 group."""
    unique = sorted(set(groups))
    if len(unique) < len(splits):
        raise ValueError(f"{len(unique)} groups cannot fill {len(splits)} splits")
    order = [unique[i] for i in rng.permutation(len(unique))]
    counts = [max(1, round(f * len(order))) for f in fractions]
    counts[0] = len(order) - sum(counts[1:])
    out, start = {}, 0
    for split, count in zip(splits, counts, strict=True):
        for g in order[start : start + count]:
            out[g] = split
        start += count
    return out


def balanced_folds(
    group_sizes: dict[str, int],
    folds: Sequence[str],
    rng: np.random.Generator,
    totals: dict[str, int] | None = None,
) -> dict[str, str]:
    """Largest groups first (ties in random order), each to the fold holding fewest items so far.

    `totals` (updated in place) carries fold sizes across calls, e.g. one call per class: ties
    within a class then go to the fold that is smallest overall.
    """
    totals = totals if totals is not None else {}
    names = sorted(group_sizes)
    tiebreak = rng.permutation(len(names))
    order = sorted(range(len(names)), key=lambda i: (-group_sizes[names[i]], tiebreak[i]))
    load = dict.fromkeys(folds, 0)
    out = {}
    for i in order:
        fold = min(folds, key=lambda f: (load[f], totals.get(f, 0)))
        out[names[i]] = fold
        load[fold] += group_sizes[names[i]]
        totals[fold] = totals.get(fold, 0) + group_sizes[names[i]]
    return out
