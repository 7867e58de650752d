"""Embedding any HEAR module into the resumable heareval-layout cache."""

from __future__ import annotations

import json
import os
import pickle
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import write_noise_task as write_task

from hear_wavjepa.evaluation import embed as embed_module
from hear_wavjepa.evaluation.embed import ContractError, ModuleSpec, embed_task
from hear_wavjepa.filelock import FileLock
from hear_wavjepa.hear_task import TaskError

TINY = ModuleSpec("hear_wavjepa", options={"preset": "tiny"})
NAIVE = ModuleSpec("hear_wavjepa.baselines.naive")


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("HEAR_WAVJEPA_HOME", str(tmp_path / "home"))


def test_scene_cache_has_heareval_names_shapes_and_dtypes(hear_task, tmp_path):
    task = hear_task(tmp_path / "toy-v0-full", duration=1.0)
    result = embed_task(TINY, task, progress=False)
    out = result.out_dir
    assert out.parent == tmp_path / "home" / "embeddings" / TINY.key()
    assert out.name.startswith("toy-v0-full-")
    assert result.clips == 6 and (out / ".done.embeddings").is_file()
    for name in ("task_metadata.json", "labelvocabulary.csv", "train.json"):
        assert (out / name).read_bytes() == (task / name).read_bytes()
    for split in ("train", "valid", "test"):
        n, d = json.loads((out / f"{split}.embedding-dimensions.json").read_text())
        assert (n, d) == (2, 192)
        raw = out / f"{split}.embeddings.npy"
        assert raw.stat().st_size == n * d * 4  # raw float32, no .npy header
        emb = np.memmap(raw, dtype=np.float32, mode="r", shape=(n, d))
        assert np.isfinite(emb).all()
        labels = pickle.loads((out / f"{split}.target-labels.pkl").read_bytes())
        assert sorted(map(tuple, labels)) == [("cat",), ("dog",)]


def test_event_cache_has_frame_rows_and_timestamps(hear_task, tmp_path):
    task = hear_task(
        tmp_path / "ev-v0-full", embedding="event", prediction="multilabel", duration=0.5
    )
    out = embed_task(NAIVE, task, progress=False).out_dir
    n, d = json.loads((out / "train.embedding-dimensions.json").read_text())
    assert d == 4096 and n == 2 * (1 + 8000 // 800)  # frames of both clips
    stamps = json.loads((out / "train.filename-timestamps.json").read_text())
    assert len(stamps) == n and {t for _, t in stamps} == {50.0 * i for i in range(11)}
    labels = pickle.loads((out / "train.target-labels.pkl").read_bytes())
    assert len(labels) == n
    # event [10, 200] ms: the frames at 50, 100, 150 and 200 ms carry the label in each clip
    assert sum(1 for lbl in labels if lbl == ["cat"]) == 2 * 4


def test_resume_after_a_kill_does_not_recompute_finished_clips(hear_task, tmp_path, monkeypatch):
    task = hear_task(tmp_path / "toy-v0-full", duration=1.0)
    calls = []
    real = embed_module.CacheWriter.write_scene

    def dying_write(self, split, name, embedding):
        if split == "valid":
            raise KeyboardInterrupt("simulated kill")
        calls.append(name)
        real(self, split, name, embedding)

    monkeypatch.setattr(embed_module.CacheWriter, "write_scene", dying_write)
    with pytest.raises(KeyboardInterrupt):
        embed_task(NAIVE, task, progress=False)
    out = embed_module.cache_dir(NAIVE, embed_module.load_task(task))
    finished = {p: p.stat().st_mtime_ns for p in (out / "train").glob("*.embedding.npy")}
    assert len(finished) == 2 and not (out / ".done.embeddings").exists()
    monkeypatch.setattr(embed_module.CacheWriter, "write_scene", real)
    result = embed_task(NAIVE, task, progress=False)
    assert result.clips == 4  # valid + test only
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert (out / ".done.embeddings").is_file()
    assert embed_task(NAIVE, task, progress=False).clips == 0


@pytest.mark.parametrize(
    ("defect", "message"),
    [
        ("size", r"shape \(2, 4095\), expected \(2, \.\.\., 4096\)"),
        ("dtype", "float32 tensor"),
        ("nan", "NaN or Inf"),
    ],
)
def test_contract_violations_name_module_clips_and_check(hear_task, tmp_path, defect, message):
    task = hear_task(tmp_path / "toy-v0-full")
    spec = ModuleSpec("defective_hear_module", options={"defect": defect})
    with pytest.raises(ContractError, match="defective_hear_module") as info:
        embed_task(spec, task, progress=False)
    assert "train_" in str(info.value)
    assert re.search(message, str(info.value))


def test_timestamps_that_disagree_with_frames(hear_task, tmp_path):
    task = hear_task(tmp_path / "ev-v0-full", embedding="event", prediction="multilabel")
    spec = ModuleSpec("defective_hear_module", options={"defect": "timestamps"})
    with pytest.raises(ContractError, match="timestamps of shape"):
        embed_task(spec, task, progress=False)


def test_a_failure_keeps_what_was_cached(hear_task, tmp_path, monkeypatch):
    task = hear_task(tmp_path / "toy-v0-full")
    embed_task(NAIVE, task, progress=False)
    out = embed_module.cache_dir(NAIVE, embed_module.load_task(task))
    before = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(ContractError):
        embed_task(
            ModuleSpec("defective_hear_module", options={"defect": "nan"}),
            task,
            out_dir=out.parent / "other",
            progress=False,
        )
    assert sorted(p.name for p in out.rglob("*")) == before


def test_bad_modules_and_tasks(hear_task, tmp_path):
    task = hear_task(tmp_path / "toy-v0-full")
    with pytest.raises(ContractError, match="no_such_module.*cannot be imported"):
        embed_task(ModuleSpec("no_such_module"), task, progress=False)
    with pytest.raises(ContractError, match="lacks"):
        embed_task(ModuleSpec("json"), task, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TaskError):
        embed_task(NAIVE, tmp_path / "empty", progress=False)
    with pytest.raises(ValueError, match="channels"):
        ModuleSpec("hear_wavjepa", channels="left")


def test_nan_samples_are_refused_naming_the_file(tmp_path):
    task = write_task(tmp_path / "toy-v0-full")
    wav = task / "16000" / "valid" / "valid_1.wav"
    audio = np.full(8000, 0.1, dtype=np.float32)
    audio[100] = np.nan
    soundfile.write(wav, audio, 16000, subtype="FLOAT")
    with pytest.raises(TaskError, match=r"valid_1\.wav: samples: 1 NaN or Inf value\(s\)"):
        embed_task(NAIVE, task, progress=False)


def test_a_rebuilt_task_gets_a_fresh_cache(tmp_path):
    task = write_task(tmp_path / "toy-v0-full")
    first = embed_task(NAIVE, task, progress=False).out_dir
    (task / "train.json").write_text(json.dumps({"train_0.wav": ["dog"], "train_1.wav": ["dog"]}))
    second = embed_task(NAIVE, task, progress=False)
    assert second.out_dir != first and second.clips == 6


def test_cache_keys_separate_options_and_weights(tmp_path):
    assert TINY.key() != ModuleSpec("hear_wavjepa", options={"preset": "tiny-nat"}).key()
    assert TINY.key() == ModuleSpec("hear_wavjepa", options={"preset": "tiny"}).key()
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    assert ModuleSpec("hear_wavjepa", str(a)).key() != ModuleSpec("hear_wavjepa", str(b)).key()
    assert NAIVE.channel_policy == "mean" and TINY.channel_policy == "native"


@pytest.mark.slow
def test_torchrun_shards_clips_and_matches_one_process(hear_task, tmp_path):
    task = hear_task(tmp_path / "toy-v0-full", nfolds=3)
    single = embed_task(NAIVE, task, out_dir=tmp_path / "single", progress=False).out_dir
    script = (
        "import sys; from hear_wavjepa.evaluation.embed import ModuleSpec, embed_task; "
        "embed_task(ModuleSpec('hear_wavjepa.baselines.naive'), sys.argv[1], sys.argv[2], "
        "progress=False)"
    )
    runner = tmp_path / "run.py"
    runner.write_text(script)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(port),
            str(runner),
            str(task),
            str(tmp_path / "sharded"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[:3000]
    sharded = tmp_path / "sharded"
    assert (sharded / ".done.embeddings").is_file()
    for split in ("fold00", "fold01", "fold02"):
        name = f"{split}.embeddings.npy"
        a = np.fromfile(sharded / name, dtype=np.float32)
        b = np.fromfile(single / name, dtype=np.float32)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)  # thread counts differ
        assert (sharded / f"{split}.target-labels.pkl").read_bytes() == (
            single / f"{split}.target-labels.pkl"
        ).read_bytes()


def test_cli_embed(hear_task, tmp_path, capsys):
    from hear_wavjepa.cli import main

    task = hear_task(tmp_path / "toy-v0-full")
    assert main(["embed", "--module", "hear_wavjepa.baselines.naive", "--task", str(task)]) == 0
    assert "6 clips" in capsys.readouterr().out
    assert Path(tmp_path / "home" / "embeddings").is_dir()


def test_a_locked_cache_waits_for_its_owner(tmp_path, capsys):
    task = write_task(tmp_path / "toy-v0-full")
    out = embed_module.cache_dir(NAIVE, embed_module.load_task(task))
    held = FileLock(embed_module.lock_path(out))
    held.acquire()  # as another process embedding this task would
    results = []
    worker = threading.Thread(
        target=lambda: results.append(embed_task(NAIVE, task, progress=False))
    )
    worker.start()
    worker.join(1.5)
    assert worker.is_alive() and not (out / ".done.embeddings").exists()
    held.release()
    worker.join(60)
    assert results[0].clips == 6 and (out / ".done.embeddings").is_file()
    assert "which embeds this task" in capsys.readouterr().out
    assert not embed_module.lock_path(out).exists()
