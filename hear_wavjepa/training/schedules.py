"""Learning rate, weight decay and teacher momentum as pure functions of the optimiser step."""

from __future__ import annotations

import math

from hear_wavjepa.model.ema import ema_momentum
from hear_wavjepa.training.recipe import Recipe


def learning_rate(step: int, peak: float, warmup_steps: int, total_steps: int) -> float:
    """HF `get_cosine_schedule_with_warmup` (docs/pretraining.md): linear 0 -> peak over
    `warmup_steps`, then a half cosine to 0 at `total_steps`. `step` counts optimiser steps from
    0."""
    if step < warmup_steps:
        return peak * step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def weight_decay(step: int, start: float, end: float, total_steps: int) -> float:
    """Half cosine from `start` at step 0 to `end` at `total_steps` (constant when equal)."""
    progress = min(1.0, step / max(1, total_steps))
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def schedule(recipe: Recipe, step: int) -> dict[str, float]:
    """{"lr", "weight_decay", "ema"} of optimiser step `step` under `recipe`."""
    optim, total = recipe.optim, recipe.train.steps
    return {
        "lr": learning_rate(step, optim.lr, optim.warmup_steps, total),
        "weight_decay": weight_decay(step, optim.weight_decay, optim.weight_decay_end, total),
        "ema": ema_momentum(step, recipe.ema.start, recipe.ema.end, recipe.ema.ramp_steps),
    }
