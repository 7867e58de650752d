"""The heareval embedding cache layout: exact files, shapes and dtypes, resume, bad input."""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest
from synthetic_cache import write_task_folder

from hear_wavjepa.evaluation.cache import CacheWriter, load_cached_task, load_split

LABELS = ["a", "b", "c"]


def _scene_task(tmp_path, n=5):
    splits = {
        s: {f"{s}-{i}.wav": [LABELS[i % 3]] for i in range(n)} for s in ("train", "valid", "test")
    }
    return write_task_folder(tmp_path / "task", splits, LABELS)


def _embedding(split, i, dim=6):
    return np.full(dim, 10 * i + len(split), dtype=np.float32) + np.arange(dim)


def test_scene_round_trip_exact_layout(tmp_path):
    task = _scene_task(tmp_path)
    out = tmp_path / "cache"
    writer = CacheWriter(task, out)
    for split in writer.splits:
        for i in range(5):
            writer.write_scene(split, f"{split}-{i}.wav", _embedding(split, i).astype(np.float64))
    writer.finalise()
    assert (out / ".done.embeddings").exists()
    for name in ("task_metadata.json", "labelvocabulary.csv", "train.json", "test.json"):
        assert (out / name).read_bytes() == (task / name).read_bytes()
    prng = random.Random(0)  # heareval: one generator per task, consumed split by split
    for split in ("train", "valid", "test"):
        assert (out / split / f"{split}-0.wav.embedding.npy").exists()
        assert (out / split / f"{split}-0.wav.target-labels.json").exists()
        assert json.loads((out / f"{split}.embedding-dimensions.json").read_text()) == [5, 6]
        raw = (out / f"{split}.embeddings.npy").read_bytes()
        assert len(raw) == 5 * 6 * 4  # raw float32, no .npy header
        order = sorted(f"{split}-{i}.wav" for i in range(5))
        prng.shuffle(order)
        expected = np.stack([_embedding(split, int(f.split("-")[1][0])) for f in order])
        memmap = np.memmap(out / f"{split}.embeddings.npy", dtype=np.float32, mode="r")
        np.testing.assert_array_equal(memmap.reshape(5, 6), expected)
        with open(out / f"{split}.target-labels.pkl", "rb") as f:
            labels = pickle.load(f)
        assert labels == [[LABELS[int(f.split("-")[1][0]) % 3]] for f in order]
        data = load_split(out, split)
        assert data.embeddings.dtype == np.float32 and data.embeddings.shape == (5, 6)
        assert data.filenames == order and data.timestamps is None
    assert not (out / "train.filename-timestamps.json").exists()


def test_event_layout_and_frame_labels(tmp_path):
    events = {"x.wav": [{"label": "a", "start": 0.0, "end": 100.0}, {"label": "b", "start": 50.0,
                                                                     "end": 60.0}]}  # fmt: skip
    splits = {"train": events, "valid": events, "test": events}
    task = write_task_folder(tmp_path / "task", splits, LABELS, "event", "multilabel")
    out = tmp_path / "cache"
    writer = CacheWriter(task, out)
    ts = np.array([0.0, 50.0, 100.0, 150.0])
    for split in writer.splits:
        writer.write_event(split, "x.wav", np.ones((4, 3)), ts)
    writer.finalise()
    assert json.loads((out / "test.embedding-dimensions.json").read_text()) == [4, 3]
    stamps = json.loads((out / "test.filename-timestamps.json").read_text())
    assert stamps == [[str(out / "test" / "x.wav"), t] for t in ts.tolist()]
    data = load_split(out, "test")
    # [start, end + 0.0001): 100 ms is still inside "a"; "b" covers only 50 ms
    assert data.labels == [["a"], ["a", "b"], ["a"], []]
    assert data.filenames == ["x.wav"] * 4
    np.testing.assert_array_equal(data.timestamps, ts)


def test_resume_skips_finished_clips(tmp_path):
    task = _scene_task(tmp_path)
    out = tmp_path / "cache"
    first = CacheWriter(task, out)
    for i in range(3):
        first.write_scene("train", f"train-{i}.wav", _embedding("train", i))
    # a clip interrupted after its labels but before its embedding, and a stray temp file
    (out / "train" / "train-3.wav.target-labels.json").write_text('["a"]')
    (out / "train" / ".train-4.wav.embedding.npy.x.tmp").write_bytes(b"partial")
    finished = {p: p.stat().st_mtime_ns for p in (out / "train").glob("*.embedding.npy")}
    del first
    resumed = CacheWriter(task, out)  # a new process after the interruption
    assert resumed.pending("train") == ["train-3.wav", "train-4.wav"]
    with pytest.raises(ValueError, match="without embeddings"):
        resumed.finalise()
    for split in resumed.splits:
        for name in resumed.pending(split):
            resumed.write_scene(split, name, _embedding(split, int(name.split("-")[1][0])))
    resumed.finalise()
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert load_split(out, "train").embeddings.shape == (5, 6)
    assert CacheWriter(task, out).done


def test_nan_embeddings_are_refused(tmp_path):
    task = _scene_task(tmp_path, n=2)
    out = tmp_path / "cache"
    writer = CacheWriter(task, out)
    with pytest.raises(ValueError, match=r"train-0\.wav.*NaN"):
        writer.write_scene("train", "train-0.wav", np.array([1.0, np.nan]))
    for split in writer.splits:
        for i in range(2):
            writer.write_scene(split, f"{split}-{i}.wav", np.ones(2))
    writer.finalise()
    memmap = np.memmap(out / "valid.embeddings.npy", dtype=np.float32, mode="r+", shape=(2, 2))
    memmap[1, 0] = np.inf
    memmap.flush()
    del memmap
    names = json.loads((out / "valid.filenames.json").read_text())
    with pytest.raises(ValueError, match=rf"split valid .*row 1, first in {names[1]}"):
        load_split(out, "valid")


def test_bad_clips_and_mismatched_dims(tmp_path):
    task = _scene_task(tmp_path, n=1)
    out = tmp_path / "cache"
    writer = CacheWriter(task, out)
    with pytest.raises(ValueError, match="not a clip"):
        writer.write_scene("train", "other.wav", np.ones(3))
    with pytest.raises(ValueError, match="1-d"):
        writer.write_scene("train", "train-0.wav", np.ones((2, 3)))
    writer.write_scene("train", "train-0.wav", np.ones(3))
    writer.write_scene("valid", "valid-0.wav", np.ones(4))
    writer.write_scene("test", "test-0.wav", np.ones(3))
    writer.finalise()
    with pytest.raises(ValueError, match="different embedding sizes"):
        load_cached_task(out)
