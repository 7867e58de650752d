"""Results tables: cells (mean ± std), s(m), robustness deltas, markdown. Pure functions.

Scores are fractions in [0, 1] (heareval's convention) and are printed ×100, as the paper does.
s(m) (docs/hear-protocol.md, The s(m) score): per task, with a floor model
(HEAR-Naive) and the best model of the comparison set as the ceiling, clipped at 0,

    s(m) = 100 / |T| * sum_t max(0, (x_t(m) - x_t(floor)) / (x_t(best) - x_t(floor)))

and a task whose ceiling does not beat the floor (0/0, or the floor is best) contributes 0.
An undefined score (NaN, e.g. an event task's onset F when no event is predicted: precision 0/0)
is printed `undef.†` and counts as a term of 0 for its model; it is never a floor or ceiling,
and a task whose floor score is undefined is left out of s(m), as one without a floor score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    """One (model, task) result: a single test score (folds = 1) or a fold mean and std."""

    mean: float
    std: float | None = None
    folds: int = 1

    def text(self, scale: float = 100.0, digits: int = 1) -> str:
        if math.isnan(self.mean):
            return UNDEFINED
        value = f"{self.mean * scale:.{digits}f}"
        if value.startswith("-") and float(value) == 0:  # a difference that rounds to zero
            value = value[1:]
        if self.std is None or self.folds < 2:
            return value
        return f"{value} ± {self.std * scale:.{digits}f}"


#: what a table prints where a protocol does not apply (e.g. kNN on an event task).
NOT_APPLICABLE = "n/a"
#: what a table prints where a score is missing (not run yet).
MISSING = "–"
#: what a table prints where a score is undefined (NaN); `UNDEFINED_NOTE` explains it.
UNDEFINED = "undef.†"
UNDEFINED_NOTE = (
    f"{UNDEFINED}: the score is undefined (NaN), e.g. onset F when the model predicts no event "
    "(precision 0/0)."
)

Scores = Mapping[str, Mapping[str, "Cell | str | None"]]  # model -> task -> Cell / "n/a" / None


def s_of_m(
    scores: Scores,
    tasks: Sequence[str],
    floor: str,
    ceiling_models: Sequence[str] | None = None,
    maximize: Mapping[str, bool] | None = None,
) -> dict[str, float | None]:
    """s(m) per model over `tasks` (terms of tasks a model lacks are left out; None if none).

    The ceiling of task t is the best score over `ceiling_models` (default: every model in
    `scores`), the floor is model `floor`'s score. Tasks where the floor has no score, or an
    undefined one, are skipped; a model's undefined score is a term of 0.
    """
    maximize = maximize or {}
    ceiling_models = list(ceiling_models or scores)

    def value(model: str, task: str) -> float | None:
        """The score (negated when lower is better); None if missing, NaN if undefined."""
        cell = scores.get(model, {}).get(task)
        if not isinstance(cell, Cell):
            return None
        return cell.mean if maximize.get(task, True) else -cell.mean

    out: dict[str, float | None] = {}
    for model in scores:
        terms = []
        for task in tasks:
            x, low = value(model, task), value(floor, task)
            candidates = [v for m in ceiling_models if _defined(v := value(m, task))]
            if x is None or low is None or math.isnan(low) or not candidates:
                continue
            span = max(candidates) - low
            if math.isnan(x) or span <= 0:
                terms.append(0.0)
            else:
                terms.append(max(0.0, (x - low) / span))
        out[model] = 100.0 * sum(terms) / len(terms) if terms else None
    return out


def _defined(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def has_undefined(rows: Sequence[tuple[str, Mapping[str, Cell | str | None]]]) -> bool:
    """Whether any cell of the table's rows is undefined (printed `undef.†`)."""
    return any(
        isinstance(c, Cell) and math.isnan(c.mean) for _, cells in rows for c in cells.values()
    )


def robustness(clean: Scores, nat: Scores) -> dict[str, dict[str, Cell | str | None]]:
    """Per model and task, the Nat score minus the clean score (fold means; std not combined)."""
    out: dict[str, dict[str, Cell | str | None]] = {}
    for model in clean:
        row: dict[str, Cell | str | None] = {}
        for task, a in clean[model].items():
            b = nat.get(model, {}).get(task)
            if isinstance(a, Cell) and isinstance(b, Cell):
                row[task] = Cell(b.mean - a.mean)
            elif NOT_APPLICABLE in (a, b):
                row[task] = NOT_APPLICABLE
            else:
                row[task] = None
        out[model] = row
    return out


def markdown(
    rows: Sequence[tuple[str, Mapping[str, Cell | str | None]]],
    columns: Sequence[tuple[str, str]],
    extra: Mapping[str, Mapping[str, str]] | None = None,
    signed: bool = False,
) -> str:
    """A markdown table: one row per (label, cells), `columns` = [(task key, header)], plus extra
    trailing columns given as {header: {row label: text}}."""
    extra = extra or {}
    header = ["model", *(h for _, h in columns), *extra]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, cells in rows:
        texts = []
        for key, _ in columns:
            cell = cells.get(key)
            if isinstance(cell, Cell):
                text = cell.text()
                positive = signed and cell.mean > 0 and text.strip("0.") != ""
                texts.append(f"+{text}" if positive else text)
            else:
                texts.append(cell if isinstance(cell, str) else MISSING)
        texts.extend(col.get(label, "") for col in extra.values())
        lines.append("| " + " | ".join([label, *texts]) + " |")
    return "\n".join(lines) + "\n"


def parse_published(text: str) -> Cell | None:
    """A published cell such as '76.7 ± 2.4', '72.4 ±1.8' or '93.9' (×100) -> Cell in [0, 1]."""
    text = text.strip()
    if not text or text.upper() in ("N/A", "NA", "-", "–"):
        return None
    if "±" in text:
        mean, std = (part.strip() for part in text.split("±", 1))
        return Cell(float(mean) / 100, float(std) / 100, folds=2)
    return Cell(float(text) / 100)
