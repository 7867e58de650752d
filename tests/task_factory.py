"""Small, valid HEAR task folders with real WAV files, for tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import soundfile

SR = 16000


def write_task(
    root: Path,
    *,
    embedding: str = "scene",
    prediction: str = "multiclass",
    nfolds: int | None = None,
    labels: tuple[str, ...] = ("cat", "dog"),
    table: dict[str, dict] | None = None,
    duration: float = 0.5,
) -> Path:
    """A valid HEAR task folder with 2 clips per split; `table` replaces some splits' contents."""
    splits = (
        ["train", "valid", "test"] if nfolds is None else [f"fold{i:02d}" for i in range(nfolds)]
    )
    meta = {
        "task_name": "toy",
        "version": "v0",
        "mode": "full",
        "embedding_type": embedding,
        "prediction_type": prediction,
        "split_mode": "trainvaltest" if nfolds is None else "new_split_kfold",
        "splits": splits,
        "sample_duration": duration,
        "evaluation": ["top1_acc", "mAP"],
    }
    if nfolds is not None:
        meta["nfolds"] = nfolds
    root.mkdir(parents=True)
    (root / "task_metadata.json").write_text(json.dumps(meta))
    rows = "\n".join(f"{i},{label}" for i, label in enumerate(labels))
    (root / "labelvocabulary.csv").write_text(f"idx,label\n{rows}\n")
    if embedding == "event":
        value = [{"label": labels[0], "start": 10.0, "end": 200.0}]
        default = {s: {f"{s}_{i}.wav": value for i in range(2)} for s in splits}
    else:
        default = {s: {f"{s}_{i}.wav": [labels[i % len(labels)]] for i in range(2)} for s in splits}
    table = {**default, **(table or {})}
    rng = np.random.default_rng(0)
    for split in splits:
        (root / f"{split}.json").write_text(json.dumps(table[split]))
        folder = root / str(SR) / split
        folder.mkdir(parents=True)
        for name in table[split]:
            audio = (0.1 * rng.standard_normal(round(duration * SR))).astype(np.float32)
            soundfile.write(folder / name, audio, SR, subtype="PCM_16")
    return root


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file below `root`: equal dicts mean identical trees."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def write_mini_pair(root: Path) -> Path:
    """Two small tasks under the folder names of mini suite tasks (one TVT, one 3-fold), 6 clips
    per split and 3 labels; returns `root`."""
    labels = ("a", "b", "c")
    table = {
        s: {f"{s}_{i}.wav": [labels[i % 3]] for i in range(6)} for s in ("train", "valid", "test")
    }
    write_task(root / "mini_keywords-v1-full", labels=labels, table=table, duration=0.5)
    folds = {f"fold{k:02d}": {f"f{k}_{i}.wav": [labels[i % 3]] for i in range(6)} for k in range(3)}
    write_task(root / "mini_drums-v1-full", labels=labels, nfolds=3, table=folds, duration=0.5)
    return root


def remove_clips(task: Path, split: str, count: int) -> None:
    """Drop the last `count` clips of `split` from a task folder (split JSON and WAV files)."""
    table = json.loads((task / f"{split}.json").read_text())
    for name in list(table)[-count:]:
        del table[name]
        for wav in task.glob(f"*/{split}/{name}"):
            wav.unlink()
    (task / f"{split}.json").write_text(json.dumps(table))
