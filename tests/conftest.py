"""Shared fixtures: HEAR task folders (written with the package's own task-folder writer), tree
digests, the tiny scene banks, and the `requires_synth` marker. Test modules that need a factory
at import time (e.g. inside a subprocess helper) import the plain functions from here.

Markers (pyproject.toml): `slow` on tests that take more than ~5 s on 2 cores (the fast loop is
`./nox.sh -s tests -- -m "not slow"`); `requires_synth` skips a test when espeak-ng or fluidsynth
(or, unless `corpus_soundfont=False`, the corpus soundfont) is missing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hear_wavjepa.audio import SAMPLE_RATE
from hear_wavjepa.hear_task import write_task_files, write_wav
from hear_wavjepa.scenes.naturalize import NatConfig
from hear_wavjepa.scenes.noise import NoiseBankConfig, load_noise_bank
from hear_wavjepa.scenes.render import SceneConfig
from hear_wavjepa.scenes.rooms import RoomBankConfig, load_room_bank

#: tiny scene banks (4 rooms, 8 noise clips), built once per test session
TINY_NAT = NatConfig(
    RoomBankConfig(n_train=2, n_test=2, positions=3, rt60=(0.15, 0.25), width=(3, 4),
                   depth=(3, 4), height=(2.5, 2.8), rir_seconds=0.25, rays=500),
    NoiseBankConfig(seconds=2.0, coloured=6, babble=2, talkers=(2, 3), test_fraction=0.5),
    SceneConfig(noise_sources=(1, 2)),
)  # fmt: skip
TVT = ["train", "valid", "test"]


def _metadata(task_name, version, embedding, prediction, splits, duration, evaluation) -> dict:
    meta = {
        "task_name": task_name,
        "version": version,
        "mode": "full",
        "embedding_type": embedding,
        "prediction_type": prediction,
        "split_mode": "trainvaltest" if splits == TVT else "new_split_kfold",
        "splits": splits,
        "sample_duration": duration,
        "evaluation": list(evaluation),
    }
    if splits != TVT:
        meta["nfolds"] = len(splits)
    return meta


def write_noise_task(
    root: Path,
    *,
    embedding: str = "scene",
    prediction: str = "multiclass",
    nfolds: int | None = None,
    labels: tuple[str, ...] = ("cat", "dog"),
    table: dict[str, dict] | None = None,
    duration: float = 0.5,
) -> Path:
    """A valid HEAR task folder with 2 clips of noise per split; `table` replaces some splits'
    contents ({split: {filename: labels or events}})."""
    splits = TVT if nfolds is None else [f"fold{i:02d}" for i in range(nfolds)]
    if embedding == "event":
        value = [{"label": labels[0], "start": 10.0, "end": 200.0}]
        default = {s: {f"{s}_{i}.wav": value for i in range(2)} for s in splits}
    else:
        default = {s: {f"{s}_{i}.wav": [labels[i % len(labels)]] for i in range(2)} for s in splits}
    table = {**default, **(table or {})}
    root.mkdir(parents=True)
    meta = _metadata("toy", "v0", embedding, prediction, splits, duration, ("top1_acc", "mAP"))
    write_task_files(root, meta, labels, table)
    rng = np.random.default_rng(0)
    for split in splits:
        (root / str(SAMPLE_RATE) / split).mkdir(parents=True)
        for name in table[split]:
            audio = (0.1 * rng.standard_normal(round(duration * SAMPLE_RATE))).astype(np.float32)
            write_wav(root, SAMPLE_RATE, split, name, audio)
    return root


def write_mini_pair(root: Path) -> Path:
    """Two small tasks under the folder names of mini suite tasks (one TVT, one 3-fold), 6 clips
    per split and 3 labels; returns `root`."""
    labels = ("a", "b", "c")
    table = {s: {f"{s}_{i}.wav": [labels[i % 3]] for i in range(6)} for s in TVT}
    write_noise_task(root / "mini_keywords-v1-full", labels=labels, table=table)
    folds = {f"fold{k:02d}": {f"f{k}_{i}.wav": [labels[i % 3]] for i in range(6)} for k in range(3)}
    write_noise_task(root / "mini_drums-v1-full", labels=labels, nfolds=3, table=folds)
    return root


def remove_clips(task: Path, split: str, count: int) -> None:
    """Drop the last `count` clips of `split` from a task folder (split JSON and WAV files)."""
    table = json.loads((task / f"{split}.json").read_text())
    for name in list(table)[-count:]:
        del table[name]
        for wav in task.glob(f"*/{split}/{name}"):
            wav.unlink()
    (task / f"{split}.json").write_text(json.dumps(table))


def write_tone_task(
    folder: Path, *, rate=16000, folds=0, event=False, per_split=3, seconds=1.0
) -> Path:
    """A HEAR task folder with tones in noise (low: 300 Hz, high: 2 kHz) at `rate` Hz: scene
    multiclass (TVT or k folds) or event."""
    splits = [f"fold{i:02d}" for i in range(folds)] if folds else TVT
    labels = ("high", "low")
    rng = np.random.default_rng(len(folder.name))
    n = round(seconds * rate)
    t = np.arange(n) / rate
    tables: dict[str, dict] = {}
    folder.mkdir(parents=True)
    for split in splits:
        (folder / str(rate) / split).mkdir(parents=True)
        tables[split] = {}
        for i in range(per_split):
            label = ["low", "high"][i % 2]
            tone = 0.3 * np.sin(2 * np.pi * (300 if label == "low" else 2000) * t)
            name = f"{split}-{i}.wav"
            write_wav(folder, rate, split, name, tone + 0.01 * rng.standard_normal(n))
            if event:
                tables[split][name] = [{"label": label, "start": 100.0, "end": seconds * 1000 - 50}]
            else:
                tables[split][name] = [label]
    embedding, prediction = ("event", "multilabel") if event else ("scene", "multiclass")
    meta = _metadata(folder.name, "v1", embedding, prediction, splits, seconds, ("top1_acc",))
    write_task_files(folder, meta, labels, tables)
    return folder


def digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file below `root`: equal dicts mean identical trees."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def module_home(tmp_path_factory):
    """A fresh $HEAR_WAVJEPA_HOME shared by the tests of one module."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("home")
        mp.setenv("HEAR_WAVJEPA_HOME", str(path))
        yield path


@pytest.fixture
def hear_task():
    """`hear_task(root, embedding=, prediction=, nfolds=, labels=, table=, duration=)`: a small
    valid HEAR task folder of noise clips."""
    return write_noise_task


@pytest.fixture
def tone_task():
    """`tone_task(folder, rate=, folds=, event=, per_split=, seconds=)`: tones in noise."""
    return write_tone_task


@pytest.fixture
def tree_digest():
    """`tree_digest(root)`: {relative path: sha256} of every file below `root`."""
    return digest


@pytest.fixture(scope="session")
def tiny_nat() -> NatConfig:
    return TINY_NAT


@pytest.fixture(scope="session")
def scene_home(tmp_path_factory) -> Path:
    """A $HEAR_WAVJEPA_HOME whose `scenes/` holds the tiny banks, built once per session."""
    root = tmp_path_factory.getbasetemp() / "home"
    load_room_bank(TINY_NAT.rooms, workers=1, root=root / "scenes")
    load_noise_bank(TINY_NAT.noise, root=root / "scenes")
    return root


def synth_tools_missing(corpus_soundfont: bool = True) -> str | None:
    """Why the offline builders cannot run here, or None."""
    from hear_wavjepa.builders import synthetic_corpus

    if shutil.which("espeak-ng") is None:
        return "espeak-ng is not installed (tasks/apt-packages.txt)"
    try:
        import fluidsynth  # noqa: F401
    except ImportError:
        return "pyfluidsynth / libfluidsynth3 is not installed"
    if corpus_soundfont and not synthetic_corpus.SOUNDFONT.is_file():
        font, package = synthetic_corpus.SOUNDFONT, synthetic_corpus.SOUNDFONT_PACKAGE
        return f"{font} missing: apt-get install {package}"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("requires_synth")
    if marker is not None:
        reason = synth_tools_missing(**marker.kwargs)
        if reason is not None:
            pytest.skip(reason)
