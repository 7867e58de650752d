"""User errors of the CLI: refused before any work, one line `hear-wavjepa CMD: error: ...`, exit 2,
nothing written; `--debug` shows the traceback, and a real bug always does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import digest as tree_digest
from conftest import write_noise_task as write_task

from hear_wavjepa import cli
from hear_wavjepa.audio import SAMPLE_RATE as SR
from hear_wavjepa.cli import main
from hear_wavjepa.hear_task import TaskError

CLI = Path(sys.executable).parent / "hear-wavjepa"
NAIVE = "hear_wavjepa.baselines.naive"
TASK = "mini_keywords-v1-full"  # a folder name of the mini suite


@pytest.fixture()
def work(tmp_path, monkeypatch):
    """tmp_path holding a tasks dir with one small mini-suite task; $HEAR_WAVJEPA_HOME below it."""
    monkeypatch.setenv("HEAR_WAVJEPA_HOME", str(tmp_path / "home"))
    write_task(tmp_path / "tasks" / TASK, labels=("a", "b"))
    (tmp_path / "empty").mkdir()
    return tmp_path


def _eval(work: Path, *extra: str) -> list[str]:
    return ["eval", "--suite", "mini", "--tasks-dir", str(work / "tasks"),
            "--results-dir", str(work / "results"), "--protocols", "knn", *extra]  # fmt: skip


def _one_error_line(err: str, command: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"hear-wavjepa {command}: error: "), err
    return lines[0]


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HEAR_WAVJEPA_HOME": str(home)}
    return subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=300)


def test_grid_points_zero_is_refused_before_any_work(work):
    before = tree_digest(work)
    done = _run(_eval(work, "--models", NAIVE, "--grid-points", "0"), work / "home")
    assert done.returncode == 2
    line = _one_error_line(done.stderr, "eval")
    assert line.endswith("argument --grid-points: must be >= 1, got 0")
    assert tree_digest(work) == before
    assert not (work / "results").exists() and not (work / "home").exists()


@pytest.mark.slow
def test_user_error_is_one_line_and_debug_shows_the_traceback(work):
    args = _eval(work, "--models", "no_such_module")
    done = _run(args, work / "home")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    line = _one_error_line(done.stderr, "eval")
    assert "HEAR module 'no_such_module' cannot be imported" in line
    for debug in (["--debug", *args], [*args, "--debug"]):
        shown = _run(debug, work / "home")
        assert shown.returncode == 1
        assert "Traceback" in shown.stderr and "ContractError" in shown.stderr
    assert not (work / "results").exists() and not (work / "home").exists()


def test_a_stereo_wav_stops_eval_and_embed_naming_the_file(work, capsys):
    stereo = work / "tasks" / TASK / str(SR) / "test" / "test_1.wav"
    soundfile.write(stereo, np.zeros((8000, 2), np.float32), SR)
    before = tree_digest(work)
    embed = ["embed", "--module", NAIVE, "--task", str(work / "tasks" / TASK)]
    for args, command in ((_eval(work, "--models", NAIVE), "eval"), (embed, "embed")):
        assert main(args) == 2
        line = _one_error_line(capsys.readouterr().err, command)
        assert line.endswith(f"error: {stereo}: channels: 2, but 5 other clip(s) of the task have "
                             f"1 (e.g. {stereo.parent.parent / 'train' / 'train_0.wav'}); "
                             "a task needs one channel count")  # fmt: skip
    assert tree_digest(work) == before
    assert not (work / "results").exists() and not (work / "home").exists()


def test_a_nan_sample_duration_stops_eval_naming_the_file(work, capsys):
    meta_path = work / "tasks" / TASK / "task_metadata.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "sample_duration": float("nan")}))
    assert main(_eval(work, "--models", NAIVE)) == 2
    line = _one_error_line(capsys.readouterr().err, "eval")
    assert line.endswith(f"{meta_path}: sample_duration must be a finite positive number of "
                         "seconds or null, got nan")  # fmt: skip
    assert not (work / "results").exists() and not (work / "home").exists()


USER_ERRORS = [
    ("eval", ["--suite", "esc"], "unknown suite(s) ['esc']"),
    ("eval", ["--suite", "hear", "--models", NAIVE], "suite hear needs --tasks-dir"),
    ("eval", ["--suite", "mini", "--tasks-dir", "{tmp}/missing"], "missing: not a directory"),
    ("eval", ["--suite", "mini", "--tasks-dir", "{tmp}/empty"], "holds none of the mini tasks"),
    ("eval", ["--suite", "mini", "--protocols", "svm"], "--protocols 'svm': choose from"),
    ("eval", ["--suite", "mini", "--models", "{tmp}/x.safetensors"], "checkpoint not found"),
    ("eval", ["--suite", "mini", "--models", 'hear_wavjepa:{"preset": "huge"}'], "'huge'"),
    ("eval", ["--suite", "mini", "--models", 'hear_wavjepa:{"nope": 1}'], "options ['nope']"),
    ("embed", ["--task", "{tmp}/tasks/" + TASK, "--options", "{bad"], "--options is not valid"),
    ("embed", ["--task", "{tmp}/tasks/" + TASK, "--options", "[1]"], "must be a JSON object"),
    ("embed", ["--task", "{tmp}/a", "{tmp}/b", "--out", "{tmp}/c"], "--out names one cache"),
    ("embed", ["--task", "{tmp}/tasks/" + TASK, "--device", "warp:9"], "--device 'warp:9'"),
    ("embed", ["--task", "{tmp}/tasks/" + TASK, "--model", "{tmp}/w.pt"], "w.pt: weights file"),
    ("embed", ["--task", "{tmp}/missing"], "missing: not a directory"),
    ("score", ["--cache", "{tmp}/empty"], "--cache: "),
    ("score", ["--cache", "{tmp}/empty", "--protocols", "svm"], "--protocols 'svm'"),
    ("tables", ["--results-dir", "{tmp}/missing"], "missing: not a directory"),
    ("pretrain", [], "give --config RECIPE.yaml"),
    ("pretrain", ["--resume", "no_such_run"], "--resume: no_such_run: not a pretraining run"),
    ("pretrain", ["--config", "{tmp}/none.yaml"], "none.yaml: no such recipe file"),
    ("convert", ["{tmp}/none.ckpt", "{tmp}/out.safetensors"], "none.ckpt"),
    ("naturalize", ["{tmp}/missing"], "missing: not a directory"),
    ("naturalize", ["{tmp}/tasks/" + TASK, "{tmp}/tasks/" + TASK], "must differ"),
]


@pytest.mark.parametrize(("command", "args", "fragment"), USER_ERRORS)
def test_user_errors_are_one_line_exit_2_and_write_nothing(work, capsys, command, args, fragment):
    argv = [command, *(a.replace("{tmp}", str(work)) for a in args)]
    before = tree_digest(work)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert fragment.replace("{tmp}", str(work)) in _one_error_line(captured.err, command)
    assert tree_digest(work) == before and not (work / "home").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--suite", "mini", "--grid-points", "0"],
        ["eval", "--suite", "mini", "--grid", "huge"],
        ["score", "--cache", "x", "--knn-temperature", "0"],
        ["score", "--cache", "x", "--knn-k", "two"],
        ["embed", "--task", "x", "--channels", "left"],
        ["tasks", "build-mini", "--scale", "-1"],
        ["tasks", "check", "x", "--sample-rate", "0"],
    ],
)
def test_argument_errors_are_one_line_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith("hear-wavjepa ") and ": error: argument " in line


def test_a_real_bug_keeps_its_traceback(monkeypatch, tmp_path, capsys):
    help_text, configure, _ = cli.COMMANDS["info"]

    def broken(args):
        raise ValueError("a bug, not a user error")

    monkeypatch.setitem(cli.COMMANDS, "info", (help_text, configure, broken))
    with pytest.raises(ValueError, match="a bug"):
        main(["info"])
    missing = ["tasks", "check", str(tmp_path / "missing")]
    assert main(missing) == 2  # a user error ...
    assert "missing: not a directory" in capsys.readouterr().err
    with pytest.raises(TaskError, match="not a directory"):  # ... with its traceback on --debug
        main(["--debug", *missing])


def test_tasks_check_reports_each_bad_folder_and_checks_the_rest(work, capsys):
    good = work / "tasks" / TASK
    bad = write_task(work / "bad", table={"train": {"x.wav": ["cow"]}})
    assert main(["tasks", "check", str(bad), str(good), str(work / "missing")]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith(f"ok {TASK}: ")
    errors = captured.err.splitlines()
    assert len(errors) == 2 and all(
        e.startswith("hear-wavjepa tasks check: error: ") for e in errors
    )
    assert "train.json: x.wav: labels ['cow']" in errors[0] and "missing" in errors[1]


def test_embed_channel_choices_match_the_embedder():
    from hear_wavjepa.cli.embed import CHANNELS
    from hear_wavjepa.evaluation.embed import INPUT_CHANNEL_MODES

    assert CHANNELS == INPUT_CHANNEL_MODES


def test_every_user_error_class_exists():
    """`main` finds the user-error classes by name: a rename must not silently drop one."""
    import importlib

    from hear_wavjepa.cli import USER_ERRORS

    for entry in USER_ERRORS:
        module, _, name = entry.partition(":")
        assert issubclass(getattr(importlib.import_module(module), name), ValueError), entry
