"""Pretraining end to end on a tiny corpus: exact resume, DDP = one process, NaN stop, export."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import hear_wavjepa
from hear_wavjepa import cli
from hear_wavjepa.checkpoint import load_encoder, read_checkpoint
from hear_wavjepa.model.jepa import WavJEPA
from hear_wavjepa.training.loop import TrainingDiverged, pretrain
from hear_wavjepa.training.recipe import Recipe, load_recipe

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "train" / "tiny-cpu.yaml"
CLI = Path(sys.executable).parent / "hear-wavjepa"
STEPS = 4


def write_corpus(folder: Path, count: int = 3) -> Path:
    """`count` short clips at different rates, one stereo, written with soundfile."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        rate = (16_000, 22_050, 44_100)[i % 3]
        t = np.arange(int(rate * (4 + i))) / rate
        x = 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) + 0.05 * rng.standard_normal(t.size)
        if i == 1:
            x = np.stack([x, 0.5 * x], axis=1)
        sf.write(folder / f"clip{i}.{('wav', 'flac')[i % 2]}", x, rate)
    return folder


def overrides(corpus: Path, name: str, *extra: str) -> list[str]:
    return [
        f"data.path={corpus}",
        f"train.name={name}",
        f"train.steps={STEPS}",
        "data.clips_per_step=2",
        "data.crops_per_clip=4",
        "optim.warmup_steps=0",
        "train.checkpoint_every=1",
        "train.threads=1",
        "monitor.every=0",
        *extra,
    ]


def losses(run: Path) -> list[str]:
    with (run / "metrics.csv").open() as f:
        return [row["loss"] for row in csv.DictReader(f)]


def run_in_process(recipe: Recipe | None = None, resume: str | None = None) -> Path:
    """`pretrain` in this process, restoring torch's thread count (recipes set it)."""
    threads = torch.get_num_threads()
    try:
        return pretrain(recipe, resume=resume, progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def home(module_home):
    return module_home


@pytest.fixture(scope="module")
def corpus(home):
    return write_corpus(home / "corpus")


@pytest.fixture(scope="module")
def reference(corpus):
    """An uninterrupted run of STEPS steps, in this process."""
    return run_in_process(load_recipe(TINY, overrides(corpus, "reference")))


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "HEAR_WAVJEPA_HOME": str(home), "OMP_NUM_THREADS": "1"}


def test_run_folder_holds_config_commit_metrics_and_export(reference):
    assert load_recipe(reference / "config.yaml").train.steps == STEPS
    assert "git_commit" in (reference / "run.json").read_text()
    assert len(losses(reference)) == STEPS
    assert all(np.isfinite(float(v)) for v in losses(reference))
    encoder, checkpoint = load_encoder(reference / "model.safetensors")
    assert checkpoint.metadata["step"] == STEPS
    with torch.no_grad():
        out = encoder(torch.randn(1, 1, checkpoint.config.crop_samples))
    assert out.shape == (1, 200, checkpoint.config.encoder.dim)
    assert torch.isfinite(out).all()
    model = hear_wavjepa.load_model(str(reference / "model.safetensors"))
    scene = hear_wavjepa.get_scene_embeddings(torch.randn(2, 16_000) * 0.1, model)
    assert scene.shape[0] == 2 and torch.isfinite(scene).all()


@pytest.mark.slow
def test_kill_and_resume_reproduces_losses_bit_exactly(home, corpus, reference):
    command = [
        str(CLI),
        "pretrain",
        "--config",
        str(TINY),
        "--no-progress",
        *overrides(corpus, "killed"),
    ]
    process = subprocess.Popen(command, env=_env(home), stderr=subprocess.PIPE)
    state = home / "runs" / "killed" / "checkpoints" / "step-00000002" / "state.json"
    deadline = time.monotonic() + 180
    while not state.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    _, err = process.communicate()
    assert state.is_file(), err.decode()[-2000:]
    assert not (home / "runs" / "killed" / "model.safetensors").exists()

    done = subprocess.run(
        [str(CLI), "pretrain", "--resume", "killed", "--no-progress"],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    killed = home / "runs" / "killed"
    assert losses(killed) == losses(reference)
    a = read_checkpoint(killed / "model.safetensors")
    b = read_checkpoint(reference / "model.safetensors")
    assert a.metadata["sha256"] == b.metadata["sha256"]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(home, corpus, reference):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(CLI),
        "pretrain",
        "--config",
        str(TINY),
        "--no-progress",
        *overrides(corpus, "ddp"),
    ]
    done = subprocess.run(command, env=_env(home), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    two = [float(v) for v in losses(home / "runs" / "ddp")]
    one = [float(v) for v in losses(reference)]
    assert len(two) == len(one) == STEPS
    np.testing.assert_allclose(two, one, rtol=1e-5)
    assert two[0] != two[-1]  # the model moved: later steps test the synchronised update


def test_gradient_accumulation_matches_one_batch(corpus, reference):
    run = run_in_process(
        load_recipe(TINY, overrides(corpus, "accumulated", "train.accumulation=2"))
    )
    two = [float(v) for v in losses(run)]
    np.testing.assert_allclose(two, [float(v) for v in losses(reference)], rtol=1e-5)


@pytest.mark.slow
def test_frontend_lr_scale_zero_freezes_the_conv_stacks_only(corpus, reference):
    """tiny-cpu.yaml keeps the conv stacks at their init (scale 0); scale 1 trains them. Each
    run also exports its starting weights, init.safetensors."""
    assert load_recipe(reference / "config.yaml").optim.frontend_lr_scale == 0.0
    recipe = load_recipe(TINY, overrides(corpus, "full-rate", "optim.frontend_lr_scale=1"))
    run = run_in_process(recipe)
    torch.manual_seed(recipe.train.seed)
    initial = WavJEPA(recipe.model_config()).state_dict()
    for folder in (run, reference):
        exported = read_checkpoint(folder / "init.safetensors").tensors
        assert all(torch.equal(exported[k], v) for k, v in initial.items())
        trained = read_checkpoint(folder / "model.safetensors").tensors
        conv = [k for k in trained if k.startswith("encoder.frontend.stacks.")]
        frozen = all(torch.equal(trained[k], initial[k]) for k in conv)
        assert conv and frozen == (folder == reference), folder
        assert not torch.equal(
            trained["encoder.frontend.feature_proj.weight"],
            initial["encoder.frontend.feature_proj.weight"],
        )


@pytest.mark.slow
def test_resuming_a_finished_run_exports_a_missing_init(corpus):
    """Runs of older versions have no init.safetensors: `--resume` writes it, model unchanged."""
    run = run_in_process(load_recipe(TINY, overrides(corpus, "no-init")))
    before = read_checkpoint(run / "model.safetensors").tensors
    init = read_checkpoint(run / "init.safetensors").tensors
    (run / "init.safetensors").unlink()
    run_in_process(resume=str(run))
    after = read_checkpoint(run / "model.safetensors").tensors
    assert all(torch.equal(before[k], after[k]) for k in before)
    again = read_checkpoint(run / "init.safetensors").tensors
    assert all(torch.equal(init[k], again[k]) for k in init)


def test_nan_loss_stops_naming_step_and_last_checkpoint(corpus):
    recipe = load_recipe(TINY, overrides(corpus, "diverged", "optim.lr=1e30"))
    with pytest.raises(TrainingDiverged, match=r"step 1: the loss is nan") as info:
        run_in_process(recipe)
    assert "checkpoints/step-00000001" in str(info.value)
    run = Path(os.environ["HEAR_WAVJEPA_HOME"]) / "runs" / "diverged"
    assert (run / "checkpoints" / "step-00000001" / "state.json").is_file()
    assert not (run / "model.safetensors").exists()


def test_cli_reports_unknown_key_and_empty_corpus(home, tmp_path, capsys):
    assert cli.main(["pretrain", "--config", str(TINY), "optim.lrr=1e-3"]) == 2
    assert "unknown recipe key 'optim.lrr'; did you mean 'optim.lr'?" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["pretrain", "--config", str(TINY), f"data.path={empty}", "train.name=empty"]
    args.append("monitor.every=0")
    assert cli.main(args) == 2
    assert f"{empty}: no audio files" in capsys.readouterr().err
    assert not (home / "runs" / "empty").exists()


@pytest.mark.slow
def test_demo_run_is_trained_once_then_found(home, corpus, capsys):
    """`pretrain --demo` (the main job's and `nox -s pretrain`'s run): trains tiny-cpu.yaml into
    runs/tiny-cpu with the overrides given, then finds the finished run and trains nothing."""
    threads = torch.get_num_threads()
    extra = [o for o in overrides(corpus, "unused") if not o.startswith("train.name=")]
    try:
        assert cli.main(["pretrain", "--demo", "--no-progress", *extra]) == 0
        model = home / "runs" / "tiny-cpu" / "model.safetensors"
        assert f"exported checkpoint: {model}" in capsys.readouterr().out
        stamp = model.stat().st_mtime_ns
        assert len(losses(model.parent)) == STEPS
        assert cli.main(["pretrain", "--demo"]) == 0
        assert model.stat().st_mtime_ns == stamp
        assert cli.main(["pretrain", "--demo", "--config", str(TINY)]) == 2
        assert "--demo runs train/tiny-cpu.yaml" in capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)
