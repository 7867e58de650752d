"""Linear probe and kNN on synthetic embeddings: near-perfect when separable, chance when random."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from synthetic_cache import event_cache, scene_cache

from hear_wavjepa.evaluation.cache import load_cached_task
from hear_wavjepa.evaluation.knn import KnnSettings, knn_votes, run_knn
from hear_wavjepa.evaluation.linear import LinearSettings, _rank, run_linear

LABELS = ["c0", "c1", "c2", "c3"]
SIZES = {"fold00": 240, "fold01": 240, "fold02": 240}


def _task(tmp_path, separable: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3.0, (len(LABELS), 16))
    feats, classes = {}, {}
    for split, n in SIZES.items():
        c = np.arange(n) % len(LABELS)
        rng.shuffle(c)
        classes[split] = c
        noise = rng.normal(0, 1.0, (n, 16))
        feats[split] = (means[c] + noise if separable else noise * 3).astype(np.float32)
    return load_cached_task(scene_cache(tmp_path, feats, classes, LABELS))


@pytest.fixture(scope="module")
def separable(tmp_path_factory):
    return _task(tmp_path_factory.mktemp("sep"), separable=True)


@pytest.fixture(scope="module")
def random_task(tmp_path_factory):
    return _task(tmp_path_factory.mktemp("rand"), separable=False)


def test_knn_votes_by_hand():
    train_x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    train_y = torch.eye(2)[[0, 1, 1]]
    votes = knn_votes(
        train_x, train_y, torch.tensor([[2.0, 0.0]]), KnnSettings(k=2, temperature=1.0)
    )
    # neighbours: [1, 0] (cos 1) and [1, 0.1] (cos 0.995); softmax weights go to classes 0 and 1
    cos = 1 / np.sqrt(1.01)
    w0 = np.exp(1.0) / (np.exp(1.0) + np.exp(cos))
    np.testing.assert_allclose(votes.numpy(), [[w0, 1 - w0]], rtol=1e-5)
    nearest = knn_votes(train_x, train_y, torch.tensor([[0.1, 1.0]]), KnnSettings(k=1))
    assert nearest.argmax().item() == 1


def test_knn_separable_and_random(separable, random_task):
    good = run_knn(separable)
    assert good["status"] == "ok" and good["test_score_mean"] >= 0.98
    assert set(good["folds"]) == set(SIZES) and good["settings"] == {"k": 10, "temperature": 0.07}
    chance = run_knn(random_task, KnnSettings(k=20))
    assert 0.12 <= chance["test_score_mean"] <= 0.40
    assert chance["settings"]["k"] == 20


def test_linear_defaults_are_x_ares():
    assert LinearSettings() == LinearSettings(
        lr=1e-3, min_lr_ratio=0.1, epochs=10, batch_size=32, seed=42
    )


def test_linear_separable_and_random(separable, random_task):
    # X-ARES's lr suits thousands of clips; these 480 need a larger step to converge in 10 epochs
    good = run_linear(separable, LinearSettings(lr=1e-2))
    assert good["test_score_mean"] >= 0.95
    assert good["settings"]["lr"] == 1e-2 and good["seed"] == 42
    assert good["test_score_std"] == pytest.approx(
        np.std([f["test_score"] for f in good["folds"].values()], ddof=1)
    )
    chance = run_linear(random_task, LinearSettings(epochs=3))
    assert 0.12 <= chance["test_score_mean"] <= 0.40


def test_probes_on_event_task(tmp_path):
    task = load_cached_task(event_cache(tmp_path, np.random.default_rng(4)))
    knn = run_knn(task)
    assert knn["status"] == "n/a" and "multiclass scene" in knn["reason"]
    linear = run_linear(task, LinearSettings(epochs=2))
    fold = linear["folds"]["test"]
    assert fold["test_score"] == fold["test_event_onset_200ms_fms"]
    assert [p[0] for p in fold["postprocessing"]] == ["median_filter_ms", "min_duration"]


def test_knn_rejects_bad_settings(separable):
    with pytest.raises(ValueError, match="k >= 1"):
        run_knn(separable, KnnSettings(k=0))


def test_linear_ranks_an_undefined_validation_score_last():
    nan = math.nan
    assert _rank(nan, True) < _rank(0.0, True) < _rank(0.5, True)
    assert _rank(nan, False) < _rank(0.9, False) < _rank(0.1, False)  # an error rate
    assert not _rank(nan, True) < _rank(nan, True)  # the first NaN epoch is kept over a later one
