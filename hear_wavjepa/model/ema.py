"""The teacher's EMA momentum as a pure function of the optimiser step (docs/model.md)."""

from __future__ import annotations


def ema_momentum(
    step: int, start: float = 0.999, end: float = 0.99999, ramp_steps: int = 100_000
) -> float:
    """tau rises linearly from `start` at step 0 to `end` at `ramp_steps`, then stays at `end`."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if ramp_steps <= 0 or step >= ramp_steps:
        return end
    return end - (end - start) * (1.0 - step / ramp_steps)
