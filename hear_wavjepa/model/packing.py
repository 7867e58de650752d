"""Pack the kept tokens of each row to the front of a shorter, padded sequence.

Attention with a key-padding mask never lets a query see masked keys, and every other op is
per-token, so running a transformer on only the kept tokens gives the same outputs at those
positions as running it on the full sequence with the mask, at a fraction of the cost
(docs/model.md, Sequence packing).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Packed(NamedTuple):
    tokens: torch.Tensor  # (B, L, D) kept tokens in their original order, then filler
    padding: torch.Tensor  # (B, L) bool, True at filler slots
    index: torch.Tensor  # (B, L) long, position of each slot in the full sequence


def pack(x: torch.Tensor, keep: torch.Tensor) -> Packed:
    """x (B, S, D), keep (B, S) bool -> Packed with L = max kept count per row."""
    counts = keep.sum(dim=1)
    length = int(counts.max())
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :length]
    tokens = x.gather(1, order[..., None].expand(-1, -1, x.shape[-1]))
    padding = torch.arange(length, device=x.device)[None, :] >= counts[:, None]
    return Packed(tokens, padding, order)
