"""The online probe monitor and the frozen front end, on a tiny corpus and two tone tasks."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import torch
from test_training import TINY, overrides, run_in_process, write_corpus

from hear_wavjepa.checkpoint import read_checkpoint
from hear_wavjepa.hear_task import load_task
from hear_wavjepa.model.jepa import WavJEPA
from hear_wavjepa.training.loop import _param_groups
from hear_wavjepa.training.monitor import MonitorError, probe_subset, task_folders
from hear_wavjepa.training.recipe import load_recipe
from hear_wavjepa.training.state import list_checkpoints

EVERY = 2


@pytest.fixture(scope="module")
def home(module_home):
    return module_home


@pytest.fixture(scope="module")
def probe_tasks(home):
    from conftest import write_tone_task

    tvt = write_tone_task(home / "tones-v1-full", per_split=6)
    folds = write_tone_task(home / "tones_kfold-v1-full", folds=3, per_split=6, seconds=2.5)
    return f"{tvt}::{folds}"


def monitored(home, probe_tasks, name: str, *extra: str):
    corpus = home / "corpus"
    if not corpus.is_dir():
        write_corpus(corpus)
    settings = [f"monitor.every={EVERY}", f"monitor.tasks={probe_tasks}", "monitor.max_clips=16"]
    return load_recipe(TINY, [*overrides(corpus, name), *settings, *extra])


def read_metrics(path) -> list[dict[str, str]]:
    """The rows of a metrics.csv, as written (empty cells are "")."""
    with path.open() as f:
        return list(csv.DictReader(f))


def probe_rows(run) -> list[dict[str, str]]:
    return [r for r in read_metrics(run / "metrics.csv") if r["probe_s"]]


TIMINGS = ("probe_s", "elapsed_s", "crops_per_s")


def values(run) -> list[dict[str, str]]:
    """metrics.csv without the wall-clock columns."""
    return [
        {k: v for k, v in r.items() if k not in TIMINGS} for r in read_metrics(run / "metrics.csv")
    ]


@pytest.fixture(scope="module")
def run(home, probe_tasks):
    return run_in_process(monitored(home, probe_tasks, "monitored"))


@pytest.mark.slow
def test_probe_rows_at_step_zero_every_n_and_the_end(run):
    rows = probe_rows(run)
    assert [int(r["step"]) for r in rows] == [0, 2, 4]
    columns = [c for c in rows[0] if c.startswith("probe/")]
    expected = {
        f"probe/{e}/{p}/{t}"
        for e in ("student", "teacher")
        for p in ("knn", "linear")
        for t in ("tones", "tones_kfold")
    }
    assert set(columns) == expected
    for row in rows:
        assert row["loss"] == ""  # probe rows hold no training values
        assert all(0.0 <= float(row[c]) <= 1.0 for c in columns)
        assert float(row["probe_s"]) > 0
    # step 0: the teacher is the student's copy, so both score the same
    assert rows[0]["probe/student/knn/tones"] == rows[0]["probe/teacher/knn/tones"]
    training = [r for r in read_metrics(run / "metrics.csv") if r["loss"]]
    assert [int(r["step"]) for r in training] == [0, 1, 2, 3]
    choice = (run / "embedding-choice.md").read_text()
    assert "| teacher, mean |" in choice and "| student, last |" in choice


@pytest.mark.slow
def test_probe_scores_reach_tensorboard(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(run / "tensorboard"))
    board.Reload()
    scalars = board.Tags()["scalars"]
    assert "train/loss" in scalars
    events = board.Scalars("probe/teacher/knn/tones_kfold")
    assert [e.step for e in events] == [0, 2, 4]
    rows = probe_rows(run)
    assert [e.value for e in events] == pytest.approx(
        [float(r["probe/teacher/knn/tones_kfold"]) for r in rows]
    )


@pytest.mark.slow
def test_a_resumed_run_continues_the_same_probe_series(home, probe_tasks, run):
    copy = home / "runs" / "resumed"
    shutil.copytree(run, copy)
    for later in list_checkpoints(copy)[1:]:  # keep step 2 only: steps 3-4 are trained again
        shutil.rmtree(later)
    (copy / "model.safetensors").unlink()
    (copy / "embedding-choice.md").unlink()
    assert list_checkpoints(copy)[-1].name.endswith("2")
    run_in_process(resume=str(copy))
    assert values(copy) == values(run)
    assert (copy / "embedding-choice.md").read_text() == (run / "embedding-choice.md").read_text()


@pytest.mark.slow
def test_probes_leave_training_unchanged(home, probe_tasks, run):
    """The same recipe without the monitor trains the very same weights."""
    plain = run_in_process(monitored(home, probe_tasks, "unmonitored", "monitor.every=0"))
    a = read_checkpoint(plain / "model.safetensors")
    b = read_checkpoint(run / "model.safetensors")
    assert a.metadata["sha256"] == b.metadata["sha256"]
    assert not any(c.startswith("probe") for c in read_metrics(plain / "metrics.csv")[0])


def test_frozen_front_end_gets_no_gradient_and_no_optimizer_state():
    torch.manual_seed(0)
    model = WavJEPA(load_recipe(TINY).model_config())
    conv = list(model.encoder.frontend.stacks.parameters())
    groups = _param_groups(model, 0.0)
    assert all(not p.requires_grad for p in conv)
    in_optimizer = {id(p) for g in groups for p in g["params"]}
    assert in_optimizer and not in_optimizer & {id(p) for p in conv}
    optimizer = torch.optim.AdamW(groups, lr=1e-3)
    wave = torch.randn(2, 1, model.config.crop_samples)
    model.encoder(wave).pow(2).mean().backward()
    optimizer.step()
    assert all(p.grad is None for p in conv)
    assert not set(optimizer.state) & set(conv)
    assert all(p.grad is not None for p in model.encoder.transformer.parameters())


def test_scaled_front_end_keeps_a_second_group():
    model = WavJEPA(load_recipe(TINY).model_config())
    groups = _param_groups(model, 0.1)
    assert [g["lr_scale"] for g in groups] == [1.0, 0.1]
    assert all(p.requires_grad for p in model.encoder.frontend.stacks.parameters())


def test_probe_subset_is_fixed_and_keeps_every_label(home, probe_tasks):
    task = load_task(probe_tasks.split("::")[1])
    first, again = probe_subset(task, 8), probe_subset(task, 8)
    assert first == again
    for split, clips in first.items():
        assert len(clips) == 3 or len(clips) == 2, split  # 8 clips over 3 folds of 6
        assert {c.labels for c in clips} == {("high",), ("low",)}


def test_missing_mini_suite_is_one_clear_error(home, tmp_path, monkeypatch):
    monkeypatch.setenv("HEAR_WAVJEPA_HOME", str(tmp_path))
    with pytest.raises(MonitorError, match="tasks build-mini"):
        task_folders("")


def test_an_event_task_is_refused(home, tmp_path):
    from conftest import write_tone_task

    from hear_wavjepa.training.monitor import load_probe_task

    folder = write_tone_task(tmp_path / "events-v1-full", event=True)
    with pytest.raises(MonitorError, match="multiclass scene"):
        load_probe_task("events", folder, 8, 16_000)


def test_probe_embeddings_equal_the_hear_modules_and_share_the_front_end(home, probe_tasks):
    from hear_wavjepa.api import HearOptions, HearWavJEPA, get_scene_embeddings
    from hear_wavjepa.model.jepa import AudioEncoder
    from hear_wavjepa.training.monitor import SharedFrontEnd, embed, encoder_copy, load_probe_task

    torch.manual_seed(1)
    model = WavJEPA(load_recipe(TINY).model_config())
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.mul_(0.5)
    probe = load_probe_task("tones", probe_tasks.split("::")[1], 9, 40_000)
    scratch = AudioEncoder(model.config)
    scratch.frontend = SharedFrontEnd(scratch.frontend)
    student = embed(encoder_copy(model, "student", scratch), "last", probe)
    stored = len(scratch.frontend.outputs)
    teacher = embed(encoder_copy(model, "teacher", scratch), "last", probe)
    assert stored > 0 and len(scratch.frontend.outputs) == stored  # computed once for both
    hear = HearWavJEPA(model.encoder, HearOptions(), "test")
    for split, clips in probe.clips.items():
        wave = torch.from_numpy(np.stack(probe.audio[split]))
        expected = get_scene_embeddings(wave, hear).numpy()
        assert np.array_equal(student.load(split).embeddings, expected)
        assert not np.allclose(teacher.load(split).embeddings, expected)
        assert student.load(split).labels == [list(c.labels) for c in clips]
    with torch.no_grad():
        model.encoder.frontend.feature_proj.weight.add_(0.1)
    encoder_copy(model, "student", scratch)
    assert not scratch.frontend.outputs  # new front-end weights: nothing stored is reused


def test_pretrain_without_its_probe_tasks_stops_before_any_work(tmp_path, monkeypatch, capsys):
    from hear_wavjepa import cli

    monkeypatch.setenv("HEAR_WAVJEPA_HOME", str(tmp_path))
    corpus = write_corpus(tmp_path / "corpus")
    args = ["pretrain", "--config", str(TINY), f"data.path={corpus}", "train.name=x"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "monitor.every=0" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # no run, no decoded corpus
