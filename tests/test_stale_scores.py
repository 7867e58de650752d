"""Stored scores follow the task content: a changed task is never scored from old results, and
per-task files shared by runs (chance, digests) are merged, not replaced, by a partial run."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import remove_clips, write_mini_pair

from hear_wavjepa.evaluation.models import parse_model
from hear_wavjepa.evaluation.orchestrate import run_eval
from hear_wavjepa.evaluation.report import load_scores, write_tables
from hear_wavjepa.evaluation.scoring import ScoresExist, read_scores, score_task
from hear_wavjepa.evaluation.tables import Cell

NAIVE = parse_model("hear-naive=hear_wavjepa.baselines.naive")
KEYWORDS, DRUMS = "mini_keywords-v1-full", "mini_drums-v1-full"


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("HEAR_WAVJEPA_HOME", str(tmp_path / "home"))


def _eval(tasks, results, **kwargs):
    return run_eval(
        "mini",
        [NAIVE],
        protocols=["knn"],
        grid="faster",
        tasks_dir=tasks,
        results_dir=results,
        **kwargs,
    )


def _cells(results) -> dict:
    table, _ = load_scores(results / "mini", "knn")
    return table["hear-naive"]


def _table_row(results, label: str) -> dict[str, str]:
    """{column: cell text} of a row of the knn table in a fresh `mini.md`."""
    text = next(p for p in write_tables(results) if p.name == "mini.md").read_text()
    lines = text.split("### mini · knn")[1].splitlines()
    header = next(line for line in lines if line.startswith("| model |"))
    row = next(line for line in lines if line.startswith(f"| {label} |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    return dict(zip(columns, (c.strip() for c in row.strip("|").split("|")), strict=True))


def test_removed_clips_are_never_scored_from_the_old_result(tmp_path):
    tasks, results = write_mini_pair(tmp_path / "tasks"), tmp_path / "results"
    _eval(tasks, results)
    path = results / "mini" / NAIVE.model_id / KEYWORDS / "scores.json"
    old = read_scores(path)
    assert isinstance(_cells(results)[KEYWORDS], Cell)
    remove_clips(tasks / KEYWORDS, "train", 2)  # same folder name, other content
    with pytest.raises(ScoresExist, match="other content of task"):
        _eval(tasks, results)
    assert read_scores(path) == old  # refused before any work: nothing replaced
    cells = _cells(results)
    assert cells.get(KEYWORDS) is None and isinstance(cells[DRUMS], Cell)
    row = _table_row(results, "hear-naive")
    assert row["m-SC"] == "–" and row["m-Mri"] != "–"  # the stale cell is left out
    _eval(tasks, results, rerun=True)
    new = read_scores(path)
    assert new["knn"]["task_digest"] != old["knn"]["task_digest"]
    assert new["embedding_path"] != old["embedding_path"]
    assert (
        json.loads((results / "mini" / "task-digests.json").read_text())[KEYWORDS]
        == (new["knn"]["task_digest"])
    )
    assert _cells(results)[KEYWORDS].mean == new["knn"]["result"]["test_score_mean"]
    assert _table_row(results, "hear-naive")["m-SC"] != "–"


@pytest.mark.parametrize("cache_kept", [True, False])
def test_scores_stored_before_they_named_a_digest(tmp_path, cache_kept):
    tasks, results = write_mini_pair(tmp_path / "tasks"), tmp_path / "results"
    _eval(tasks, results)
    path = results / "mini" / NAIVE.model_id / KEYWORDS / "scores.json"
    stored = json.loads(path.read_text())
    digest = stored["knn"].pop("task_digest")
    path.write_text(json.dumps(stored))  # as written before scores carried the digest
    if not cache_kept:  # then the digest is read from the cache dir's name
        shutil.rmtree(stored["embedding_path"])
    assert read_scores(path)["knn"]["task_digest"] == digest
    _eval(tasks, results)  # same content: reused
    assert "task_digest" not in json.loads(path.read_text())["knn"]
    remove_clips(tasks / KEYWORDS, "valid", 1)
    with pytest.raises(ScoresExist, match="other content"):
        _eval(tasks, results)
    assert _cells(results).get(KEYWORDS) is None


def test_score_command_path_refuses_a_changed_cache(tmp_path):
    tasks = write_mini_pair(tmp_path / "tasks")
    from hear_wavjepa.evaluation.embed import embed_task

    first = embed_task(NAIVE.spec, tasks / KEYWORDS, progress=False).out_dir
    scores = tmp_path / "scores.json"
    score_task(first, protocols=["knn"], scores_path=scores)
    remove_clips(tasks / KEYWORDS, "test", 2)
    second = embed_task(NAIVE.spec, tasks / KEYWORDS, progress=False).out_dir
    assert second != first
    with pytest.raises(ScoresExist, match="rerun"):
        score_task(second, protocols=["knn"], scores_path=scores)
    score_task(second, protocols=["knn"], scores_path=scores, rerun=True)
    assert read_scores(scores)["embedding_path"] == str(second)


def test_a_partial_run_keeps_the_other_tasks_chance_row(tmp_path):
    tasks, results = write_mini_pair(tmp_path / "tasks"), tmp_path / "results"
    _eval(tasks, results)
    subset = tmp_path / "subset"
    shutil.copytree(tasks / DRUMS, subset / DRUMS)
    _eval(subset, results)
    chance = json.loads((results / "mini" / "chance.json").read_text())
    assert set(chance) == {KEYWORDS, DRUMS}
    assert set(json.loads((results / "mini" / "task-digests.json").read_text())) == set(chance)
    chance_row = _table_row(results, "chance")
    assert chance_row["m-SC"] == chance_row["m-Mri"] == "33.3"  # both tasks: 3 classes
    assert isinstance(_cells(results)[KEYWORDS], Cell)


def test_a_failing_module_leaves_no_model_json(tmp_path):
    tasks, results = write_mini_pair(tmp_path / "tasks"), tmp_path / "results"
    from hear_wavjepa.evaluation.embed import ContractError

    with pytest.raises(ContractError, match="cannot be imported"):
        run_eval(
            "mini",
            [parse_model("no_such_module")],
            protocols=["knn"],
            grid="faster",
            tasks_dir=tasks,
            results_dir=results,
        )
    assert not results.exists()
    assert not (tmp_path / "home" / "embeddings").exists()
