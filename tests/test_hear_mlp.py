"""The HEAR MLP protocol: grid sampling, stacked training, early stopping, folds, events."""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest
import torch
from sklearn.model_selection import ParameterGrid
from synthetic_cache import event_cache, scene_cache

from hear_wavjepa.evaluation.cache import load_cached_task
from hear_wavjepa.evaluation.folds import split_arrays
from hear_wavjepa.evaluation.hear_mlp import (
    GRIDS,
    aggregate_folds,
    heareval_net,
    run_hear_mlp,
    sample_grid,
    task_grid,
    train_stack,
)
from hear_wavjepa.evaluation.mlp_stack import _init_stack
from hear_wavjepa.evaluation.scorer import Scorer, events_for_files, events_from_frames

LABELS = ["c0", "c1", "c2", "c3"]


def _blobs(rng, splits, dim=12, spread=1.0, scale=2.0):
    means = rng.normal(0, scale, (len(LABELS), dim))
    feats, classes = {}, {}
    for split, n in splits.items():
        c = np.arange(n) % len(LABELS)  # every class in every split
        rng.shuffle(c)
        classes[split] = c
        feats[split] = (means[c] + rng.normal(0, spread, (n, dim))).astype(np.float32)
    return feats, classes


@pytest.fixture(scope="module")
def tvt_task(tmp_path_factory):
    rng = np.random.default_rng(0)
    feats, classes = _blobs(rng, {"train": 120, "valid": 40, "test": 40})
    cache = scene_cache(
        tmp_path_factory.mktemp("tvt"), feats, classes, LABELS, evaluation=("top1_acc", "mAP")
    )
    return load_cached_task(cache)


def test_grid_sizes_and_heareval_shuffle():
    assert len(ParameterGrid(GRIDS["default"])) == 16
    assert len(ParameterGrid(GRIDS["fast"])) == 64
    assert len(ParameterGrid(GRIDS["faster"])) == 64
    random.seed(42)  # heareval: seed_everything(42) then random.shuffle of the ParameterGrid list
    confs = list(ParameterGrid(GRIDS["default"]))
    random.shuffle(confs)
    assert sample_grid(GRIDS["default"], 8, random.Random(42)) == confs[:8]


def test_task_grid_overrides():
    assert task_grid({"task_name": "dcase2016_task2"}, "fast")["check_val_every_n_epoch"] == [10]
    meta = {"evaluation_params": {"task_specific_param_grid": {"max_epochs": [50]}}}
    assert task_grid(meta)["max_epochs"] == [50]
    with pytest.raises(ValueError, match="unknown grid"):
        task_grid({}, "huge")


def _conf(**kw):
    base = dict(next(iter(ParameterGrid(GRIDS["faster"]))))
    base.update(hidden_layers=1, hidden_dim=32, max_epochs=8, check_val_every_n_epoch=1)
    base.update(kw)
    return base


@pytest.mark.slow
def test_batched_stack_equals_each_point_alone(tvt_task):
    train = split_arrays(tvt_task, ["train"], torch.device("cpu"))
    valid = split_arrays(tvt_task, ["valid"], torch.device("cpu"))
    scorer = Scorer.for_task(tvt_task)
    confs = [
        _conf(lr=3.2e-3, initialization="xavier_uniform_", patience=3),
        _conf(lr=1e-3, initialization="xavier_normal_", patience=1),
        _conf(lr=1e-4, initialization="xavier_uniform_", patience=3, max_epochs=5),
    ]
    seeds = [42, 43, 44]

    stacked = train_stack(confs, train, valid, scorer, True, seeds, torch.device("cpu"))
    for conf, seed, together in zip(confs, seeds, stacked, strict=True):
        (alone,) = train_stack([conf], train, valid, scorer, True, [seed], torch.device("cpu"))
        assert (alone.epoch, alone.last_epoch) == (together.epoch, together.last_epoch)
        assert alone.validation_score == together.validation_score
        for key, tensors in alone.state.items():
            for a, b in zip(tensors, together.state[key], strict=True):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layers", [0, 1, 2])
def test_heareval_module_and_stack_draw_the_same_initialisation(layers):
    """Sequential mode's nn modules (global RNG) and batched mode's stack (a generator) both
    draw Linear's default init, then xavier, layer by layer: the same seed gives equal weights."""
    conf = _conf(hidden_layers=layers, initialization="xavier_normal_")
    torch.manual_seed(7)
    net = heareval_net(conf, 12, 4)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    gen = torch.Generator().manual_seed(7)
    stack = _init_stack([conf], 12, 4, [gen], torch.device("cpu"))
    assert len(linears) == len(stack.weights) == layers + 1
    for linear, w, b in zip(linears, stack.weights, stack.biases, strict=True):
        assert torch.equal(linear.weight.T, w[0]) and torch.equal(linear.bias, b[0, 0])
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "BatchNorm1d", "Dropout", "ReLU"] * layers + ["Linear"]


def test_early_stopping_counts_validation_checks(tvt_task):
    train = split_arrays(tvt_task, ["train"], torch.device("cpu"))
    valid = split_arrays(tvt_task, ["valid"], torch.device("cpu"))
    # lr 0: the score never strictly improves after the first check at epoch 1 (check every 2)
    conf = _conf(lr=0.0, patience=2, check_val_every_n_epoch=2, max_epochs=20)
    (point,) = train_stack(
        [conf], train, valid, Scorer.for_task(tvt_task), True,
        [0], torch.device("cpu"),
    )  # fmt: skip
    assert point.epoch == 1  # the first check is kept: later equal scores are not "better"
    assert point.last_epoch == 5  # checks at epochs 1, 3, 5: two without improvement stop it


def test_tvt_result_structure_and_separable_score(tvt_task):
    result = run_hear_mlp(tvt_task, grid="faster", grid_points=4)
    assert set(result) == {"test", "hparams", "postprocessing", "score_mode", "embedding_path"}
    test = result["test"]
    assert test["test_score"] == test["test_top1_acc"] >= 0.9
    assert {"test_loss", "test_mAP", "validation_score", "epoch", "time_in_min"} <= set(test)
    assert result["score_mode"] == "max" and result["postprocessing"] == []


@pytest.mark.slow
def test_sequential_mode_is_reproducible_and_leaves_global_rng(tvt_task):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = run_hear_mlp(tvt_task, grid="faster", grid_points=2, mode="sequential")
    assert torch.equal(torch.get_rng_state(), before)
    second = run_hear_mlp(tvt_task, grid="faster", grid_points=2, mode="sequential")
    for key in ("test_score", "test_loss", "epoch"):
        assert first["test"][key] == second["test"][key]


@pytest.mark.slow
def test_kfold_aggregation(tmp_path):
    rng = np.random.default_rng(1)
    feats, classes = _blobs(rng, {"fold00": 40, "fold01": 40, "fold02": 40})
    task = load_cached_task(scene_cache(tmp_path, feats, classes, LABELS))
    assert task.protocol_splits() == [
        (("fold02",), "fold01", "fold00"),
        (("fold00",), "fold02", "fold01"),
        (("fold01",), "fold00", "fold02"),
    ]
    result = run_hear_mlp(task, grid="faster", grid_points=2)
    scores = [result[f]["test_score"] for f in ("fold00", "fold01", "fold02")]
    agg = result["aggregated_scores"]
    assert agg["test_score_mean"] == pytest.approx(np.mean(scores))
    assert agg["test_score_std"] == pytest.approx(np.std(scores, ddof=1))


def test_aggregate_folds_by_hand():
    folds = {
        "fold00": {"test_score": 0.5},
        "fold01": {"test_score": 0.7},
        "fold02": {"test_score": 0.9},
    }
    agg = aggregate_folds(folds)
    assert agg["test_score_mean"] == pytest.approx(0.7)
    assert agg["test_score_std"] == pytest.approx(0.2)
    with warnings.catch_warnings():  # d' of a perfectly separated class: inf, quietly
        warnings.simplefilter("error")
        inf = aggregate_folds({f: {"test_d_prime": math.inf} for f in folds})
    assert inf["test_d_prime_mean"] == math.inf and math.isnan(inf["test_d_prime_std"])


def test_events_from_frames_by_hand():
    ts = 25.0 + 50.0 * np.arange(10)
    p = np.array([0.9, 0.1, 0.9, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1])[:, None]
    # no filter: runs [0], [2, 3], [6]; an event ends at its last active frame's timestamp
    raw = events_from_frames(p, ts, ["a"], median_filter_ms=0, min_duration=0)
    assert [(e["start"], e["end"]) for e in raw] == [(25, 25), (125, 175), (325, 325)]
    assert events_from_frames(p, ts, ["a"], 0, 50) == [{"label": "a", "start": 125, "end": 175}]
    # 150 ms / 50 ms hop = 3-frame median ('reflect' edges): frames 0-3 active, frame 6 removed
    smooth = events_from_frames(p, ts, ["a"], median_filter_ms=150, min_duration=125)
    assert smooth == [{"label": "a", "start": 25, "end": 175}]
    assert events_from_frames(p, ts, ["a"], median_filter_ms=150, min_duration=250) == []


def test_events_for_files_groups_and_sorts_frames():
    probs = np.array([[0.9], [0.9], [0.1], [0.9]])
    files = ["x.wav", "y.wav", "x.wav", "x.wav"]
    ts = np.array([100.0, 0.0, 0.0, 50.0])  # x.wav frames out of order
    events = events_for_files(
        probs, files, ts, ["a"], (("median_filter_ms", 0), ("min_duration", 0))
    )
    assert events == {
        "x.wav": [{"label": "a", "start": 50.0, "end": 100.0}],
        "y.wav": [{"label": "a", "start": 0.0, "end": 0.0}],
    }


def test_event_task_runs_and_reports_postprocessing(tmp_path):
    task = load_cached_task(event_cache(tmp_path, np.random.default_rng(2)))
    result = run_hear_mlp(task, grid="faster", grid_points=2)
    test = result["test"]
    assert test["test_score"] == test["test_event_onset_200ms_fms"] > 0.3
    assert {"test_event_onset_200ms_fms_precision", "test_segment_1s_er"} <= set(test)
    assert [p[0] for p in result["postprocessing"]] == ["median_filter_ms", "min_duration"]
    assert result["postprocessing"][1][1] in (125, 250)


def test_class_missing_from_train_and_empty_fold(tmp_path):
    rng = np.random.default_rng(3)
    feats, classes = _blobs(rng, {"train": 8, "valid": 8, "test": 8})
    classes["train"] = np.zeros(8, dtype=int)  # only c0 in train
    task = load_cached_task(scene_cache(tmp_path / "a", feats, classes, LABELS))
    with pytest.raises(ValueError, match="not in its training folds"):
        run_hear_mlp(task, grid="faster", grid_points=1)
    feats["valid"], classes["valid"] = feats["valid"][:0], classes["valid"][:0]
    feats["train"], classes["train"] = feats["test"], classes["test"]
    task = load_cached_task(scene_cache(tmp_path / "b", feats, classes, LABELS))
    with pytest.raises(ValueError, match="split valid has no items"):
        run_hear_mlp(task, grid="faster", grid_points=1)


def test_score_command_writes_and_reuses_scores_json(tmp_path, capsys):
    import json

    from hear_wavjepa import __version__
    from hear_wavjepa.cli import main

    rng = np.random.default_rng(5)
    feats, classes = _blobs(rng, {"train": 40, "valid": 20, "test": 20})
    cache = scene_cache(tmp_path, feats, classes, LABELS)
    args = ["score", "--cache", str(cache), "--grid", "faster", "--grid-points", "1"]
    assert main([*args, "--protocols", "mlp,knn"]) == 0
    scores = json.loads((cache / "scores.json").read_text())
    assert set(scores) >= {"mlp", "knn"} and "linear" not in scores
    assert scores["mlp"]["settings"] == {
        "grid": "faster",
        "grid_points": 1,
        "mode": "batched",
        "seed": 42,
    }
    assert scores["mlp"]["code_version"] == __version__
    assert "test_top1_acc" in scores["mlp"]["result"]["test"]
    stamp = (cache / "scores.json").stat().st_mtime_ns
    assert main([*args, "--protocols", "mlp"]) == 0  # stored and unchanged: reused
    assert (cache / "scores.json").stat().st_mtime_ns == stamp
    assert "mlp" in capsys.readouterr().out
    assert main([*args, "--protocols", "svm"]) == 2  # a user error: one line, exit 2
    assert capsys.readouterr().err.strip() == (
        "hear-wavjepa score: error: --protocols 'svm': choose from mlp, linear, knn"
    )


def test_stacked_adam_step_equals_torch_adam_per_point():
    """Each grid point's slice of the stack takes torch.optim.Adam's step at its own lr."""
    from hear_wavjepa.evaluation.mlp_stack import _adam_step, _Stack

    gen = torch.Generator().manual_seed(0)

    def tensors(*shape):  # one layer's tensor of both points
        return [torch.randn(*shape, generator=gen).requires_grad_(True)]

    stack = _Stack(tensors(2, 3, 4), tensors(2, 1, 4), tensors(2, 1, 4), tensors(2, 1, 4), [], [])
    lrs = [1e-3, 3e-2]
    copies = [[p.detach()[g].clone().requires_grad_(True) for p in stack.params()] for g in (0, 1)]
    optimizers = [torch.optim.Adam(c, lr=lr) for c, lr in zip(copies, lrs, strict=True)]
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=gen) for p in stack.params()]
        for p, grad in zip(stack.params(), grads, strict=True):
            p.grad = grad.clone()
        for g, (copy, optimizer) in enumerate(zip(copies, optimizers, strict=True)):
            for c, grad in zip(copy, grads, strict=True):
                c.grad = grad[g].clone()
            optimizer.step()
        _adam_step(stack, lrs)
    for g in (0, 1):
        for p, c in zip(stack.params(), copies[g], strict=True):
            assert torch.equal(p.detach()[g], c.detach())
