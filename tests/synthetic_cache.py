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
    constant_dims: int = 0,
    event_frames: tuple[int, int] | None = None,
    cache_name: str = "cache",
    **extra: object,
) -> Path:
    """A finished event cache: 2 labels, each file with a few events; frame embeddings carry the
    active labels as +3 on one dimension per label, plus Gaussian noise, then `constant_dims`
    dimensions that are 1 on every frame. An event lasts [low, high) frames (`event_frames`,
    default [10, frames / 2)); `extra` goes into the task metadata. Task folder `tmp/task`,
    cache `tmp/<cache_name>`."""
    low, high = event_frames or (10, frames // 2)
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
                length = float(rng.integers(low, high)) * hop_ms
                events.append({"label": label, "start": start, "end": start + length})
                x[(ts >= start) & (ts < start + length + 0.0001), c] += 3.0
            x = np.concatenate([x, np.ones((frames, constant_dims), np.float32)], axis=1)
            split_json[split][name] = events
            frames_of[(split, name)] = x
    task = write_task_folder(
        tmp / "task",
        split_json,
        labels,
        "event",
        "multilabel",
        ("event_onset_200ms_fms", "segment_1s_er"),
        **extra,
    )
    writer = CacheWriter(task, tmp / cache_name)
    for (split, name), x in frames_of.items():
        writer.write_event(split, name, x, ts)
    writer.finalise()
    return tmp / cache_name


#: A grid (task_specific_param_grid over `faster`) whose points with lr 10 predict no events at
#: their first validation on `no_events_cache`. heareval's shuffle (seed 42) gives the order
#: (lr, initialization): (10, normal), (0.01, uniform), (0.01, normal), (10, uniform).
#: (heareval takes this grid from the metadata as is: it holds no initialization, whose values
#: heareval's own grid gives as functions.)
NO_EVENTS_LR = 10.0
NO_EVENTS_GRID = {
    "hidden_layers": [0],
    "hidden_dim": [64],
    "patience": [3],
    "lr": [NO_EVENTS_LR, 1e-2],
    "max_epochs": [10],
}


def no_events_cache(tmp: Path, cache_name: str = "cache") -> Path:
    """An event cache where a grid point predicts no events: rare events (4 to 8 frames of 80),
    no noise and 3 constant dimensions. The first Adam step moves every weight by lr against its
    gradient's sign, so at lr 10 the bias and the constant dimensions pull every logit far below 0
    (no event: onset F is NaN), while lr 0.01 keeps predicting events."""
    return event_cache(
        tmp,
        np.random.default_rng(0),
        noise=0.0,
        dim=2,
        constant_dims=3,
        event_frames=(4, 9),
        cache_name=cache_name,
        task_name="synth_no_events",
        evaluation_params={"task_specific_param_grid": NO_EVENTS_GRID},
    )
