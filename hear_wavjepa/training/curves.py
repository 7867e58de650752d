"""A run's learning curves: read `metrics.csv` and draw it into one PNG (`hear-wavjepa plot`).

`metrics.csv` has two kinds of rows (docs/pretraining.md, Learning curves):

* training rows, one per logged optimiser update: `step` is the 0-based index of the update and
  the columns of `training.metrics_log.METRICS` are filled;
* probe rows, written by the online probe monitor: the training columns are empty, the columns
  `probe/{encoder}/{protocol}/{task}` (encoder `student` or `teacher`, protocol `knn` or
  `linear`) and `probe_s` are filled, and `step` is the number of updates the probed weights had
  (0: the initial weights).

Either kind may be missing (a run from before the monitor, or one that has not logged an update
yet); so may any column. Drawing needs matplotlib (Agg backend, no display) and never torch.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from hear_wavjepa import paths
from hear_wavjepa.atomicio import atomic_write
from hear_wavjepa.training.metrics_log import PROBE_PREFIX

METRICS_FILE = "metrics.csv"
#: the PNG `hear-wavjepa plot RUN` writes into the run folder by default
CURVES_FILE = "learning-curves.png"
#: the training panels, in order: (metrics.csv column, panel title)
TRAINING_PANELS = (
    ("loss", "loss"),
    ("context_rank", "context_rank (1 = collapsed)"),
    ("target_std", "target_std"),
)
PROTOCOL_NAMES = {"knn": "kNN", "linear": "linear"}
ENCODER_STYLES = {"teacher": "-", "student": "--"}


class CurvesError(ValueError):
    """No metrics to draw: the run or its metrics.csv does not exist or holds nothing."""


@dataclass
class Metrics:
    """What metrics.csv holds: training columns and probe lines, each as (steps, values)."""

    training: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    #: {(encoder, protocol, task): (steps, values)}
    probes: dict[tuple[str, str, str], tuple[list[int], list[float]]] = field(default_factory=dict)

    @property
    def protocols(self) -> list[str]:
        """The probe protocols present, kNN first."""
        found = {protocol for _, protocol, _ in self.probes}
        order = list(PROTOCOL_NAMES)
        return sorted(found, key=lambda p: (order.index(p) if p in order else len(order), p))


def find_metrics(run: str | os.PathLike) -> Path:
    """metrics.csv of `run`: a run name under $HEAR_WAVJEPA_HOME/runs, a run folder, or the
    metrics.csv file itself."""
    path = Path(run).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        named = paths.runs_dir() / str(run)
        if not named.is_dir():
            raise CurvesError(
                f"{run}: not a run (no folder {path}, nor {named}); give a run name under "
                f"{paths.runs_dir()} or a run folder"
            )
        path = named
    metrics = path / METRICS_FILE
    if not metrics.is_file():
        raise CurvesError(f"{path}: no {METRICS_FILE} (not a run, or it has not logged a step)")
    return metrics


def _number(text: str | None) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_metrics(path: str | os.PathLike) -> Metrics:
    """Parse metrics.csv; empty cells, missing columns and unparsable values are skipped."""
    metrics = Metrics()
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            step = _number(row.get("step"))
            if step is None:
                continue
            for column, text in row.items():
                value = _number(text)
                if column is None or column == "step" or value is None:
                    continue
                if column.startswith(PROBE_PREFIX):
                    parts = column[len(PROBE_PREFIX) :].split("/", 2)
                    if len(parts) != 3:
                        continue
                    key = (parts[0], parts[1], parts[2])
                    steps, values = metrics.probes.setdefault(key, ([], []))
                else:
                    steps, values = metrics.training.setdefault(column, ([], []))
                steps.append(int(step))
                values.append(value)
    return metrics


def smooth(values: list[float], span: int) -> list[float]:
    """Exponential moving average with the weight 2 / (span + 1) of pandas' `ewm(span=...)`,
    bias-corrected so that the first points are not pulled towards 0."""
    if span <= 1:
        return list(values)
    alpha = 2.0 / (span + 1)
    out, mean, weight = [], 0.0, 0.0
    for v in values:
        mean = (1 - alpha) * mean + alpha * v
        weight = (1 - alpha) * weight + alpha
        out.append(mean / weight)
    return out


def _baseline(steps: list[int], values: list[float]) -> tuple[float, bool]:
    """The value a probe line is measured from: its step-0 score (True) or, without a step-0
    row, its first score (False)."""
    for s, v in zip(steps, values, strict=True):
        if s == 0:
            return v, True
    first = min(range(len(steps)), key=steps.__getitem__)
    return values[first], False


def draw_curves(
    metrics_csv: str | os.PathLike, out: str | os.PathLike, title: str | None = None
) -> list[str]:
    """Draw the learning curves of `metrics_csv` into PNG `out` (written atomically); returns the
    panel titles, in order. Training panels show the raw values faintly and an exponential moving
    average on top; each probe protocol gets a panel of score changes from step 0, one line per
    (encoder, task), teacher solid and student dashed, and the mean over tasks drawn thick."""
    metrics = read_metrics(metrics_csv)
    if not metrics.training and not metrics.probes:
        raise CurvesError(f"{metrics_csv}: no training or probe rows to draw")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = metrics.protocols
    count = len(TRAINING_PANELS) + len(protocols)
    columns = 3
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.0 * columns, 3.6 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[count:]:
        ax.remove()
    titles = []
    for ax, (column, name) in zip(flat, TRAINING_PANELS, strict=False):
        _training_panel(ax, metrics, column, name)
        titles.append(ax.get_title())
    for ax, protocol in zip(flat[len(TRAINING_PANELS) :], protocols, strict=False):
        _probe_panel(ax, metrics, protocol)
        titles.append(ax.get_title())
    last = max(
        s for steps, _ in (*metrics.training.values(), *metrics.probes.values()) for s in steps
    )
    for ax in flat[:count]:  # one step axis for every panel, so that they line up
        ax.set_xlim(-0.02 * max(last, 1), 1.02 * max(last, 1))
    fig.suptitle(title or str(Path(metrics_csv).parent.name))
    fig.tight_layout()
    try:
        atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)
    return titles


def _training_panel(ax, metrics: Metrics, column: str, name: str) -> None:
    ax.set_title(name)
    ax.set_xlabel("update")
    ax.grid(alpha=0.3)
    if column not in metrics.training:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        return
    steps, values = metrics.training[column]
    span = max(1, len(values) // 40)
    if span > 1:
        ax.plot(steps, values, color="tab:blue", alpha=0.25, linewidth=0.8, label="raw")
        ax.plot(
            steps,
            smooth(values, span),
            color="tab:blue",
            linewidth=1.6,
            label=f"moving average ({span} rows)",
        )
        ax.legend(fontsize=7)
    else:
        ax.plot(
            steps, values, color="tab:blue", linewidth=1.4, marker="." if len(steps) < 30 else ""
        )


def _probe_panel(ax, metrics: Metrics, protocol: str) -> None:
    lines = {k: v for k, v in metrics.probes.items() if k[1] == protocol}
    scale = 100.0 if all(abs(x) <= 1.0 for _, values in lines.values() for x in values) else 1.0
    unit = " ×100" if scale == 100.0 else ""
    tasks = sorted({task for _, _, task in lines})
    colours = {task: f"C{i % 10}" for i, task in enumerate(tasks)}
    all_from_zero = True
    for encoder in ENCODER_STYLES:
        deltas: dict[int, list[float]] = {}
        for task in tasks:
            if (encoder, protocol, task) not in lines:
                continue
            steps, values = lines[(encoder, protocol, task)]
            base, from_zero = _baseline(steps, values)
            all_from_zero &= from_zero
            diff = [(v - base) * scale for v in values]
            order = sorted(range(len(steps)), key=steps.__getitem__)
            ax.plot(
                [steps[i] for i in order],
                [diff[i] for i in order],
                color=colours[task],
                linestyle=ENCODER_STYLES[encoder],
                linewidth=0.9,
                alpha=0.55,
                marker=".",
                markersize=3,
                label=f"{task} ({'step 0' if from_zero else 'first'}: {base * scale:.1f})"
                if encoder == "teacher" or ("teacher", protocol, task) not in lines
                else None,
            )
            for s, d in zip(steps, diff, strict=True):
                deltas.setdefault(s, []).append(d)
        if deltas:
            mean_steps = sorted(deltas)
            means = [sum(deltas[s]) / len(deltas[s]) for s in mean_steps]
            ax.plot(
                mean_steps,
                means,
                color="black",
                linestyle=ENCODER_STYLES[encoder],
                linewidth=2.4,
                label=f"{encoder}: mean over tasks",
            )
    ax.axhline(0.0, color="grey", linewidth=1.0, linestyle=":")
    since = "step 0" if all_from_zero else "the first probe"
    ax.set_title(f"{PROTOCOL_NAMES.get(protocol, protocol)} probe: change since {since}{unit}")
    ax.set_xlabel("updates of the probed weights")
    ax.set_ylabel(f"score − score at {since}{unit}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2, title="teacher solid, student dashed", title_fontsize=6)
