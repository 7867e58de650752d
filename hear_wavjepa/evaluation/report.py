"""Generate `results/*.md` (and a PNG per suite) from stored scores alone; no model runs.

One table per (suite, protocol): a row per model, a column per task of the suite's YAML, a chance
row, s(m) with the floor and ceiling models printed under the table; a robustness table per
protocol (Nat minus clean) where both suites have scores; optional published rows (marked, never
in s(m)). When a model is a checkpoint exported by a pretraining run (its header holds the
recipe), a "Pretrained models" section under the tables says what it is (preset, steps, crops,
corpus, run) and shows the run's learning curves when `learning-curves-<run>.png` lies in the
results folder (`hear_wavjepa.pipeline.write_results` draws it).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hear_wavjepa import paths
from hear_wavjepa.atomicio import atomic_write, write_text
from hear_wavjepa.checkpoint import CheckpointError, read_header
from hear_wavjepa.evaluation.metrics import get_metric
from hear_wavjepa.evaluation.scoring import (
    DIGESTS_FILE,
    PROTOCOLS,
    SCORES_FILE,
    applies,
    cell,
    read_scores,
)
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
from hear_wavjepa.paths import suite_file
from hear_wavjepa.suite import SuiteTask, suite_tasks

FLOOR_MODEL = "hear-naive"
PUBLISHED = suite_file("hear_published.csv")


def load_scores(
    suite_dir: Path, protocol: str, tasks: Sequence[SuiteTask] = ()
) -> tuple[dict[str, dict], dict[str, str]]:
    """({model label: {task folder: cell}}, {model label: model id}) for one suite dir; n/a
    for the `tasks` the protocol does not apply to."""
    return _table(_stored(suite_dir), protocol, tasks)


def _table(
    stored: list[tuple[Path, dict[str, dict]]], protocol: str, tasks: Sequence[SuiteTask]
) -> tuple[dict[str, dict], dict[str, str]]:
    table: dict[str, dict] = {}
    ids: dict[str, str] = {}
    for model_dir, entries in stored:
        info = json.loads((model_dir / "model.json").read_text())
        label = info["name"]
        if label in table:  # two option sets of one name: keep them apart
            label = model_dir.name
        ids[label] = model_dir.name
        table[label] = {task: cell(scores, protocol) for task, scores in entries.items()}
        table[label].update(
            {
                t.folder: NOT_APPLICABLE
                for t in tasks
                if not applies(protocol, t.embedding, t.prediction)
            }
        )
    return table, ids


def _stored(suite_dir: Path) -> list[tuple[Path, dict[str, dict]]]:
    """(model dir, {task folder: scores.json content}) for every model of a suite dir; a score
    made on other content of a task than the suite's `task-digests.json` names is left out."""
    digests_path = suite_dir / DIGESTS_FILE
    digests = json.loads(digests_path.read_text()) if digests_path.is_file() else {}
    out = []
    for model_dir in sorted(p for p in suite_dir.iterdir() if (p / "model.json").is_file()):
        entries = {}
        for path in sorted(model_dir.glob(f"*/{SCORES_FILE}")):
            scores = read_scores(path)
            current = digests.get(path.parent.name)
            for protocol in PROTOCOLS:
                entry = scores.get(protocol)
                if current and isinstance(entry, dict) and entry["task_digest"] != current:
                    del scores[protocol]
            modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
            for entry in scores.values():  # scores stored before they carried their date
                if isinstance(entry, dict) and "result" in entry:
                    entry.setdefault("created", modified.isoformat(timespec="seconds"))
            entries[path.parent.name] = scores
        out.append((model_dir, entries))
    return out


def provenance(stored: list[tuple[Path, dict[str, dict]]], protocol: str) -> str:
    """Where a table's numbers come from: the dates and commits that made the stored scores and
    every distinct setting of the protocol."""
    dates, commits, settings = set(), set(), set()
    for _, entries in stored:
        for scores in entries.values():
            entry = scores.get(protocol)
            if not isinstance(entry, dict):
                continue
            dates.add(str(entry.get("created", ""))[:10])
            commits.add(str(entry.get("git_commit") or "unknown")[:10])
            settings.add(", ".join(f"{k} {v}" for k, v in sorted(entry["settings"].items())))
    dates.discard("")
    span = " to ".join(sorted({min(dates), max(dates)})) if dates else "unknown dates"
    return (
        f"Scores made {span} at commit {', '.join(sorted(commits))}; `{protocol}` settings: "
        + "; ".join(f"({s})" for s in sorted(settings))
        + "."
    )


def suite_table(
    suite: str, results_dir: Path, protocol: str, published: bool = False
) -> str | None:
    """The markdown of one (suite, protocol) table, or None when nothing is stored."""
    suite_dir = results_dir / suite
    if not suite_dir.is_dir():
        return None
    tasks = suite_tasks(suite)
    stored = _stored(suite_dir)
    scores, ids = _table(stored, protocol, tasks)
    if not any(any(isinstance(c, Cell) for c in row.values()) for row in scores.values()):
        return None
    columns = [(t.folder, t.short) for t in tasks]
    maximize = {t.folder: get_metric(t.primary).maximize for t in tasks}
    floor = next((m for m in scores if m.startswith(FLOOR_MODEL)), None)
    s_values = s_of_m(scores, [t.folder for t in tasks], floor, maximize=maximize) if floor else {}
    rows = [(label, row) for label, row in scores.items()]
    chance_path = suite_dir / "chance.json"
    if chance_path.is_file():
        chance = json.loads(chance_path.read_text())
        applicable = {t.folder for t in tasks if applies(protocol, t.embedding, t.prediction)}
        chances = {k: Cell(v) for k, v in chance.items() if v is not None and k in applicable}
        rows.append(("chance", chances))
    extra = {"s(m)": {m: f"{v:.1f}" for m, v in s_values.items() if v is not None}}
    if published and suite in ("hear", "nat-hear") and PUBLISHED.is_file():
        rows.extend(_published_rows(tasks))
    text = [
        f"### {suite} · {protocol}\n",
        markdown(rows, columns, extra),
        "",
        _footer(tasks, scores, ids, floor, published, provenance(stored, protocol)),
    ]
    if has_undefined(rows):
        text.insert(3, f"- {UNDEFINED_NOTE}")
    return "\n".join(text)


def _published_rows(tasks: list[SuiteTask]) -> list[tuple[str, dict]]:
    with PUBLISHED.open() as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        cells = {t.folder: parse_published(r.get(t.short, "")) for t in tasks}
        out.append((f"{r['model']} {r['size']} (published)", cells))
    return out


def _footer(tasks, scores, ids, floor, published, made) -> str:
    lines = [
        f"Scores ×100: test score (train/valid/test tasks) or mean ± std over folds; primary "
        f"metric per task: {', '.join(f'{t.short} {t.primary}' for t in tasks)}.",
        f"s(m): floor {floor or '(no HEAR-Naive row: not computed)'}, ceiling the best of "
        f"{', '.join(m for m in scores)} per task; terms clipped at 0, 0/0 counts as 0, an "
        f"undefined score ({UNDEFINED}) counts as 0 and is never floor or ceiling."
        + (" Published rows are not part of s(m)." if published else ""),
        "Models: " + "; ".join(f"{m} = `{ids[m]}`" for m in scores) + ".",
        made,
    ]
    return "\n".join(f"- {line}" for line in lines) + "\n"


def robustness_table(results_dir: Path, protocol: str, clean: str, nat: str) -> str | None:
    if not (results_dir / clean).is_dir() or not (results_dir / nat).is_dir():
        return None
    tasks = suite_tasks(clean)
    clean_scores, _ = load_scores(results_dir / clean, protocol, tasks)
    nat_scores, _ = load_scores(results_dir / nat, protocol, tasks)
    deltas = robustness(clean_scores, nat_scores)
    if not any(isinstance(c, Cell) for row in deltas.values() for c in row.values()):
        return None
    columns = [(t.folder, t.short) for t in tasks]
    rows = list(deltas.items())
    note = f"- {UNDEFINED_NOTE}\n" if has_undefined(rows) else ""
    return (
        f"### robustness · {nat} minus {clean} · {protocol}\n\n"
        + markdown(rows, columns, signed=True)
        + "\n- Difference of the headline scores ×100 (negative: the model loses on Nat).\n"
        + note
    )


@dataclass(frozen=True)
class PretrainedModel:
    """A model of the tables that is a checkpoint exported by a pretraining run."""

    label: str  # its row label in the tables
    checkpoint: Path
    step: int | None
    extra: dict  # the checkpoint header's extra: run, git_commit, recipe

    @property
    def run(self) -> str:
        return str(self.extra.get("run") or self.checkpoint.parent.name)

    @property
    def run_dir(self) -> Path | None:
        """The run folder: the checkpoint's own folder when it is one (it holds config.yaml),
        else $HEAR_WAVJEPA_HOME/runs/<run>; None when neither exists."""
        for folder in (self.checkpoint.parent, paths.runs_dir() / self.run):
            if (folder / "config.yaml").is_file():
                return folder
        return None

    @property
    def curves_file(self) -> str:
        """The name of the run's learning-curve PNG in the results folder."""
        return curves_file(self.run)


def curves_file(run: str) -> str:
    return (
        "learning-curves-" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", run).strip("-.") or "run") + ".png"
    )


def pretrained_models(suite_dir: Path) -> list[PretrainedModel]:
    """The models of a suite's results whose checkpoint (still at the path model.json names)
    carries a pretraining recipe in its header, labelled as in the tables."""
    out, labels = [], set()
    if not suite_dir.is_dir():
        return out
    for model_dir in sorted(p for p in suite_dir.iterdir() if (p / "model.json").is_file()):
        info = json.loads((model_dir / "model.json").read_text())
        label = info["name"] if info["name"] not in labels else model_dir.name
        labels.add(label)
        path = Path(info.get("model_path") or "")
        if path.suffix != ".safetensors" or not path.is_file():
            continue
        try:
            header = read_header(path)
        except CheckpointError:
            continue
        extra = header.metadata["extra"]
        if isinstance(extra.get("recipe"), dict):
            out.append(PretrainedModel(label, path, header.metadata["step"], extra))
    return out


def describe_pretrained(model: PretrainedModel) -> str:
    """One line: what the checkpoint is, from its header (preset, steps, crops, corpus, run)."""
    recipe = model.extra["recipe"]

    def section(name: str) -> dict:
        value = recipe.get(name)
        return value if isinstance(value, dict) else {}

    preset = section("model").get("preset", "?")
    data, train = section("data"), section("train")
    clips, per_clip = data.get("clips_per_step"), data.get("crops_per_clip")
    crops = clips * per_clip if isinstance(clips, int) and isinstance(per_clip, int) else "?"
    total = train.get("steps")
    corpus = _corpus_name(str(data.get("path", "")))
    if section("scenes").get("enabled"):
        corpus += ", Nat scenes rendered online"
    run = f"runs/{model.run}"
    if model.step == 0:
        what = f"{preset} preset at step 0 of {run}: the random initialisation it trained from"
    else:
        steps = model.step if model.step is not None else total
        what = f"{preset} preset, {steps} steps × {crops} crops ({clips} clips × {per_clip})"
        what += f" on {corpus} ({run}"
        what += f", step {model.step} of {total})" if steps != total else ")"
    commit = str(model.extra.get("git_commit") or "unknown")[:10]
    return f"{model.label}: {what}; trained at commit {commit}."


def _corpus_name(path: str) -> str:
    if not path:
        return "an unnamed corpus"
    try:
        offline = Path(path).expanduser().resolve() == paths.corpus_dir().resolve()
    except (OSError, RuntimeError):
        offline = False
    return "the offline synthetic corpus" if offline else f"`{path}`"


def models_section(results_dir: Path, suite: str) -> str | None:
    """The "Pretrained models" section of a suite's markdown: a line per pretrained checkpoint
    and the learning curves of its run; None when no model is one (the file stays as it was)."""
    models = pretrained_models(results_dir / suite)
    if not models:
        return None
    lines = ["## Pretrained models\n"]
    lines += [f"- {describe_pretrained(m)}" for m in models]
    for name, run in {m.curves_file: m.run for m in models}.items():
        if (results_dir / name).is_file():
            lines += ["", f"Learning curves of runs/{run} ([{name}]({name})):", "", f"![]({name})"]
    return "\n".join(lines) + "\n"


def write_tables(results_dir: Path, published: bool = True) -> list[Path]:
    """Regenerate every table (and chart) from the stored scores; returns the files written."""
    results_dir = Path(results_dir)
    written = []
    for suite in ("mini", "mini-nat", "hear", "nat-hear"):
        parts = [t for p in PROTOCOLS if (t := suite_table(suite, results_dir, p, published))]
        if parts:
            path = results_dir / f"{suite}.md"
            models = models_section(results_dir, suite)
            parts += [models] if models else []
            write_text(path, f"# {suite} results\n\n" + "\n".join(parts))
            written.append(path)
            chart = _bar_chart(results_dir, suite)
            if chart:
                written.append(chart)
    for clean, nat in (("mini", "mini-nat"), ("hear", "nat-hear")):
        parts = [t for p in PROTOCOLS if (t := robustness_table(results_dir, p, clean, nat))]
        if parts:
            path = results_dir / f"robustness-{nat}.md"
            write_text(path, f"# Robustness: {nat} vs {clean}\n\n" + "\n".join(parts))
            written.append(path)
    return written


def _bar_chart(results_dir: Path, suite: str) -> Path | None:
    """Grouped bars: MLP headline per task and model."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    tasks = suite_tasks(suite)
    scores, _ = load_scores(results_dir / suite, "mlp")
    if not scores:
        return None
    fig, ax = plt.subplots(figsize=(1.2 * len(tasks) + 2, 4))
    width = 0.8 / len(scores)
    for i, (model, row) in enumerate(scores.items()):
        cells = [row.get(t.folder) for t in tasks]
        values = [
            c.mean * 100 if isinstance(c, Cell) and not math.isnan(c.mean) else 0 for c in cells
        ]
        ax.bar([j + i * width for j in range(len(tasks))], values, width, label=model)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(tasks))], [t.short for t in tasks])
    ax.set_ylabel("primary test score ×100")
    ax.set_title(f"{suite} · HEAR MLP protocol")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = atomic_write(
        results_dir / f"{suite}.png", lambda f: fig.savefig(f, format="png", dpi=110)
    )
    plt.close(fig)
    return path
