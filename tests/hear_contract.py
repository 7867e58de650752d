"""hear-validator's checks (errors, and the warnings we hold ourselves to) for any HEAR module."""

from __future__ import annotations

import numpy as np
import torch

SR = 16_000


def check_model(model) -> None:
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate in (16000, 22050, 32000, 44100, 48000)
    assert type(model.scene_embedding_size) is int
    assert type(model.timestamp_embedding_size) is int


def check_timestamp_output(emb, ts, batch: int, samples: int, size: int, max_gap_ms: float) -> None:
    """Shapes, dtype, finiteness, regular hop within 1 ms, never past the clip, end covered
    within `max_gap_ms` (and within hear-validator's 50 ms warning)."""
    assert emb.dtype == torch.float32 and emb.ndim == 3 and ts.ndim == 2
    assert emb.shape[0] == batch and emb.shape[:2] == ts.shape and emb.shape[2] == size
    assert torch.isfinite(emb).all()
    t = ts.numpy()
    duration_ms = 1000 * samples / SR
    assert t.max() <= duration_ms
    if t.shape[1] > 1:
        d = np.diff(t, axis=1)
        assert np.abs(d - d.mean()).max() <= 1.0
        assert t.min() <= d.mean()
        assert t.max() >= duration_ms - min(max_gap_ms, 50) - 1e-6


def check_scene_output(scene, batch: int, size: int) -> None:
    assert scene.dtype == torch.float32 and scene.shape == (batch, size)
    assert torch.isfinite(scene).all()
