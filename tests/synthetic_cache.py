"""Synthetic HEAR task folders (no audio) and their embedding caches, written with the package's
own task-folder writer and CacheWriter; also imported by tests/benchmarks and tests/oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hear_wavjepa.evaluation.cache import CacheWriter
from hear_wavjepa.hear_task import write_task_files


def write_task_folder(
    root: Path,
    splits: dict[str, dict[str, object]],
    labels: list[str],
    embedding_type: str = "scene",
    prediction_type: str = "multiclass",
    evaluation: tuple[str, ...] = ("top1_acc",),
    task_name: str = "synth",
    **extra: object,
) -> Path:
    """A hear-preprocess-style folder (metadata, vocabulary, split JSON; no audio)."""
    root.mkdir(parents=True, exist_ok=True)
    names = list(splits)
    kfold = names != ["train", "valid", "test"]
    meta = {
        "task_name": task_name,
        "version": "v0",
        "mode": "full",
        "embedding_type": embedding_type,
        "prediction_type": prediction_type,
        "split_mode": "new_split_kfold" if kfold else "trainvaltest",
        "splits": names,
        "sample_duration": 1.0,
        "evaluation": list(evaluation),
        **({"nfolds": len(names)} if kfold else {}),
        **extra,
    }
    return write_task_files(root, meta, labels, splits)


def scene_cache(
    tmp: Path,
    features: dict[str, np.ndarray],
    classes: dict[str, np.ndarray],
    labels: list[str],
    prediction_type: str = "multiclass",
    evaluation: tuple[str, ...] = ("top1_acc",),
    **extra: object,
) -> Path:
    """A finished scene cache: split s has clips `s-i.wav` with embedding features[s][i] and the
    label labels[classes[s][i]] (classes[s][i] may be a list of indices for multilabel)."""
    split_json = {}
    for split, cls in classes.items():
        split_json[split] = {
            f"{split}-{i}.wav": [labels[j] for j in np.atleast_1d(c)] for i, c in enumerate(cls)
        }
    task = write_task_folder(
        tmp / "task", split_json, labels, "scene", prediction_type, evaluation, **extra
    )
    writer = CacheWriter(task, tmp / "cache")
    for split, x in features.items():
        for i, row in enumerate(x):
            writer.write_scene(split, f"{split}-{i}.wav", row)
    writer.finalise()
    return tmp / "cache"


def event_cache(
    tmp: Path,
    rng: np.random.Generator,
    split_names: tuple[str, ...] = ("train", "valid", "test"),
    files_per_split: int = 4,
    frames: int = 80,
    hop_ms: float = 50.0,
    dim: int = 8,
    noise: float = 0.3,
) -> Path:
    """A finished event cache: 2 labels, each file with a few events; frame embeddings carry the
    active labels as +3 on one dimension per label, plus Gaussian noise."""
    labels = ["a", "b"]
    split_json: dict[str, dict[str, list]] = {}
    frames_of: dict[tuple[str, str], np.ndarray] = {}
    ts = np.arange(frames) * hop_ms + hop_ms / 2
    for split in split_names:
        split_json[split] = {}
        for f in range(files_per_split):
            name = f"{split}-{f}.wav"
            events = []
            x = rng.normal(0, noise, (frames, dim)).astype(np.float32)
            for c, label in enumerate(labels):
                start = float(rng.integers(0, frames // 2)) * hop_ms
                length = float(rng.integers(10, frames // 2)) * hop_ms
                events.append({"label": label, "start": start, "end": start + length})
                x[(ts >= start) & (ts < start + length + 0.0001), c] += 3.0
            split_json[split][name] = events
            frames_of[(split, name)] = x
    task = write_task_folder(
        tmp / "task",
        split_json,
        labels,
        "event",
        "multilabel",
        ("event_onset_200ms_fms", "segment_1s_er"),
    )
    writer = CacheWriter(task, tmp / "cache")
    for (split, name), x in frames_of.items():
        writer.write_event(split, name, x, ts)
    writer.finalise()
    return tmp / "cache"
