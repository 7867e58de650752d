"""`hear-wavjepa eval`: results layout, model ids, reuse, no silent overwrite, tables."""

from __future__ import annotations

import json

import pytest
from conftest import write_mini_pair

from hear_wavjepa.cli import main as cli
from hear_wavjepa.evaluation.models import parse_model
from hear_wavjepa.evaluation.orchestrate import grid_for, run_eval
from hear_wavjepa.evaluation.report import write_tables
from hear_wavjepa.evaluation.scoring import ScoresExist
from hear_wavjepa.pipeline import evaluate
from hear_wavjepa.suite import suite_tasks

NAIVE = "hear-naive=hear_wavjepa.baselines.naive"
TINY = 'tiny=hear_wavjepa:{"preset": "tiny"}'
FASTER = {"protocols": ["mlp", "linear", "knn"], "grid": "faster"}
MLP = {"protocols": ["mlp"], "grid": "faster"}


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("HEAR_WAVJEPA_HOME", str(tmp_path / "home"))


@pytest.fixture()
def tasks_dir(hear_task, tmp_path):
    """Two small tasks under the folder names of mini suite tasks (one TVT, one 3-fold)."""
    return write_mini_pair(tmp_path / "tasks")


def test_model_ids_are_readable_stable_and_distinct(tmp_path):
    a = parse_model(TINY)
    assert a.model_id == parse_model(TINY).model_id
    assert a.model_id.startswith("tiny.")
    other = parse_model('tiny=hear_wavjepa:{"preset": "tiny", "layers": 2}')
    assert other.model_id != a.model_id
    assert parse_model("hear_wavjepa.baselines.naive").name == "naive"
    ckpt = tmp_path / "x.safetensors"
    ckpt.write_bytes(b"weights-1")
    moved = tmp_path / "sub" / "x.safetensors"
    moved.parent.mkdir()
    moved.write_bytes(b"weights-1")
    assert parse_model(str(ckpt)).model_id == parse_model(str(moved)).model_id  # same weights
    moved.write_bytes(b"weights-2")
    assert parse_model(str(ckpt)).model_id != parse_model(str(moved)).model_id
    named = parse_model(f"run1={ckpt}")
    assert named.name == "run1" and named.spec.model_path == str(ckpt)
    lightning = tmp_path / "epoch=3.safetensors"
    lightning.write_bytes(b"weights-3")
    assert parse_model(str(lightning)).spec.model_path == str(lightning)


def test_bad_models_suites_and_task_dirs(tmp_path):
    with pytest.raises(ValueError, match="checkpoint not found"):
        parse_model(str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="not JSON"):
        parse_model("hear_wavjepa:{preset: tiny}")
    with pytest.raises(ValueError, match="checkpoint not found"):
        parse_model("some/path.pt")  # a reference checkpoint's suffix: a file, not a module
    with pytest.raises(ValueError, match="not a module name"):
        parse_model("some/path")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="unknown suite"):
        run_eval("esc", [parse_model(NAIVE)], tasks_dir=tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown suite"):
        evaluate("esc", [parse_model(NAIVE)])
    with pytest.raises(ValueError, match="holds none of the mini tasks"):
        run_eval("mini", [parse_model(NAIVE)], tasks_dir=tmp_path / "empty")
    with pytest.raises(ValueError, match="needs --tasks-dir"):
        evaluate("hear", [parse_model(NAIVE)])


@pytest.mark.slow
def test_eval_writes_reuses_and_never_overwrites_silently(tmp_path, tasks_dir):
    results = tmp_path / "results"
    models = [parse_model(NAIVE)]
    run_eval("mini", models, **FASTER, tasks_dir=tasks_dir, results_dir=results, grid_points=1)
    model_dir = results / "mini" / models[0].model_id
    assert json.loads((model_dir / "model.json").read_text())["module"] == (
        "hear_wavjepa.baselines.naive"
    )
    scores_path = model_dir / "mini_drums-v1-full" / "scores.json"
    scores = json.loads(scores_path.read_text())
    assert set(scores) >= {"mlp", "linear", "knn"}
    assert len(scores["mlp"]["result"]["aggregated_scores"]) >= 2  # k-fold: mean and std
    stamp = scores_path.stat().st_mtime_ns
    run_eval("mini", models, **FASTER, tasks_dir=tasks_dir, results_dir=results, grid_points=1)
    assert scores_path.stat().st_mtime_ns == stamp  # stored scores reused, nothing rerun
    with pytest.raises(ScoresExist, match="--rerun"):
        run_eval("mini", models, **MLP, tasks_dir=tasks_dir, results_dir=results, grid_points=2)
    run_eval(
        "mini", models, **MLP, tasks_dir=tasks_dir, results_dir=results, rerun=True, grid_points=2
    )
    assert json.loads(scores_path.read_text())["mlp"]["settings"]["grid_points"] == 2


@pytest.mark.slow
def test_tables_regenerate_identically_from_stored_scores(tmp_path, tasks_dir):
    results = tmp_path / "results"
    models = [parse_model(NAIVE), parse_model(TINY)]
    run_eval("mini", models, protocols=["linear", "knn"], grid="faster", tasks_dir=tasks_dir,
             results_dir=results)  # fmt: skip
    first = {p.name: p.read_bytes() for p in write_tables(results)}
    assert "mini.md" in first
    text = first["mini.md"].decode()
    shorts = [t.short for t in suite_tasks("mini")]
    assert all(short in text for short in shorts)  # every task of the YAML is a column
    assert "| chance |" in text and "s(m)" in text and "floor hear-naive" in text
    assert "n/a" not in text.split("### mini · knn")[0]  # linear applies to every task
    second = {p.name: p.read_bytes() for p in write_tables(results)}
    assert first == second


def test_cli_eval_and_tables(tmp_path, tasks_dir, capsys):
    results = tmp_path / "results"
    args = ["eval", "--suite", "mini", "--tasks-dir", str(tasks_dir), "--models", NAIVE,
            "--protocols", "knn", "--results-dir", str(results)]  # fmt: skip
    assert cli(args) == 0
    assert cli(["tables", "--results-dir", str(results)]) == 0
    assert "mini.md" in capsys.readouterr().out


def test_event_tasks_get_their_own_grid():
    events = next(t for t in suite_tasks("mini") if t.embedding == "event")
    scene = next(t for t in suite_tasks("mini") if t.embedding == "scene")
    assert grid_for(events, "default") == "fast"  # as the paper ran DCASE
    assert grid_for(events, "faster") == "faster"
    assert grid_for(events, "fast", event_grid="faster") == "faster"
    assert grid_for(scene, "fast", event_grid="faster") == "fast"
