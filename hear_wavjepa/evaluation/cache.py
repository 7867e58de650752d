"""heareval's on-disk embedding layout (docs/hear-protocol.md): a resumable writer and a reader.

A cached task dir holds copies of `task_metadata.json`, `labelvocabulary.csv` and `<split>.json`;
per clip `<split>/<file>.embedding.npy` ((D,) scene, (T, D) event), `<file>.target-labels.json`
and, for event tasks, `<file>.timestamps.json` (ms); after `finalise()`, per split
`<split>.embedding-dimensions.json` ([N, D]), `<split>.embeddings.npy` (a RAW float32 memmap, no
.npy header), `<split>.target-labels.pkl` (a pickled list of label lists),
`<split>.filename-timestamps.json` (event tasks), and the `.done.embeddings` marker. Beyond
heareval it writes `<split>.filenames.json` (the clip of every row) so errors can name a file.
Every file is written atomically; a clip whose `.embedding.npy` exists is finished and skipped.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hear_wavjepa.atomicio import atomic_write, write_json
from hear_wavjepa.hear_task import (
    metadata_splits,
    protocol_splits,
    read_json,
    read_vocabulary,
)

DONE_MARKER = ".done.embeddings"
EMBEDDING_SUFFIX = ".embedding.npy"
COPIED_FILES = ("task_metadata.json", "labelvocabulary.csv")


def content_digest(folder: Path | str, splits: Sequence[str]) -> str:
    """12 hex digits of sha256 over a task's metadata, vocabulary and split files in `folder`: the
    same for the task folder and its cache dir (which holds copies), other when clips change."""
    digest = hashlib.sha256()
    for name in (*COPIED_FILES, *(f"{s}.json" for s in splits)):
        digest.update(name.encode() + b"\0" + (Path(folder) / name).read_bytes())
    return digest.hexdigest()[:12]


def check_finite(array: np.ndarray, where: str) -> None:
    """ValueError naming `where` and the first bad row if `array` holds NaN or Inf."""
    bad = ~np.isfinite(array)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"{where}: embeddings hold {int(bad.sum())} NaN/Inf values (first at row {row})"
        )


def timestamp_labels(events: Sequence[dict[str, Any]], timestamps: np.ndarray) -> list[list[Any]]:
    """Per timestamp (ms), the labels of events whose [start, end + 0.0001) holds it (heareval)."""
    unique = list(dict.fromkeys((e["start"], e["end"] + 0.0001, e["label"]) for e in events))
    return [
        [label for start, end, label in unique if start <= t < end] for t in timestamps.tolist()
    ]


class CacheWriter:
    """Writes one task's embedding cache clip by clip; `finalise()` consolidates it heareval's way.

    `task_dir` is the HEAR task folder (only its metadata and split JSON are read), `out_dir` the
    cache dir.
    """

    def __init__(self, task_dir: Path | str, out_dir: Path | str):
        self.task_dir = Path(task_dir)
        self.out_dir = Path(out_dir)
        self.metadata = read_json(self.task_dir / "task_metadata.json")
        self.embedding_type = self.metadata.get("embedding_type")
        if self.embedding_type not in ("scene", "event"):
            raise ValueError(
                f"{self.task_dir / 'task_metadata.json'}: embedding_type must be scene or event, "
                f"got {self.embedding_type!r}"
            )
        self.splits, _ = metadata_splits(self.task_dir / "task_metadata.json", self.metadata)
        self.split_data = {s: read_json(self.task_dir / f"{s}.json") for s in self.splits}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name in (*COPIED_FILES, *(f"{s}.json" for s in self.splits)):
            if not (self.out_dir / name).exists():
                data = (self.task_dir / name).read_bytes()
                atomic_write(self.out_dir / name, lambda f, data=data: f.write(data))

    @property
    def done(self) -> bool:
        """True once `finalise()` has written `.done.embeddings`."""
        return (self.out_dir / DONE_MARKER).exists()

    def _clip_path(self, split: str, filename: str, suffix: str) -> Path:
        return self.out_dir / split / f"{filename}{suffix}"

    def pending(self, split: str) -> list[str]:
        """Clips of `split` (in split-JSON order) that have no finished embedding yet."""
        return [
            f
            for f in self.split_data[split]
            if not self._clip_path(split, f, EMBEDDING_SUFFIX).exists()
        ]

    def _check_clip(self, split: str, filename: str, embedding: np.ndarray, ndim: int) -> None:
        where = f"{self.out_dir / split / filename} (split {split})"
        if filename not in self.split_data[split]:
            raise ValueError(f"{where}: not a clip of {split}.json")
        if embedding.ndim != ndim:
            raise ValueError(f"{where}: expected a {ndim}-d embedding, got shape {embedding.shape}")
        check_finite(embedding, where)

    def _save(self, split: str, filename: str, embedding: np.ndarray, labels: Any) -> None:
        atomic_write(
            self._clip_path(split, filename, ".target-labels.json"),
            lambda f: json.dump(labels, f),
            mode="w",
        )
        # The embedding is written last: its presence marks the clip finished.
        atomic_write(
            self._clip_path(split, filename, EMBEDDING_SUFFIX), lambda f: np.save(f, embedding)
        )

    def write_scene(self, split: str, filename: str, embedding: np.ndarray) -> None:
        """Store clip `filename`'s scene embedding (D,) with its labels from `<split>.json`."""
        embedding = np.asarray(embedding, dtype=np.float32)
        self._check_clip(split, filename, embedding, 1)
        self._save(split, filename, embedding, self.split_data[split][filename])

    def write_event(
        self, split: str, filename: str, embeddings: np.ndarray, timestamps: np.ndarray
    ) -> None:
        """Store clip `filename`'s timestamp embeddings (T, D) and timestamps (T,) in ms."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        timestamps = np.asarray(timestamps, dtype=np.float64)
        self._check_clip(split, filename, embeddings, 2)
        if timestamps.shape != (embeddings.shape[0],):
            raise ValueError(
                f"{self.out_dir / split / filename}: {embeddings.shape[0]} frames but timestamps "
                f"of shape {timestamps.shape}"
            )
        atomic_write(
            self._clip_path(split, filename, ".timestamps.json"),
            lambda f: json.dump(timestamps.tolist(), f),
            mode="w",
        )
        labels = timestamp_labels(self.split_data[split][filename], timestamps)
        self._save(split, filename, embeddings, labels)

    def finalise(self) -> None:
        """Consolidate every split (heareval's order: one Random(0) per task), then mark done."""
        if self.done:
            return
        prng = random.Random(0)
        for split in self.splits:
            missing = self.pending(split)
            if missing:
                raise ValueError(
                    f"{self.out_dir}: split {split} has {len(missing)} clips without embeddings "
                    f"(first: {missing[0]}); embed them before finalising"
                )
            self._consolidate(split, prng)
        atomic_write(self.out_dir / DONE_MARKER, lambda f: f.write(b""))

    def _consolidate(self, split: str, prng: random.Random) -> None:
        files = sorted(self.split_data[split])
        prng.shuffle(files)
        shapes = [
            np.load(self._clip_path(split, f, EMBEDDING_SUFFIX), mmap_mode="r").shape for f in files
        ]
        dims = {s[-1] for s in shapes}
        if len(dims) > 1:
            raise ValueError(f"{self.out_dir / split}: clips have different embedding sizes {dims}")
        rows = sum(1 if len(s) == 1 else s[0] for s in shapes)
        dim = dims.pop() if dims else 0
        labels: list[Any] = []
        names: list[str] = []
        stamps: list[list[Any]] = []

        def fill(f: Any) -> None:
            if rows == 0:
                return
            memmap = np.memmap(f, dtype=np.float32, mode="w+", shape=(rows, dim))
            row = 0
            for name in tqdm(files, desc=f"consolidate {split}", leave=False):
                emb = np.load(self._clip_path(split, name, EMBEDDING_SUFFIX))
                emb = emb.astype(np.float32).reshape(-1, dim)
                memmap[row : row + len(emb)] = emb
                row += len(emb)
            memmap.flush()
            del memmap

        for name in files:
            lbl = read_json(self._clip_path(split, name, ".target-labels.json"))
            if self.embedding_type == "scene":
                labels.append(lbl)
                names.append(name)
            else:
                ts = read_json(self._clip_path(split, name, ".timestamps.json"))
                labels.extend(lbl)
                names.extend([name] * len(ts))
                stem = str(self.out_dir / split / name)
                stamps.extend([stem, t] for t in ts)
        atomic_write(self.out_dir / f"{split}.embeddings.npy", fill, mode="w+b")
        atomic_write(self.out_dir / f"{split}.target-labels.pkl", lambda f: pickle.dump(labels, f))
        if self.embedding_type == "event":
            write_json(self.out_dir / f"{split}.filename-timestamps.json", stamps)
        write_json(self.out_dir / f"{split}.filenames.json", names)
        write_json(self.out_dir / f"{split}.embedding-dimensions.json", [rows, dim])


@dataclass(frozen=True)
class SplitData:
    """One consolidated split: `embeddings` (N, D) float32 (an in-memory array, or a memmap of
    the cache file as `load_split` opens it), `labels` per row; event tasks also `filenames` and
    `timestamps` (ms) per frame row; scene tasks `filenames` per row when known.
    """

    split: str
    embeddings: np.ndarray
    labels: list[list[Any]]
    filenames: list[str] | None
    timestamps: np.ndarray | None


def _open_rows(path: Path, rows: int, dim: int, mmap: bool) -> np.ndarray:
    """The (rows, dim) float32 embeddings file: a copy-on-write memmap (pages are read when
    used, and writing to it never reaches the file) or, with `mmap` false, an in-memory copy."""
    if mmap:
        return np.memmap(path, dtype=np.float32, mode="c", shape=(rows, dim))
    return np.fromfile(path, dtype=np.float32).reshape(rows, dim)


#: Rows checked for NaN/Inf at a time, so the check of a memory-mapped split stays small.
CHECK_ROWS = 1 << 16


def _bad_rows(embeddings: np.ndarray) -> np.ndarray:
    """Indices of the rows holding NaN or Inf, checked `CHECK_ROWS` rows at a time."""
    bad = [
        start + np.flatnonzero(~np.isfinite(embeddings[start : start + CHECK_ROWS]).all(axis=1))
        for start in range(0, len(embeddings), CHECK_ROWS)
    ]
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


def load_split(task_dir: Path | str, split: str, mmap: bool = True) -> SplitData:
    """Open a split of a finished cache dir; ValueError on NaN/Inf or bad files. The embeddings
    are memory-mapped (`mmap`, default) so a split larger than memory streams from disk, or read
    into memory; labels, file names and timestamps are always read."""
    task_dir = Path(task_dir)
    dims_path = task_dir / f"{split}.embedding-dimensions.json"
    if not dims_path.exists():
        raise ValueError(f"{dims_path}: missing; is {task_dir} a finished embedding cache?")
    rows, dim = (int(x) for x in read_json(dims_path))
    emb_path = task_dir / f"{split}.embeddings.npy"
    if rows == 0:
        embeddings = np.zeros((0, dim), dtype=np.float32)
    else:
        expected = rows * dim * 4
        size = emb_path.stat().st_size if emb_path.exists() else -1
        if size != expected:
            raise ValueError(
                f"{emb_path}: expected {expected} bytes for [{rows}, {dim}], got {size}"
            )
        embeddings = _open_rows(emb_path, rows, dim, mmap)
    with open(task_dir / f"{split}.target-labels.pkl", "rb") as f:
        labels = pickle.load(f)
    if len(labels) != rows:
        raise ValueError(
            f"{task_dir}: split {split} has {rows} embeddings but {len(labels)} labels"
        )
    filenames: list[str] | None = None
    timestamps: np.ndarray | None = None
    stamps_path = task_dir / f"{split}.filename-timestamps.json"
    names_path = task_dir / f"{split}.filenames.json"
    if stamps_path.exists():
        stamps = read_json(stamps_path)
        filenames = [Path(p).name for p, _ in stamps]
        timestamps = np.asarray([t for _, t in stamps], dtype=np.float64)
    elif names_path.exists():
        filenames = list(read_json(names_path))
    if filenames is not None and len(filenames) != rows:
        raise ValueError(
            f"{task_dir}: split {split} has {rows} rows but {len(filenames)} filenames"
        )
    bad = _bad_rows(embeddings)
    if len(bad):
        row = int(bad[0])
        clip = f", first in {filenames[row]}" if filenames is not None else ""
        raise ValueError(
            f"{emb_path}: split {split} has NaN/Inf embeddings in {len(bad)} rows "
            f"(first row {row}{clip})"
        )
    return SplitData(split, embeddings, labels, filenames, timestamps)


@dataclass
class CachedTask:
    """A finished cache dir: metadata, the label vocabulary (idx order) and lazily loaded splits."""

    path: Path
    metadata: dict[str, Any]
    labels: tuple[str, ...]
    splits: tuple[str, ...]
    _loaded: dict[str, SplitData]

    @property
    def embedding_type(self) -> str:
        return str(self.metadata["embedding_type"])

    @property
    def prediction_type(self) -> str:
        return str(self.metadata["prediction_type"])

    @property
    def evaluation(self) -> list[str]:
        return list(self.metadata["evaluation"])

    def protocol_splits(self) -> list[tuple[tuple[str, ...], str, str]]:
        """(train splits, valid split, test split) per fold, as heareval builds them."""
        return protocol_splits(str(self.metadata["split_mode"]), self.splits)

    def load(self, split: str) -> SplitData:
        """The split's embeddings (memory-mapped) and labels, opened once, then kept."""
        if split not in self._loaded:
            data = load_split(self.path, split)
            if len(data.embeddings) == 0:
                raise ValueError(f"{self.path}: split {split} has no items")
            self._loaded[split] = data
        return self._loaded[split]

    def multi_hot(self, data: SplitData) -> np.ndarray:
        """(N, C) float32 multi-hot targets of a split's rows, from the vocabulary."""
        index = {label: i for i, label in enumerate(self.labels)}
        out = np.zeros((len(data.labels), len(self.labels)), dtype=np.float32)
        for row, labels in enumerate(data.labels):
            for label in labels:
                if str(label) not in index:
                    raise ValueError(
                        f"{self.path}: split {data.split} row {row} has label {label!r} "
                        "that is not in labelvocabulary.csv"
                    )
                out[row, index[str(label)]] = 1.0
        return out

    def split_events(self, split: str) -> dict[str, list[dict[str, Any]]]:
        """The target events of an event split, {filename: [{label, start, end}]} (ms)."""
        return read_json(self.path / f"{split}.json")


def load_cached_task(path: Path | str) -> CachedTask:
    """Open a finished cache dir; ValueError if it is unfinished or its splits disagree on D."""
    path = Path(path)
    metadata = read_json(path / "task_metadata.json")
    for key in ("embedding_type", "prediction_type", "evaluation"):
        if key not in metadata:
            raise ValueError(f"{path / 'task_metadata.json'}: missing key {key!r}")
    splits, _ = metadata_splits(path / "task_metadata.json", metadata)
    dims = {}
    for split in splits:
        dims_path = path / f"{split}.embedding-dimensions.json"
        if not dims_path.exists():
            raise ValueError(f"{dims_path}: missing; is {path} a finished embedding cache?")
        rows, dim = read_json(dims_path)
        if rows:  # an empty split has no size; it fails later, when a protocol loads it
            dims[split] = int(dim)
    if len(set(dims.values())) > 1:
        raise ValueError(f"{path}: splits have different embedding sizes {dims}")
    labels = read_vocabulary(path / "labelvocabulary.csv")
    return CachedTask(path, metadata, labels, splits, {})


def cache_digest(path: Path | str) -> str:
    """The `content_digest` of the task a cache dir (or task folder) holds."""
    path = Path(path)
    splits, _ = metadata_splits(path / "task_metadata.json", read_json(path / "task_metadata.json"))
    return content_digest(path, splits)
