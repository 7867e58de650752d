"""The HEAR task-folder reader/validator on small hand-made folders, and the build's refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from conftest import digest as tree_digest
from conftest import write_noise_task as write_task

from hear_wavjepa.audio import SAMPLE_RATE as SR
from hear_wavjepa.builders.mini.build import build_mini
from hear_wavjepa.cli import main
from hear_wavjepa.hear_task import TaskError, audit_task, load_task


def test_reads_a_scene_task(hear_task, tmp_path):
    task = load_task(hear_task(tmp_path / "toy-v0-full"), sample_rate=SR)
    assert task.name == "toy-v0-full"
    assert task.labels == ("cat", "dog")
    assert task.primary_metric == "top1_acc"
    assert task.splits == ("train", "valid", "test")
    assert [c.labels for c in task.clips["train"]] == [("cat",), ("dog",)]
    assert task.sample_rates == (SR,)
    assert task.wav_path("test", task.clips["test"][0]).is_file()
    assert task.protocol_splits() == [(("train",), "valid", "test")]


def test_kfold_protocol_splits_follow_heareval(hear_task, tmp_path):
    task = load_task(hear_task(tmp_path / "k", nfolds=5))
    folds = [f"fold{i:02d}" for i in range(5)]
    assert task.nfolds == 5 and task.splits == tuple(folds)
    splits = task.protocol_splits()
    assert len(splits) == 5
    assert splits[0] == (("fold02", "fold03", "fold04"), "fold01", "fold00")
    assert splits[4] == (("fold01", "fold02", "fold03"), "fold00", "fold04")
    for train, valid, test in splits:
        assert sorted([*train, valid, test]) == folds


def test_reads_an_event_task(hear_task, tmp_path):
    task = load_task(hear_task(tmp_path / "ev", embedding="event", prediction="multilabel"))
    clip = task.clips["train"][0]
    assert clip.labels == () and len(clip.events) == 1
    assert (clip.events[0].label, clip.events[0].start_ms, clip.events[0].end_ms) == (
        "cat",
        10,
        200,
    )


def test_error_is_a_value_error_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match="task_metadata.json"):
        load_task(tmp_path)


def test_not_a_task_folder(tmp_path):
    (tmp_path / "some.txt").write_text("hello")
    with pytest.raises(TaskError, match="not a HEAR task folder"):
        load_task(tmp_path)
    with pytest.raises(TaskError, match="not a directory"):
        load_task(tmp_path / "some.txt")


def test_malformed_metadata(hear_task, tmp_path):
    root = hear_task(tmp_path / "t")
    (root / "task_metadata.json").write_text("{not json")
    with pytest.raises(TaskError, match=r"task_metadata.json: malformed JSON"):
        load_task(root)
    (root / "task_metadata.json").write_text(json.dumps({"task_name": "x"}))
    with pytest.raises(TaskError, match="missing keys"):
        load_task(root)


def test_bad_split_mode_and_folds(hear_task, tmp_path):
    root = hear_task(tmp_path / "t")
    meta = json.loads((root / "task_metadata.json").read_text())
    meta["split_mode"] = "new_split_kfold"
    (root / "task_metadata.json").write_text(json.dumps(meta))
    with pytest.raises(TaskError, match="nfolds"):
        load_task(root)


def test_bad_vocabulary(hear_task, tmp_path):
    root = hear_task(tmp_path / "t")
    (root / "labelvocabulary.csv").write_text("index,name\n0,cat\n")
    with pytest.raises(TaskError, match=r"labelvocabulary.csv: header"):
        load_task(root)
    (root / "labelvocabulary.csv").write_text("idx,label\n0,cat\n2,dog\n")
    with pytest.raises(TaskError, match="without gaps"):
        load_task(root)


def test_split_names_a_missing_wav(hear_task, tmp_path):
    root = hear_task(tmp_path / "t")
    (root / "16000" / "valid" / "valid_1.wav").unlink()
    with pytest.raises(TaskError, match=r"valid_1.wav: wav named in the split file is missing"):
        load_task(root)
    with pytest.raises(TaskError, match="missing"):
        load_task(root, check_audio=False)


def test_unreadable_wav(hear_task, tmp_path):
    root = hear_task(tmp_path / "t")
    (root / "16000" / "test" / "test_0.wav").write_bytes(b"RIFF????WAVEnot really audio")
    with pytest.raises(TaskError, match=r"test_0.wav: unreadable wav"):
        load_task(root)


def test_wrong_sample_rate_folder_and_duration(hear_task, tmp_path):
    root = hear_task(tmp_path / "t")
    with pytest.raises(TaskError, match="48000: audio folder is missing"):
        load_task(root, sample_rate=48000)
    soundfile.write(root / "16000" / "train" / "train_0.wav", np.zeros(100), SR)
    with pytest.raises(TaskError, match="expected 0.5 s"):
        load_task(root)


def test_empty_split(hear_task, tmp_path):
    with pytest.raises(TaskError, match=r"valid.json: the split has no clips"):
        load_task(hear_task(tmp_path / "t", table={"valid": {}}))


def test_label_not_in_vocabulary(hear_task, tmp_path):
    root = hear_task(tmp_path / "t", table={"train": {"a.wav": ["cow"]}})
    with pytest.raises(TaskError, match=r"train.json: a.wav: labels \['cow'\] are not in"):
        load_task(root)


def test_multiclass_needs_exactly_one_label(hear_task, tmp_path):
    table = {"train": {"a.wav": ["cat", "dog"]}}
    with pytest.raises(TaskError, match="exactly 1 label"):
        load_task(hear_task(tmp_path / "t", table=table))
    multilabel = hear_task(tmp_path / "m", table=table, prediction="multilabel")
    assert load_task(multilabel).clips["train"][0].labels == ("cat", "dog")


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ({"label": "cat", "start": 300.0, "end": 100.0}, "start < end"),
        ({"label": "cat", "start": 100.0, "end": 900.0}, "beyond the clip"),
        ({"label": "cat", "start": "0", "end": 100.0}, "finite numbers"),
        ({"label": "cat", "start": 0.0}, "needs keys"),
        ({"label": "cow", "start": 0.0, "end": 100.0}, "not in labelvocabulary"),
    ],
)
def test_invalid_events(hear_task, tmp_path, event, problem):
    table = {"train": {"a.wav": [event]}}
    root = hear_task(tmp_path / "t", embedding="event", prediction="multilabel", table=table)
    with pytest.raises(TaskError, match=problem):
        load_task(root)


def test_build_refuses_non_empty_out_and_touches_nothing(hear_task, tree_digest, tmp_path):
    out = tmp_path / "suite"
    hear_task(out / "toy-v0-full")
    (out / "notes.txt").write_text("mine")
    before = tree_digest(out)
    with pytest.raises(ValueError, match="not empty; pass --overwrite"):
        build_mini(out, scale=0.01, progress=False)
    with pytest.raises(ValueError, match="unknown task"):
        build_mini(out, scale=0.01, overwrite=True, only=["no_such_task"], progress=False)
    assert tree_digest(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "toy-v0-full"]


def test_failed_build_damages_nothing_already_written(hear_task, tree_digest, tmp_path):
    """A task whose builder fails leaves the tasks already in OUT as they were, and no temp dir."""
    recipe = tmp_path / "broken.yaml"
    recipe.write_text(
        "version: v1\ntasks:\n"
        "  - {task_name: toy, short: t, builder: keywords, embedding: scene,\n"
        "     prediction: multiclass, evaluation: [top1_acc], split: trainvaltest,\n"
        "     duration: 1.0, clips: 10, params: {}}\n"
    )
    out = tmp_path / "suite"
    hear_task(out / "toy-v1-full")
    before = tree_digest(out)
    with pytest.raises(KeyError):
        build_mini(out, scale=1.0, overwrite=True, recipe_path=recipe, progress=False)
    assert tree_digest(out) == before
    assert [p.name for p in out.iterdir()] == ["toy-v1-full"]


def test_cli_check_and_refusal(tmp_path, capsys):
    root = write_task(tmp_path / "toy-v0-full", nfolds=3)
    assert main(["tasks", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "ok toy-v0-full: scene/multiclass, 2 labels, top1_acc, fold00=2" in out
    before = tree_digest(tmp_path)
    assert main(["tasks", "build-mini", str(tmp_path), "--scale", "0.01"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hear-wavjepa tasks build-mini: error: ") and "not empty" in err
    assert main(["tasks", "build-mini", str(tmp_path), "--overwrite", "--only", "nope"]) == 2
    assert "--only: unknown task(s) ['nope']" in capsys.readouterr().err
    assert tree_digest(tmp_path) == before


def _rewrite_wav(path, audio, subtype="PCM_16"):
    soundfile.write(path, audio, SR, subtype=subtype)


def _set_meta(root, **changes):
    meta = json.loads((root / "task_metadata.json").read_text())
    meta.update(changes)
    (root / "task_metadata.json").write_text(json.dumps(meta))  # NaN is written as NaN


def test_stereo_wav_in_a_mono_task_names_the_file(tmp_path, capsys):
    root = write_task(tmp_path / "t")
    stereo = root / "16000" / "valid" / "valid_1.wav"
    _rewrite_wav(stereo, np.zeros((8000, 2), np.float32))
    with pytest.raises(TaskError, match=r"valid_1\.wav: channels: 2, but 5 other clip\(s\)"):
        load_task(root)
    assert main(["tasks", "check", str(root)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and captured.out == ""
    assert lines[0].startswith(f"hear-wavjepa tasks check: error: {stereo}: channels: 2")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0, -1.0, True, "0.5"])
def test_sample_duration_must_be_finite_positive(tmp_path, bad, capsys):
    root = write_task(tmp_path / "t")
    _set_meta(root, sample_duration=bad)
    with pytest.raises(TaskError, match=r"task_metadata.json: sample_duration must be a finite"):
        load_task(root)
    assert main(["tasks", "check", str(root)]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and f"{root / 'task_metadata.json'}: sample_duration" in line


def test_frames_are_checked_against_other_rates_and_emptiness(tmp_path):
    root = write_task(tmp_path / "t")
    _set_meta(root, sample_duration=None)
    for wav in sorted((root / "16000").rglob("*.wav")):
        low = root / "8000" / wav.parent.name / wav.name
        low.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(low, np.zeros(4000, np.float32), 8000)
    assert load_task(root).sample_rates == (8000, 16000)
    soundfile.write(root / "8000" / "test" / "test_1.wav", np.zeros(3000, np.float32), 8000)
    with pytest.raises(
        TaskError, match=r"test_1\.wav: frames: 8000 = 0.5000 s, but .*lasts 0.3750"
    ):
        load_task(root)
    assert load_task(root, sample_rate=16000).sample_rates == (8000, 16000)
    _rewrite_wav(root / "16000" / "train" / "train_0.wav", np.zeros(0, np.float32))
    with pytest.raises(TaskError, match=r"train_0\.wav: frames: 0"):
        load_task(root, sample_rate=16000)


def test_nan_samples_are_found_by_deep_check_naming_the_file(tmp_path, capsys):
    root = write_task(tmp_path / "t")
    bad = root / "16000" / "test" / "test_0.wav"
    audio = np.full(8000, 0.1, np.float32)
    audio[123] = np.nan
    _rewrite_wav(bad, audio, subtype="FLOAT")
    task = load_task(root)  # the header is fine
    assert audit_task(task) == []
    with pytest.raises(
        TaskError, match=r"test_0\.wav: samples: 1 NaN or Inf value\(s\), the first at frame 123"
    ):
        audit_task(task, deep=True)
    assert main(["tasks", "check", str(root)]) == 0
    assert main(["tasks", "check", "--deep", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    problem = "samples: 1 NaN or Inf value(s), the first at frame 123"
    assert err == f"hear-wavjepa tasks check: error: {bad}: {problem}"


def test_same_clip_in_two_folds_is_a_warning_naming_both(tmp_path, capsys):
    table = {"fold00": {"a.wav": ["cat"], "b.wav": ["dog"]}, "fold02": {"a.wav": ["cat"]}}
    root = write_task(tmp_path / "k", nfolds=3, table=table)
    first, second = (root / "16000" / f / "a.wav" for f in ("fold00", "fold02"))
    assert audit_task(load_task(root)) == [f"{first} and {second}: the same clip in two folds"]
    assert main(["tasks", "check", str(root)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("ok k: ")
    assert captured.err == (
        f"hear-wavjepa tasks check: warning: {first} and {second}: the same clip in two folds\n"
    )


def test_deep_check_warns_of_silence_and_equal_audio_in_two_folds(tmp_path):
    root = write_task(tmp_path / "k", nfolds=3)
    silent = root / "16000" / "fold01" / "fold01_0.wav"
    _rewrite_wav(silent, np.zeros(8000, np.float32))
    copy = root / "16000" / "fold02" / "fold02_1.wav"
    copy.write_bytes((root / "16000" / "fold00" / "fold00_0.wav").read_bytes())
    task = load_task(root)
    assert audit_task(task) == []
    assert audit_task(task, deep=True) == [
        f"{silent}: samples: the clip is silent (all zeros)",
        f"{root / '16000' / 'fold00' / 'fold00_0.wav'} and {copy}: the same audio in two folds",
    ]
