"""The time-inverse block masker (docs/model.md), seeded, with its 2-channel (Nat) variant."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from hear_wavjepa.model.config import MaskingConfig


class Masks(NamedTuple):
    """Token-level masks for a batch of crops; S = channels * frames."""

    context: torch.Tensor  # (N, S) bool, True at context tokens (what the encoder sees)
    targets: torch.Tensor  # (N, G, S) bool, True at the target tokens of group g

    def to(self, device: torch.device | str) -> Masks:
        return Masks(self.context.to(device), self.targets.to(device))


def sample_spans(rng: np.random.Generator, frames: int, prob: float, span: int, reach_end: bool):
    """fairseq `compute_mask_indices` with static lengths, one row: (frames,) bool.

    n = floor(prob * frames / span + u) spans with distinct starts drawn without replacement from
    0..frames-span-1 (faithful) or 0..frames-span (`reach_end`); the mask is the union of the spans.
    """
    count = int(prob * frames / span + rng.random())
    last_start = frames - span if reach_end else frames - span - 1
    count = min(count, last_start + 1)
    mask = np.zeros(frames, dtype=bool)
    if count <= 0:
        return mask
    starts = rng.choice(last_start + 1, size=count, replace=False)
    mask[(starts[:, None] + np.arange(span)[None, :]).ravel()] = True
    return mask


def sample_time_masks(
    rng: np.random.Generator, frames: int, config: MaskingConfig, max_tries: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """One crop: context (frames,) and targets (groups, frames), redrawn until context is enough."""
    for _ in range(max_tries):
        holes = sample_spans(
            rng, frames, config.context_prob, config.context_span, config.spans_reach_end
        )
        targets = np.stack(
            [
                sample_spans(
                    rng, frames, config.target_prob, config.target_span, config.spans_reach_end
                )
                for _ in range(config.groups)
            ]
        )
        context = ~holes & ~targets.any(axis=0)
        if context.sum() / frames >= config.min_context_ratio:
            return context, targets
    raise RuntimeError(
        f"no mask with >= {config.min_context_ratio:.0%} context after {max_tries} draws "
        f"({frames} frames, {config})"
    )


def expand_channels(mask: np.ndarray, channels: int, order: str) -> np.ndarray:
    """(..., T) -> (..., C*T) over channel-major tokens (index c*T + t).

    "aligned" gives every ear the same time mask. "interleaved" is the reference: the mask is
    repeated time-major (index t*C + c) but read by channel-major tokens (docs/model.md, Nat
    (two channels)).
    """
    if channels == 1:
        return mask
    if order == "aligned":
        return np.concatenate([mask] * channels, axis=-1)
    if order == "interleaved":
        return np.repeat(mask, channels, axis=-1)
    raise ValueError(f"unknown Nat mask order {order!r}")


class TimeInverseMasker:
    """Draws `Masks` for crops of `frames` frames and `channels` channels from a seeded generator.

    Same seed -> same masks. `state()` / `from_state()` let a training run resume the exact stream.
    """

    def __init__(self, config: MaskingConfig, frames: int, channels: int = 1, seed: int = 0):
        self.config = config
        self.frames = frames
        self.channels = channels
        self.rng = np.random.default_rng(seed)

    def __call__(self, crops: int) -> Masks:
        contexts, targets = [], []
        for _ in range(crops):
            context, target = sample_time_masks(self.rng, self.frames, self.config)
            contexts.append(expand_channels(context, self.channels, self.config.nat_order))
            targets.append(expand_channels(target, self.channels, self.config.nat_order))
        return Masks(torch.from_numpy(np.stack(contexts)), torch.from_numpy(np.stack(targets)))

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
