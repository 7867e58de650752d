"""Evaluation at HEAR size: memory-mapped splits score exactly as in-memory ones, the blockwise
NaN check, and the protocols' CPU thread count (docs/scale.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from synthetic_cache import event_cache, scene_cache

from hear_wavjepa.evaluation import cache as cache_module
from hear_wavjepa.evaluation.cache import CachedTask, load_cached_task, load_split
from hear_wavjepa.evaluation.folds import split_arrays
from hear_wavjepa.evaluation.hear_mlp import run_hear_mlp
from hear_wavjepa.evaluation.knn import run_knn
from hear_wavjepa.evaluation.linear import LinearSettings, run_linear
from hear_wavjepa.evaluation.threads import ENV, cpu_threads, protocol_threads

LABELS = ["a", "b", "c"]


def _kfold_cache(tmp_path):
    rng = np.random.default_rng(3)
    means = rng.normal(0, 2.0, (len(LABELS), 16))
    feats, classes = {}, {}
    for fold in ("fold00", "fold01", "fold02"):
        c = np.arange(30) % len(LABELS)
        rng.shuffle(c)
        classes[fold] = c
        feats[fold] = (means[c] + rng.normal(0, 1.0, (30, 16))).astype(np.float32)
    grid = {"max_epochs": [2], "check_val_every_n_epoch": [1]}  # a short run
    params = {"task_specific_param_grid": grid}
    return scene_cache(tmp_path, feats, classes, LABELS, evaluation_params=params)


def _in_memory(path) -> CachedTask:
    """The task with every split read into plain arrays up front (`_loaded` pre-filled)."""
    task = load_cached_task(path)
    loaded = {s: load_split(path, s, mmap=False) for s in task.splits}
    return CachedTask(task.path, task.metadata, task.labels, task.splits, loaded)


def _scores(result: dict) -> dict:
    """The result without its timings (JSON, so NaN compares equal to NaN)."""
    if isinstance(result, dict):
        return {k: _scores(v) for k, v in result.items() if "time_in_min" not in k}
    return json.loads(json.dumps(result).replace("NaN", "null"))


def test_memmap_and_in_memory_splits_give_identical_scores(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "1")  # small ops: one thread is fastest on a busy machine
    path = _kfold_cache(tmp_path)
    mapped, memory = load_cached_task(path), _in_memory(path)
    assert isinstance(mapped.load("fold00").embeddings, np.memmap)
    assert not isinstance(memory.load("fold00").embeddings, np.memmap)
    same = mapped.load("fold01").embeddings, memory.load("fold01").embeddings
    np.testing.assert_array_equal(*same)
    for run in (
        lambda t: run_hear_mlp(t, "faster", 2),
        lambda t: run_linear(t, LinearSettings(epochs=2)),
        run_knn,
    ):
        a, b = run(mapped), run(memory)
        a.pop("embedding_path", None), b.pop("embedding_path", None)
        assert _scores(a) == _scores(b)


def test_event_split_stays_mapped_and_scores_match(tmp_path):
    path = event_cache(tmp_path, np.random.default_rng(0), files_per_split=2, frames=40)
    mapped, memory = load_cached_task(path), _in_memory(path)
    valid = split_arrays(mapped, ["valid"], torch.device("cpu"))
    # one split is used in place: the tensor shares the memmap's pages (no copy)
    assert valid.x.data_ptr() == mapped.load("valid").embeddings.ctypes.data
    a = run_linear(mapped, LinearSettings(epochs=2))
    b = run_linear(memory, LinearSettings(epochs=2))
    assert a["folds"] == b["folds"]


def test_nan_check_runs_in_blocks_and_names_the_first_bad_row(tmp_path, monkeypatch):
    path = _kfold_cache(tmp_path)
    emb = path / "fold01.embeddings.npy"
    rows = np.fromfile(emb, dtype=np.float32).reshape(30, 16)
    rows[25, 3] = np.inf
    rows[27, 0] = np.nan
    rows.tofile(emb)
    monkeypatch.setattr(cache_module, "CHECK_ROWS", 4)  # rows 25 and 27 lie in later blocks
    with pytest.raises(ValueError, match=r"in 2 rows \(first row 25, first in fold01-"):
        load_split(path, "fold01")
    assert load_split(path, "fold00").embeddings.shape == (30, 16)


def test_protocol_threads_come_from_the_environment(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv(ENV, "1")
    assert protocol_threads() == 1
    with cpu_threads("cpu") as used:
        assert used == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.setenv(ENV, "zero")
    with pytest.raises(ValueError, match=ENV):
        protocol_threads()
    monkeypatch.delenv(ENV)
    assert protocol_threads() == before
