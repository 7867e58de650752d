"""HEAR MLP on an event task where a grid point predicts no events (heareval parity).

heareval monitors the raw validation onset F of the best post-processing: NaN when nothing is
predicted (precision 0/0). NaN is counted as 0 only to rank post-processings. Lightning's
EarlyStopping (check_finite) stops a point at its first non-finite check, and ModelCheckpoint
stores a NaN as the worst value (-inf when maximising). On `no_events_cache` the grid point with
lr 10 predicts nothing at its first check; the point with lr 0.01 keeps predicting events.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
import torch
from synthetic_cache import NO_EVENTS_LR, no_events_cache

from hear_wavjepa.evaluation.cache import load_cached_task
from hear_wavjepa.evaluation.folds import split_arrays
from hear_wavjepa.evaluation.hear_mlp import (
    _dataloader_seed,
    run_hear_mlp,
    sample_grid,
    task_grid,
    train_net,
    train_stack,
)
from hear_wavjepa.evaluation.metrics import primary_value
from hear_wavjepa.evaluation.scorer import Scorer, events_for_files, postprocessing_grid

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return load_cached_task(no_events_cache(tmp_path_factory.mktemp("no-events")))


def _confs(task):
    return sample_grid(task_grid(task.metadata, "faster"), 8, random.Random(42))


def _splits(task):
    return [split_arrays(task, [s], CPU) for s in ("train", "valid", "test")]


def _predicts_nothing(task, point, valid) -> bool:
    """No event on the validation split under any post-processing."""
    probs = torch.sigmoid(point.logits(valid.x)).numpy()
    data = valid.data
    return not any(
        any(events_for_files(probs, data.filenames, data.timestamps, task.labels, post).values())
        for post in postprocessing_grid(task.metadata)
    )


def test_validation_returns_the_raw_score_of_the_postprocessing_ranked_first(task):
    scorer = Scorer.for_task(task)
    _, valid, _ = _splits(task)
    nothing = torch.full(valid.y.shape, -20.0)
    value, post = scorer.validate(nothing, valid)
    # every post-processing scores NaN, ranked as 0: the tie goes to the largest setting
    assert math.isnan(value)
    assert post == max(postprocessing_grid(task.metadata))
    logits = (valid.y * 40 - 20) + torch.linspace(-30, 30, len(valid.y))[:, None]
    value, post = scorer.validate(logits, valid)
    metric, data, probs = scorer.metrics[0], valid.data, torch.sigmoid(logits).numpy()
    raw = {}
    for p in postprocessing_grid(task.metadata):
        events = events_for_files(probs, data.filenames, data.timestamps, task.labels, p)
        raw[p] = primary_value(metric(events, valid.target_events, task.labels))
    assert any(math.isnan(v) for v in raw.values()) or len(set(raw.values())) > 1
    assert value == raw[post]
    assert all((0.0 if math.isnan(v) else v) <= value for v in raw.values())


def test_sequential_point_predicting_nothing_stops_at_its_first_check(task):
    train, valid, _ = _splits(task)
    scorer = Scorer.for_task(task)
    conf = next(c for c in _confs(task) if c["lr"] == NO_EVENTS_LR)
    torch.manual_seed(0)
    point = train_net(conf, train, valid, scorer, True, CPU)
    after_stop = torch.get_rng_state()
    assert _predicts_nothing(task, point, valid)  # the checkpoint kept: its only validation
    assert (point.epoch, point.last_epoch, point.validation_score) == (0, 0, -math.inf)
    # Lightning stops it there: the random stream goes on as after a run of max_epochs 1
    torch.manual_seed(0)
    one = train_net({**conf, "max_epochs": 1}, train, valid, scorer, True, CPU)
    assert torch.equal(torch.get_rng_state(), after_stop)
    assert all(torch.equal(one.state[k], point.state[k]) for k in point.state)


def test_batched_point_predicting_nothing_stops_and_leaves_the_others(task):
    train, valid, _ = _splits(task)
    scorer = Scorer.for_task(task)
    confs = _confs(task)[:2]
    assert [c["lr"] for c in confs] == [NO_EVENTS_LR, 0.01]
    points = train_stack(confs, train, valid, scorer, True, [5, 6], CPU)
    assert (points[0].epoch, points[0].last_epoch, points[0].validation_score) == (0, 0, -math.inf)
    assert points[1].last_epoch > 0 and math.isfinite(points[1].validation_score)
    (alone,) = train_stack(confs[1:], train, valid, scorer, True, [6], CPU)
    assert (alone.epoch, alone.last_epoch) == (points[1].epoch, points[1].last_epoch)
    assert alone.validation_score == points[1].validation_score
    for name, tensors in alone.state.items():
        for a, b in zip(tensors, points[1].state[name], strict=True):
            torch.testing.assert_close(a, b)


def _heareval_rule(task) -> dict[str, float]:
    """What heareval's runner does with this grid, written out: seed 42 once, then each point in
    the shuffled order on the global RNG; the point that predicts nothing at its first check is
    stopped there by EarlyStopping, i.e. it trains as a run of max_epochs 1 would; the best
    validation score wins (its NaN is stored as -inf); the test DataLoader draws once."""
    train, valid, test = _splits(task)
    scorer = Scorer.for_task(task)
    torch.manual_seed(42)
    points = []
    for conf in _confs(task):
        epochs = (
            conf["check_val_every_n_epoch"] if conf["lr"] == NO_EVENTS_LR else conf["max_epochs"]
        )
        point = train_net({**conf, "max_epochs": epochs}, train, valid, scorer, True, CPU)
        if conf["lr"] == NO_EVENTS_LR:
            assert _predicts_nothing(task, point, valid)
            point = replace(point, validation_score=-math.inf, conf=conf)
        points.append(point)
    best = max(points, key=lambda p: p.validation_score)
    _dataloader_seed()
    scores = scorer.test(best.logits(test.x), test, best.postprocessing)
    scores.update(validation_score=best.validation_score, epoch=best.epoch, lr=best.conf["lr"])
    return scores


def test_sequential_run_follows_heareval_rule(task):
    expected = _heareval_rule(task)
    lrs = [c["lr"] for c in _confs(task)]
    assert lrs == [NO_EVENTS_LR, 0.01, 0.01, NO_EVENTS_LR]  # one stops before the others run
    assert expected["lr"] != NO_EVENTS_LR and math.isfinite(expected["validation_score"])
    ours = run_hear_mlp(task, "faster", 8, "sequential")
    got = {k: v for k, v in ours["test"].items() if k != "time_in_min"}
    assert got == {k: v for k, v in expected.items() if k != "lr"}
    assert ours["hparams"]["lr"] == expected["lr"]


def test_batched_run_chooses_the_point_that_predicts_events(task):
    ours = run_hear_mlp(task, "faster", 8, "batched")
    assert ours["hparams"]["lr"] != NO_EVENTS_LR
    assert math.isfinite(ours["test"]["validation_score"])
