"""Fixed (non-learned) sin-cos positional embeddings (docs/model.md, Positional embeddings)."""

from __future__ import annotations

import torch


def sincos_1d(dim: int, positions: int) -> torch.Tensor:
    """MAE-style (positions, dim) table: all sines, then all cosines (not interleaved)."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dim, got {dim}")
    half = dim // 2
    omega = 1.0 / 10_000 ** (torch.arange(half, dtype=torch.float64) / half)
    angles = torch.arange(positions, dtype=torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def binaural(dim: int, frames: int) -> torch.Tensor:
    """(2 * frames, dim) for channel-major tokens: time code in dims < dim/2, ear code above.

    The ear code is zeros for the left ear and sincos_1d(dim/2) at position 0 (dim/4 zeros, then
    dim/4 ones) for the right ear.
    """
    if dim % 4:
        raise ValueError(f"binaural embedding needs dim divisible by 4, got {dim}")
    time = sincos_1d(dim // 2, frames)
    left = torch.zeros(frames, dim // 2)
    right = sincos_1d(dim // 2, 1).expand(frames, -1)
    return torch.cat([torch.cat([time, left], 1), torch.cat([time, right], 1)], 0)


def positional_table(dim: int, frames: int, channels: int) -> torch.Tensor:
    """(channels * frames, dim): 1-D sin-cos for mono, the binaural code for 2 channels."""
    if channels == 1:
        return sincos_1d(dim, frames)
    if channels == 2:
        return binaural(dim, frames)
    raise ValueError(f"no positional embedding for {channels} channels")
