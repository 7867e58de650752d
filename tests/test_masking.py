"""The time-inverse block masker against the reference's mask statistics (docs/model.md)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hear_wavjepa.model import MaskingConfig, TimeInverseMasker
from hear_wavjepa.model.masking import expand_channels, sample_spans


@pytest.fixture(scope="module")
def draws():
    masks = TimeInverseMasker(MaskingConfig(), frames=200, seed=0)(2000)
    return masks.context.numpy(), masks.targets.numpy()


def test_span_counts_are_exact():
    rng = np.random.default_rng(0)
    for prob, spans in ((0.65, 13), (0.25, 5), (0.1, 2)):
        for _ in range(50):
            mask = sample_spans(rng, 200, prob, 10, reach_end=False)
            starts = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int)])) == 1)
            assert mask.sum() <= spans * 10
            assert len(starts) <= spans


def test_statistics_match_the_reference(draws):
    context, targets = draws
    assert context.mean() == pytest.approx(0.194, abs=0.01)
    assert targets.mean(axis=(0, 2)) == pytest.approx([0.227] * 4, abs=0.01)
    assert targets.any(axis=1).mean() == pytest.approx(0.636, abs=0.01)
    neither = ~context & ~targets.any(axis=1)
    assert neither.mean() == pytest.approx(0.170, abs=0.01)


def test_context_is_at_least_ten_percent_and_disjoint_from_targets(draws):
    context, targets = draws
    assert context.sum(axis=1).min() >= 20
    assert not (context[:, None, :] & targets).any()


def test_last_frame_never_masked_in_faithful_mode(draws):
    context, targets = draws
    assert context[:, 199].all()
    assert not targets[:, :, 199].any()
    config = dataclasses.replace(MaskingConfig(), spans_reach_end=True)
    other = TimeInverseMasker(config, frames=200, seed=0)(300)
    assert not other.context[:, 199].all()


def test_same_seed_same_masks_and_resumable_state():
    a = TimeInverseMasker(MaskingConfig(), 200, seed=11)
    b = TimeInverseMasker(MaskingConfig(), 200, seed=11)
    first = a(4)
    assert np.array_equal(first.targets, b(4).targets)
    state = a.state()
    expected = a(3)
    c = TimeInverseMasker(MaskingConfig(), 200, seed=0)
    c.set_state(state)
    assert np.array_equal(c(3).context, expected.context)
    assert not np.array_equal(
        TimeInverseMasker(MaskingConfig(), 200, seed=12)(4).context, first.context
    )


def test_nat_aligned_masks_the_same_times_in_both_ears():
    masks = TimeInverseMasker(MaskingConfig(nat_order="aligned"), 200, channels=2, seed=0)(8)
    assert masks.context.shape == (8, 400) and masks.targets.shape == (8, 4, 400)
    assert np.array_equal(masks.context[:, :200], masks.context[:, 200:])
    assert np.array_equal(masks.targets[..., :200], masks.targets[..., 200:])


def test_nat_interleaved_reproduces_the_reference_order():
    time_mask = np.arange(200) % 7 == 0
    tokens = expand_channels(time_mask, 2, "interleaved")
    # token i (channel-major) reads entry i of the time-major repeat, i.e. time step i // 2
    assert np.array_equal(tokens, time_mask[np.arange(400) // 2])
    masks = TimeInverseMasker(MaskingConfig(nat_order="interleaved"), 200, channels=2, seed=0)(8)
    assert not np.array_equal(masks.context[:, :200], masks.context[:, 200:])


def test_bad_masking_configs():
    with pytest.raises(ValueError, match="nat_order"):
        MaskingConfig(nat_order="diagonal")
    with pytest.raises(ValueError, match="min_context_ratio"):
        MaskingConfig(min_context_ratio=1.5)
    impossible = MaskingConfig(context_prob=2.0, min_context_ratio=0.9)
    with pytest.raises(RuntimeError, match="no mask"):
        TimeInverseMasker(impossible, 200, seed=0)(1)
