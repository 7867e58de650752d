"""Table maths against hand-computed values: s(m) (incl. 0/0), mean ± std, robustness deltas."""

from __future__ import annotations

import csv

import pytest

from hear_wavjepa.evaluation.report import PUBLISHED
from hear_wavjepa.evaluation.tables import (
    NOT_APPLICABLE,
    Cell,
    markdown,
    parse_published,
    robustness,
    s_of_m,
)


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
