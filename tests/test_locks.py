"""Locks on embedding caches and task results: a second process waits or moves on, a dead owner
never leaves a stale lock, and two concurrent `eval` runs do every piece of work once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import write_mini_pair

from hear_wavjepa.evaluation.models import parse_model
from hear_wavjepa.evaluation.orchestrate import run_eval
from hear_wavjepa.evaluation.scoring import read_scores
from hear_wavjepa.filelock import FileLock, owner

TESTS = Path(__file__).parent


def _hold_in_child(path: Path) -> tuple[int, int]:
    """Fork a process that takes the lock, reports, and releases once told; (pid, command fd)."""
    held_r, held_w = os.pipe()
    cmd_r, cmd_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only the lock and the pipes
        try:
            lock = FileLock(path)
            lock.acquire()
            os.write(held_w, b"1")
            os.read(cmd_r, 1)
            lock.release()
        finally:
            os._exit(0)
    os.close(held_w)
    os.close(cmd_r)
    assert os.read(held_r, 1) == b"1"
    os.close(held_r)
    return pid, cmd_w


def test_a_second_process_waits_with_a_message_naming_the_owner(tmp_path):
    path = tmp_path / "sub" / "task.lock"
    pid, command = _hold_in_child(path)
    assert f"pid {pid} " in owner(path)
    lock = FileLock(path)
    assert lock.acquire(wait=False) is False and not lock.held
    messages: list[str] = []
    waiter = threading.Thread(target=lambda: lock.acquire(notify=messages.append))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # blocked while the child holds it
    os.write(command, b"1")  # the child releases
    waiter.join(10)
    os.waitpid(pid, 0)
    assert lock.held and len(messages) == 1 and messages[0].startswith(f"waiting for {path}")
    assert f"held by pid {pid} " in messages[0]
    assert f"pid {os.getpid()} " in owner(path)
    lock.release()
    assert not path.exists()  # released locks leave no file behind


def test_a_killed_owner_leaves_no_stale_lock(tmp_path):
    path = tmp_path / "task.lock"
    pid, _ = _hold_in_child(path)
    assert FileLock(path).acquire(wait=False) is False
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with FileLock(path) as lock:
        assert lock.held and f"pid {os.getpid()} " in owner(path)
    assert not path.exists()


def _eval_process(tasks: Path, results: Path, env: dict) -> subprocess.Popen:
    args = [sys.executable, "-m", "hear_wavjepa", "eval", "--suite", "mini", "--tasks-dir",
            str(tasks), "--models", 'slow=slow_hear_module:{"pause": 1.0}', "--protocols", "knn",
            "--results-dir", str(results)]  # fmt: skip
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_two_concurrent_evals_embed_once_and_agree(tmp_path, monkeypatch):
    tasks, results = write_mini_pair(tmp_path / "tasks"), tmp_path / "results"
    calls = tmp_path / "calls.log"
    env = {
        **os.environ,
        "HEAR_WAVJEPA_HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "SLOW_HEAR_LOG": str(calls),
        "OMP_NUM_THREADS": "1",
    }
    runs = [_eval_process(tasks, results, env) for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    text = "\n".join(outputs)
    # 6 splits in all, one call each: both processes together embedded every split once
    assert len(calls.read_text().splitlines()) == 6, text
    assert text.count("embedded mini_") == 2
    assert not list(tmp_path.rglob("*.lock"))
    # the scores equal those of one process alone (HEAR-Naive, which the slow module wraps)
    monkeypatch.setenv("HEAR_WAVJEPA_HOME", str(tmp_path / "home-alone"))
    naive = parse_model("hear_wavjepa.baselines.naive")
    run_eval(
        "mini",
        [naive],
        protocols=["knn"],
        grid="faster",
        tasks_dir=tasks,
        results_dir=tmp_path / "alone",
    )
    slow = parse_model('slow=slow_hear_module:{"pause": 1.0}')
    for task in ("mini_keywords-v1-full", "mini_drums-v1-full"):
        both = read_scores(results / "mini" / slow.model_id / task / "scores.json")
        alone = read_scores(tmp_path / "alone" / "mini" / naive.model_id / task / "scores.json")
        assert json.dumps(both["knn"]["result"]) == json.dumps(alone["knn"]["result"])
