"""The HEAR task-folder format (hear-preprocess layout, docs/hear-protocol.md): read, check, write.

A task folder holds `task_metadata.json`, `labelvocabulary.csv` (`idx,label`), one `<split>.json`
per split and `<sample_rate>/<split>/<file>.wav`. `load_task` checks all of it, every wav header
included (rate, frames, one channel count per task), and returns a frozen `Task`; every problem
raises `TaskError` (a ValueError) naming the file and what is wrong. `audit_task` adds warnings
(the same clip in two folds) and, deep, reads the samples (NaN or Inf refused, silence noted).
`write_task_files` and `write_wav` write the same layout (the builders and the tests use them):
JSON with sorted keys and PCM-16 wavs, so the same inputs give identical bytes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile

EmbeddingType = Literal["scene", "event"]
PredictionType = Literal["multiclass", "multilabel"]

SPLIT_MODES = ("trainvaltest", "new_split_kfold", "presplit_kfold")
TVT_SPLITS = ("train", "valid", "test")
_REQUIRED_KEYS = ("task_name", "embedding_type", "prediction_type", "split_mode", "evaluation")


class TaskError(ValueError):
    """A HEAR task folder is missing something or holds something malformed."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


@dataclass(frozen=True)
class Event:
    """One labelled event of an event-task clip; times in milliseconds from the clip start."""

    label: str
    start_ms: float
    end_ms: float


@dataclass(frozen=True)
class Clip:
    """One audio file of a split: `labels` for scene tasks, `events` for event tasks."""

    filename: str
    labels: tuple[str, ...]
    events: tuple[Event, ...]


@dataclass(frozen=True)
class Task:
    """A validated HEAR task folder: `labels` in idx order, `evaluation[0]` the primary metric."""

    path: Path
    task_name: str
    version: str
    mode: str
    embedding_type: EmbeddingType
    prediction_type: PredictionType
    split_mode: str
    nfolds: int | None
    splits: tuple[str, ...]
    sample_duration: float | None
    evaluation: tuple[str, ...]
    labels: tuple[str, ...]
    sample_rates: tuple[int, ...]
    clips: dict[str, tuple[Clip, ...]]
    metadata: dict[str, Any]

    @property
    def name(self) -> str:
        """The folder name, e.g. `esc50-v2.0.0-full`."""
        return self.path.name

    @property
    def primary_metric(self) -> str:
        return self.evaluation[0]

    def wav_path(self, split: str, clip: Clip, sample_rate: int = 16000) -> Path:
        """Where `clip` of `split` lies at `sample_rate` Hz."""
        return self.path / str(sample_rate) / split / clip.filename

    def protocol_splits(self) -> list[tuple[tuple[str, ...], str, str]]:
        """heareval's (train splits, valid split, test split) list; see `protocol_splits`."""
        return protocol_splits(self.split_mode, self.splits)


def protocol_splits(
    split_mode: str, splits: tuple[str, ...]
) -> list[tuple[tuple[str, ...], str, str]]:
    """heareval's (train splits, valid split, test split) list (docs/hear-protocol.md, Folds).

    trainvaltest gives one entry; k folds give, for each i, test fold i, valid fold (i+1) mod k
    and train the remaining folds, in split order.
    """
    if split_mode == "trainvaltest":
        return [(("train",), "valid", "test")]
    k = len(splits)
    out = []
    for i, test in enumerate(splits):
        valid = splits[(i + 1) % k]
        out.append((tuple(s for s in splits if s not in (test, valid)), valid, test))
    return out


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise TaskError(path, "file is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TaskError(path, f"malformed JSON ({err})") from err


def read_vocabulary(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        raise TaskError(path, "file is missing")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0]] != ["idx", "label"]:
        raise TaskError(path, f"header must be 'idx,label', got {rows[0] if rows else 'nothing'}")
    labels: dict[int, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise TaskError(path, f"line {line}: expected 2 columns, got {len(row)}")
        try:
            idx = int(row[0])
        except ValueError as err:
            raise TaskError(path, f"line {line}: idx {row[0]!r} is not an integer") from err
        if idx in labels:
            raise TaskError(path, f"line {line}: idx {idx} appears twice")
        labels[idx] = row[1]
    if sorted(labels) != list(range(len(labels))):
        raise TaskError(path, f"idx values must be 0..{len(labels) - 1} without gaps")
    if not labels:
        raise TaskError(path, "no labels")
    if len(set(labels.values())) != len(labels):
        raise TaskError(path, "a label appears twice")
    return tuple(labels[i] for i in range(len(labels)))


def metadata_splits(path: Path, meta: dict[str, Any]) -> tuple[tuple[str, ...], int | None]:
    mode = meta["split_mode"]
    if mode not in SPLIT_MODES:
        raise TaskError(path, f"split_mode {mode!r} is not one of {SPLIT_MODES}")
    if mode == "trainvaltest":
        expected: tuple[str, ...] = TVT_SPLITS
        nfolds = None
    else:
        nfolds = meta.get("nfolds")
        if not isinstance(nfolds, int) or isinstance(nfolds, bool) or nfolds < 3:
            raise TaskError(path, f"split_mode {mode} needs an integer nfolds >= 3, got {nfolds!r}")
        expected = tuple(f"fold{i:02d}" for i in range(nfolds))
    splits = meta.get("splits", list(expected))
    if tuple(splits) != expected:
        raise TaskError(
            path, f"splits {splits} do not match split_mode {mode}: expected {expected}"
        )
    return expected, nfolds


def _scene_labels(path: Path, name: str, value: Any, multiclass: bool) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TaskError(path, f"{name}: scene labels must be a list, got {type(value).__name__}")
    labels = tuple(str(v) for v in value)
    if multiclass and len(labels) != 1:
        raise TaskError(path, f"{name}: a multiclass clip needs exactly 1 label, got {len(labels)}")
    return labels


def _events(path: Path, name: str, value: Any, duration_ms: float | None) -> tuple[Event, ...]:
    if not isinstance(value, list):
        raise TaskError(path, f"{name}: events must be a list, got {type(value).__name__}")
    events = []
    for i, ev in enumerate(value):
        if not isinstance(ev, dict) or not {"label", "start", "end"} <= set(ev):
            raise TaskError(path, f"{name}: event {i} needs keys label, start, end; got {ev!r}")
        start, end = ev["start"], ev["end"]
        numeric = all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (start, end))
        if not numeric or not (math.isfinite(start) and math.isfinite(end)):
            raise TaskError(path, f"{name}: event {i} times must be finite numbers, got {ev!r}")
        if not 0 <= start < end:
            raise TaskError(path, f"{name}: event {i} needs 0 <= start < end (ms), got {ev!r}")
        if duration_ms is not None and (start >= duration_ms or end > duration_ms + 1e-6):
            raise TaskError(
                path, f"{name}: event {i} lies beyond the clip ({duration_ms} ms): {ev!r}"
            )
        events.append(Event(str(ev["label"]), float(start), float(end)))
    return tuple(events)


class _Headers:
    """Checks each wav header against the task: its rate folder, its frames against
    `sample_duration` (and against the same clip at other rates), one channel count per task."""

    def __init__(self, duration: float | None):
        self.duration = duration
        self.channels: dict[int, list[Path]] = {}  # channel count -> the wavs that have it
        self.seconds: dict[tuple[str, str], tuple[float, int, Path]] = {}

    def check(self, path: Path, rate: int, split: str, name: str) -> None:
        if not path.is_file():
            raise TaskError(path, "wav named in the split file is missing")
        try:
            info = soundfile.info(str(path))
        except (RuntimeError, soundfile.LibsndfileError) as err:
            raise TaskError(path, f"unreadable wav ({err})") from err
        if info.samplerate != rate:
            raise TaskError(path, f"sample rate {info.samplerate} Hz, expected {rate} Hz")
        if info.frames <= 0:
            raise TaskError(path, "frames: 0 (the wav holds no audio)")
        if self.duration is not None and abs(info.frames - round(self.duration * rate)) > 1:
            raise TaskError(
                path,
                f"frames: {info.frames}, expected {self.duration} s = "
                f"{round(self.duration * rate)} (sample_duration of task_metadata.json)",
            )
        self.channels.setdefault(info.channels, []).append(path)
        seconds = info.frames / rate
        other, other_rate, other_path = self.seconds.setdefault(
            (split, name), (seconds, rate, path)
        )
        if abs(seconds - other) > 2.0 / min(rate, other_rate):
            raise TaskError(
                path,
                f"frames: {info.frames} = {seconds:.4f} s, but {other_path} lasts {other:.4f} s",
            )

    def finish(self) -> None:
        """Refuse a task whose clips differ in channel count, naming a clip of the rarer count."""
        if len(self.channels) < 2:
            return
        usual = max(self.channels, key=lambda n: len(self.channels[n]))
        odd = min(self.channels, key=lambda n: len(self.channels[n]))
        raise TaskError(
            self.channels[odd][0],
            f"channels: {odd}, but {len(self.channels[usual])} other clip(s) of the task have "
            f"{usual} (e.g. {self.channels[usual][0]}); a task needs one channel count",
        )


def _read_metadata(meta_path: Path) -> dict[str, Any]:
    """`task_metadata.json`, its required keys and value types checked."""
    meta = read_json(meta_path)
    if not isinstance(meta, dict):
        raise TaskError(meta_path, "must hold a JSON object")
    missing = [k for k in _REQUIRED_KEYS if k not in meta]
    if missing:
        raise TaskError(meta_path, f"missing keys {missing}")
    if meta["embedding_type"] not in ("scene", "event"):
        raise TaskError(
            meta_path, f"embedding_type must be scene or event: {meta['embedding_type']!r}"
        )
    if meta["prediction_type"] not in ("multiclass", "multilabel"):
        raise TaskError(
            meta_path, f"prediction_type must be multiclass|multilabel: {meta['prediction_type']!r}"
        )
    evaluation = meta["evaluation"]
    if not isinstance(evaluation, list) or not evaluation:
        raise TaskError(meta_path, f"evaluation must be a non-empty list, got {evaluation!r}")
    duration = meta.get("sample_duration")
    numeric = isinstance(duration, (int, float)) and not isinstance(duration, bool)
    if duration is not None and not (numeric and math.isfinite(duration) and duration > 0):
        raise TaskError(
            meta_path,
            f"sample_duration must be a finite positive number of seconds or null, "
            f"got {duration!r}",
        )
    return meta


def _read_split(
    path: Path, split: str, meta: dict[str, Any], vocab: set[str], audio: _Headers | None,
    rates: tuple[int, ...],
) -> tuple[Clip, ...]:  # fmt: skip
    """The clips of `<split>.json`; each wav of `rates` must exist (`audio`: its header checked)."""
    split_path = path / f"{split}.json"
    table = read_json(split_path)
    if not isinstance(table, dict):
        raise TaskError(split_path, "must hold a JSON object {filename: labels}")
    if not table:
        raise TaskError(split_path, "the split has no clips")
    duration = meta.get("sample_duration")
    duration_ms = None if duration is None else float(duration) * 1000.0
    clips = []
    for name in sorted(table):
        if "/" in name or not name.endswith(".wav"):
            raise TaskError(split_path, f"{name!r} is not a bare .wav filename")
        if meta["embedding_type"] == "event":
            events = _events(split_path, name, table[name], duration_ms)
            used, scene = {e.label for e in events}, ()
        else:
            multiclass = meta["prediction_type"] == "multiclass"
            scene = _scene_labels(split_path, name, table[name], multiclass)
            used, events = set(scene), ()
        unknown = sorted(used - vocab)
        if unknown:
            raise TaskError(split_path, f"{name}: labels {unknown} are not in labelvocabulary.csv")
        for rate in rates:
            wav = path / str(rate) / split / name
            if audio is not None:
                audio.check(wav, rate, split, name)
            elif not wav.is_file():
                raise TaskError(wav, "wav named in the split file is missing")
        clips.append(Clip(name, scene, events))
    return tuple(clips)


def load_task(path: Path | str, sample_rate: int | None = None, check_audio: bool = True) -> Task:
    """Read and validate the HEAR task folder `path`.

    `sample_rate` names the audio rate whose wavs must all exist and be readable (default: every
    rate folder present). `check_audio` reads every wav's header (rate, frames, channels); with
    False only their existence is checked. Raises TaskError naming the file and the problem.
    """
    path = Path(path)
    if not path.is_dir():
        raise TaskError(path, "not a directory")
    meta_path = path / "task_metadata.json"
    if not meta_path.is_file():
        raise TaskError(meta_path, "not a HEAR task folder: task_metadata.json is missing")
    meta = _read_metadata(meta_path)
    splits, nfolds = metadata_splits(meta_path, meta)
    labels = read_vocabulary(path / "labelvocabulary.csv")
    rates = tuple(sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit()))
    if not rates:
        raise TaskError(path, "no <sample_rate>/ audio folder")
    if sample_rate is not None and sample_rate not in rates:
        raise TaskError(path / str(sample_rate), f"audio folder is missing (present: {rates})")
    wanted = rates if sample_rate is None else (sample_rate,)
    duration = meta.get("sample_duration")
    audio = _Headers(duration) if check_audio else None
    clips = {s: _read_split(path, s, meta, set(labels), audio, wanted) for s in splits}
    if audio is not None:
        audio.finish()
    return Task(
        path=path,
        task_name=str(meta["task_name"]),
        version=str(meta.get("version", "")),
        mode=str(meta.get("mode", "")),
        embedding_type=meta["embedding_type"],
        prediction_type=meta["prediction_type"],
        split_mode=meta["split_mode"],
        nfolds=nfolds,
        splits=splits,
        sample_duration=None if duration is None else float(duration),
        evaluation=tuple(str(m) for m in meta["evaluation"]),
        labels=labels,
        sample_rates=rates,
        clips=clips,
        metadata=meta,
    )


def dump_json(path: Path, obj: Any) -> None:
    """JSON as the task files are written: one-space indent, sorted keys, UTF-8, final newline."""
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def write_task_files(
    root: Path, metadata: dict[str, Any], labels: Sequence[str], tables: dict[str, dict[str, Any]]
) -> Path:
    """`task_metadata.json`, `labelvocabulary.csv` and one `<split>.json` per entry of `tables`
    ({split: {filename: labels or events}}) under `root`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    dump_json(root / "task_metadata.json", metadata)
    rows = ["idx,label"] + [f"{i},{label}" for i, label in enumerate(labels)]
    (root / "labelvocabulary.csv").write_text("\n".join(rows) + "\n")
    for split, table in tables.items():
        dump_json(root / f"{split}.json", table)
    return root


def wav_target(root: Path, rate: int, split: str, name: str) -> Path:
    """`<root>/<rate>/<split>/<name>`, its folder created."""
    folder = Path(root) / str(rate) / split
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def write_wav(root: Path, rate: int, split: str, name: str, audio: np.ndarray) -> Path:
    """One clip as a PCM-16 WAV at `<root>/<rate>/<split>/<name>`: `audio` is int16 samples, or
    floats in [-1, 1] that libsndfile converts."""
    path = wav_target(root, rate, split, name)
    soundfile.write(path, audio, rate, subtype="PCM_16", format="WAV")
    return path


def check_samples(path: Path | str, audio: np.ndarray) -> str | None:
    """Raise TaskError naming `path` if `audio` (frames, channels) holds NaN or Inf; return a
    warning if it is all zeros (silent), else None."""
    finite = np.isfinite(audio)
    if not finite.all():
        frame = int(np.argwhere(~finite)[0][0])
        raise TaskError(
            path, f"samples: {int((~finite).sum())} NaN or Inf value(s), the first at frame {frame}"
        )
    if not np.any(audio):
        return f"{path}: samples: the clip is silent (all zeros)"
    return None


def audit_task(task: Task, deep: bool = False) -> list[str]:
    """Warnings about a loaded task: the same clip in two splits (by name; with `deep` also by
    content). `deep` reads every wav's samples: NaN or Inf raise TaskError, silence warns."""
    kind = "folds" if task.nfolds else "splits"
    rate = task.sample_rates[0]
    warnings, first_split = [], {}
    for split in task.splits:
        for clip in task.clips[split]:
            first = first_split.setdefault(clip.filename, split)
            if first != split:
                twin = task.path / str(rate) / first / clip.filename
                warnings.append(
                    f"{twin} and {task.wav_path(split, clip, rate)}: the same clip in two {kind}"
                )
    if deep:
        warnings += _audit_samples(task, kind)
    return warnings


def _audit_samples(task: Task, kind: str) -> list[str]:
    """Read every wav: non-finite samples raise, silence and equal audio in two splits warn."""
    warnings: list[str] = []
    seen: dict[str, tuple[str, Path]] = {}
    for rate in task.sample_rates:
        for split in task.splits:
            for clip in task.clips[split]:
                path = task.wav_path(split, clip, rate)
                try:
                    audio, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
                except (RuntimeError, soundfile.LibsndfileError) as err:
                    raise TaskError(path, f"unreadable wav ({err})") from err
                silent = check_samples(path, audio)
                if silent:
                    warnings.append(silent)
                if silent or rate != task.sample_rates[0]:
                    continue
                digest = hashlib.sha256(audio.tobytes()).hexdigest()
                twin_split, twin = seen.setdefault(digest, (split, path))
                if twin_split != split and twin.name != path.name:
                    warnings.append(f"{twin} and {path}: the same audio in two {kind}")
    return warnings
