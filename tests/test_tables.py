"""Table maths against hand-computed values: s(m) (incl. 0/0), mean ± std, robustness deltas."""

from __future__ import annotations

import csv
import json
import math

import pytest

from hear_wavjepa.evaluation.report import PUBLISHED, robustness_table, suite_table
from hear_wavjepa.evaluation.tables import (
    NOT_APPLICABLE,
    UNDEFINED,
    UNDEFINED_NOTE,
    Cell,
    has_undefined,
    markdown,
    parse_published,
    robustness,
    s_of_m,
)
from hear_wavjepa.suite import suite_tasks


def test_s_of_m_hand_computed():
    scores = {
        "naive": {"a": Cell(0.2), "b": Cell(0.5)},
        "m1": {"a": Cell(0.6), "b": Cell(0.4)},  # a: (0.6-0.2)/(0.6-0.2)=1; b: below floor -> 0
        "m2": {"a": Cell(0.4), "b": Cell(0.9)},  # a: 0.2/0.4=0.5; b: 0.4/0.4=1
    }
    result = s_of_m(scores, ["a", "b"], floor="naive")
    assert result["m1"] == pytest.approx(50.0)
    assert result["m2"] == pytest.approx(75.0)
    assert result["naive"] == pytest.approx(0.0)


def test_s_of_m_zero_over_zero_counts_as_zero():
    # the floor is the best model on task "c": every term there is 0/0 or negative -> 0
    scores = {
        "naive": {"a": Cell(0.1), "c": Cell(0.9)},
        "m": {"a": Cell(0.5), "c": Cell(0.8)},
    }
    assert s_of_m(scores, ["a", "c"], floor="naive")["m"] == pytest.approx(50.0)
    same = {"naive": {"a": Cell(0.3)}, "m": {"a": Cell(0.3)}}
    assert s_of_m(same, ["a"], floor="naive") == {"naive": 0.0, "m": 0.0}


def test_s_of_m_minimised_metric_and_missing_tasks():
    scores = {
        "naive": {"er": Cell(0.8), "a": Cell(0.2)},
        "m": {"er": Cell(0.4), "a": None},  # error rate: lower is better
        "best": {"er": Cell(0.2), "a": Cell(0.6)},
    }
    result = s_of_m(scores, ["er", "a"], floor="naive", maximize={"er": False})
    assert result["m"] == pytest.approx(100 * (0.4 / 0.6))  # only "er" counts for m
    assert result["best"] == pytest.approx(100.0)


def test_s_of_m_reproduces_the_published_column():
    """The seed's table: HEAR-Naive floor, best of the card's rows as ceiling (within 3.2)."""
    with PUBLISHED.open() as f:
        rows = list(csv.DictReader(f))
    tasks = [c for c in rows[0] if c not in ("group", "model", "size", "s(m)")]
    scores = {
        f"{r['model']} {r['size']} {r['group']}": {t: parse_published(r[t]) for t in tasks}
        for r in rows
    }
    published = {f"{r['model']} {r['size']} {r['group']}": float(r["s(m)"]) for r in rows}
    floor = next(k for k in scores if k.startswith("HEAR-Naive"))
    ours = s_of_m(scores, tasks, floor=floor)
    for model, value in ours.items():
        assert value == pytest.approx(published[model], abs=3.2), model


def test_cell_text_and_published_parsing():
    assert Cell(0.767, 0.024, folds=5).text() == "76.7 ± 2.4"
    assert Cell(0.939).text() == "93.9"
    assert Cell(0.5, 0.1, folds=1).text() == "50.0"
    parsed = parse_published("72.4 ±1.8")
    assert (parsed.mean, parsed.std) == (pytest.approx(0.724), pytest.approx(0.018))
    assert parse_published(" 93.9 ").mean == pytest.approx(0.939)
    assert parse_published("N/A") is None


def test_robustness_deltas():
    clean = {"m": {"a": Cell(0.8, 0.1, 5), "b": Cell(0.5), "c": NOT_APPLICABLE, "d": None}}
    nat = {"m": {"a": Cell(0.6, 0.2, 5), "b": Cell(0.55), "c": NOT_APPLICABLE, "d": Cell(0.1)}}
    delta = robustness(clean, nat)["m"]
    assert delta["a"].mean == pytest.approx(-0.2)
    assert delta["b"].mean == pytest.approx(0.05)
    assert delta["c"] == NOT_APPLICABLE and delta["d"] is None


def test_markdown_layout():
    text = markdown(
        [
            ("m", {"a": Cell(0.5), "b": NOT_APPLICABLE}),
            ("n", {"a": Cell(-0.02)}),
            ("z", {"a": Cell(-0.0001), "b": Cell(0.0004)}),  # both round to 0.0: no sign
        ],
        [("a", "A"), ("b", "B")],
        extra={"s(m)": {"m": "12.0"}},
        signed=True,
    )
    assert text.splitlines() == [
        "| model | A | B | s(m) |",
        "|---|---|---|---|",
        "| m | +50.0 | n/a | 12.0 |",
        "| n | -2.0 | – |  |",
        "| z | 0.0 | 0.0 |  |",
    ]


def test_undefined_cell_prints_a_mark():
    nan = math.nan
    assert Cell(nan).text() == UNDEFINED == "undef.†"
    assert Cell(nan, nan, folds=5).text() == UNDEFINED
    rows = [("m", {"a": Cell(nan)}), ("n", {"a": Cell(0.5)})]
    assert markdown(rows, [("a", "A")]).splitlines()[2] == f"| m | {UNDEFINED} |"
    assert has_undefined(rows) and not has_undefined(rows[1:])
    assert "nan" not in markdown(rows, [("a", "A")])


def test_s_of_m_counts_an_undefined_score_as_zero():
    nan = math.nan
    scores = {
        "naive": {"a": Cell(0.2), "b": Cell(0.5)},
        "m1": {"a": Cell(nan), "b": Cell(0.9)},  # a: undefined -> 0, never the ceiling; b: 1
        "m2": {"a": Cell(0.6), "b": Cell(0.7)},  # a: 0.4/0.4 = 1; b: 0.2/0.4 = 0.5
    }
    result = s_of_m(scores, ["a", "b"], floor="naive")
    assert result["m1"] == pytest.approx(50.0)
    assert result["m2"] == pytest.approx(75.0)
    # an undefined floor: the task is left out for every model, as a missing floor score
    scores["naive"]["a"] = Cell(nan)
    result = s_of_m(scores, ["a", "b"], floor="naive")
    assert result["m1"] == pytest.approx(100.0) and result["m2"] == pytest.approx(50.0)


def _store(results, suite, model, values):
    """A model's stored linear-probe fold means (scores.json) in a suite's results dir."""
    model_dir = results / suite / model
    model_dir.mkdir(parents=True)
    (model_dir / "model.json").write_text(json.dumps({"name": model}))
    for task, value in values.items():
        entry = {"result": {"test_score_mean": value, "folds": {"fold00": {}}}, "settings": {}}
        (model_dir / task).mkdir()
        (model_dir / task / "scores.json").write_text(json.dumps({"linear": entry}))


def test_report_explains_undefined_cells(tmp_path):
    tasks = [t.folder for t in suite_tasks("mini")][:2]
    _store(tmp_path, "mini", "hear-naive", dict(zip(tasks, [0.2, 0.4], strict=True)))
    _store(tmp_path, "mini", "model-x", dict(zip(tasks, [math.nan, 0.8], strict=True)))
    text = suite_table("mini", tmp_path, "linear")
    row = next(line for line in text.splitlines() if line.startswith("| model-x"))
    assert UNDEFINED in row and "nan" not in row
    assert f"- {UNDEFINED_NOTE}" in text.splitlines()
    assert f"undefined score ({UNDEFINED}) counts as 0" in text
    assert "| 50.0 |" in row  # s(m): (0 + 1) / 2 tasks
    _store(tmp_path, "mini-nat", "model-x", dict(zip(tasks, [0.5, 0.6], strict=True)))
    delta = robustness_table(tmp_path, "linear", "mini", "mini-nat")
    assert UNDEFINED in delta and UNDEFINED_NOTE in delta
    defined = tmp_path / "defined"
    _store(defined, "mini", "hear-naive", dict(zip(tasks, [0.2, 0.4], strict=True)))
    assert UNDEFINED_NOTE not in suite_table("mini", defined, "linear")
