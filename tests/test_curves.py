"""Learning curves you can see: `hear-wavjepa plot` draws metrics.csv (training and probe rows)
into a PNG, refuses a folder without metrics.csv in one line (exit 2), and the results tables
name a pretrained checkpoint for what it is and show its run's curves."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import write_mini_pair

from hear_wavjepa.checkpoint import save_checkpoint
from hear_wavjepa.cli import main
from hear_wavjepa.evaluation.models import parse_model
from hear_wavjepa.evaluation.orchestrate import run_eval
from hear_wavjepa.evaluation.report import describe_pretrained, pretrained_models
from hear_wavjepa.model import WavJEPA, preset
from hear_wavjepa.paths import recipe_file
from hear_wavjepa.pipeline import write_results
from hear_wavjepa.training.curves import (
    CURVES_FILE,
    CurvesError,
    draw_curves,
    find_metrics,
    read_metrics,
)
from hear_wavjepa.training.metrics_log import METRICS
from hear_wavjepa.training.recipe import load_recipe

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TASKS = ("m-SC", "m-LC")
PROBES = [f"probe/{e}/{p}/{t}" for e in ("student", "teacher") for p in ("knn", "linear")
          for t in TASKS]  # fmt: skip


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("HEAR_WAVJEPA_HOME", str(tmp_path / "home"))


def write_metrics(folder: Path, steps: int = 60, probe_every: int | None = 20) -> Path:
    """A metrics.csv as the loop and the probe monitor write it: a training row per update, a
    probe row (training columns empty) every `probe_every` updates, from step 0 to `steps`."""
    columns = list(METRICS) + ([*PROBES, "probe_s"] if probe_every else [])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metrics.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for step in range(steps + 1):
            if probe_every and step % probe_every == 0:
                scores = {c: repr(0.3 + 0.001 * step + 0.01 * i) for i, c in enumerate(PROBES)}
                writer.writerow({"step": step, **scores, "probe_s": "1.5"})
            if step < steps:
                writer.writerow({"step": step, "loss": repr(math.exp(-step / 30)),
                                 "target_std": "0.98", "context_rank": repr(5 + step % 3),
                                 "lr": "0.0002"})  # fmt: skip
    return path


def _png(path: Path) -> bytes:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    return data


def test_plot_draws_training_and_probe_panels(tmp_path):
    metrics = write_metrics(tmp_path / "run")
    read = read_metrics(metrics)
    assert len(read.training["loss"][0]) == 60 and "probe_s" in read.training
    assert read.probes[("teacher", "knn", "m-SC")][0] == [0, 20, 40, 60]
    assert read.protocols == ["knn", "linear"]
    titles = draw_curves(metrics, tmp_path / "curves.png")
    _png(tmp_path / "curves.png")
    assert titles[:3] == ["loss", "context_rank (1 = collapsed)", "target_std"]
    assert titles[3:] == [
        "kNN probe: change since step 0 ×100",
        "linear probe: change since step 0 ×100",
    ]


def test_plot_reads_old_runs_and_probe_only_files(tmp_path):
    old = write_metrics(tmp_path / "old", probe_every=None)  # a run from before the monitor
    assert draw_curves(old, tmp_path / "old.png") == [
        "loss",
        "context_rank (1 = collapsed)",
        "target_std",
    ]
    only = tmp_path / "probes" / "metrics.csv"  # probe rows only, no step-0 row, a short file
    only.parent.mkdir()
    only.write_text("step,probe/teacher/linear/m-SC,probe_s\n5,0.5,2.0\n10,,\n15,0.6,2.1\n")
    titles = draw_curves(only, tmp_path / "probes.png")
    assert titles[3:] == ["linear probe: change since the first probe ×100"]
    _png(tmp_path / "probes.png")
    empty = tmp_path / "empty" / "metrics.csv"
    empty.parent.mkdir()
    empty.write_text(",".join(METRICS) + "\n")
    with pytest.raises(CurvesError, match="no training or probe rows"):
        draw_curves(empty, tmp_path / "empty.png")


def test_plot_command_writes_into_the_run_folder(tmp_path, capsys):
    run = tmp_path / "home" / "runs" / "r1"
    write_metrics(run)
    assert main(["plot", "r1"]) == 0  # a run name under $HEAR_WAVJEPA_HOME/runs
    assert capsys.readouterr().out.strip() == str(run / CURVES_FILE)
    _png(run / CURVES_FILE)
    out = tmp_path / "elsewhere" / "c.png"
    assert main(["plot", str(run), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    _png(out)


@pytest.mark.parametrize(
    ("target", "fragment"),
    [("empty", "no metrics.csv"), ("no-such-run", "not a run")],
)
def test_plot_errors_are_one_line_exit_2(tmp_path, capsys, target, fragment):
    (tmp_path / "empty").mkdir()
    argument = str(tmp_path / target) if target == "empty" else target
    assert main(["plot", argument]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("hear-wavjepa plot: error: ") and fragment in err[0]
    assert not list((tmp_path / "empty").iterdir())
    with pytest.raises(CurvesError):
        find_metrics(argument)


def _pretrained_run(home: Path, name: str = "tiny-x", step: int = 600) -> Path:
    """A run folder as `pretrain` leaves it: config.yaml, metrics.csv, model.safetensors whose
    header holds the run name, commit and recipe (tiny-cpu.yaml on the offline corpus)."""
    overrides = [f"data.path={home / 'corpus'}", f"train.steps={step}"]
    recipe = load_recipe(recipe_file("tiny-cpu.yaml"), overrides)
    run = home / "runs" / name
    write_metrics(run)
    (run / "config.yaml").write_text(recipe.to_yaml())
    torch.manual_seed(0)
    model = WavJEPA(preset("tiny"))
    extra = {"run": name, "git_commit": "0123456789abcdef", "recipe": recipe.to_dict()}
    return save_checkpoint(run / "model.safetensors", model.state_dict(), model.config,
                           step=step, extra=extra)  # fmt: skip


def test_a_pretrained_checkpoint_is_described_from_its_header(tmp_path):
    checkpoint = _pretrained_run(tmp_path / "home")
    suite = tmp_path / "results" / "mini"
    for name, path in (("pre", checkpoint), ("other", tmp_path / "missing.safetensors")):
        (suite / name).mkdir(parents=True)
        (suite / name / "model.json").write_text(
            json.dumps({"name": name, "model_path": str(path)})
        )
    (models,) = pretrained_models(suite)  # the missing checkpoint is left out
    assert models.run_dir == checkpoint.parent
    assert describe_pretrained(models) == (
        "pre: tiny preset, 600 steps × 32 crops (16 clips × 2) on the offline synthetic corpus "
        "(runs/tiny-x); trained at commit 0123456789."
    )


def test_the_tables_name_the_pretrained_model_and_show_its_curves(tmp_path):
    home, results = tmp_path / "home", tmp_path / "results"
    checkpoint = _pretrained_run(home)
    tasks = write_mini_pair(tmp_path / "tasks")
    naive = parse_model("hear-naive=hear_wavjepa.baselines.naive")
    kwargs = dict(protocols=["knn"], grid="faster", tasks_dir=tasks, results_dir=results)
    run_eval("mini", [naive], **kwargs)
    plain = {p.name: p.read_bytes() for p in write_results(results)}
    assert (
        "## Pretrained models" not in plain["mini.md"].decode()
    )  # no pretraining run: no section, no PNG
    assert not list(results.glob("learning-curves-*"))
    run_eval("mini", [naive, parse_model(f"wavjepa-tiny-pretrained={checkpoint}")], **kwargs)
    written = {p.name: p for p in write_results(results)}
    text = written["mini.md"].read_text()
    tables, models = text.split("## Pretrained models\n")
    assert "| wavjepa-tiny-pretrained |" in tables
    assert "- wavjepa-tiny-pretrained: tiny preset, 600 steps × 32 crops" in models
    assert "![](learning-curves-tiny-x.png)" in models
    _png(written["learning-curves-tiny-x.png"])
