"""`naturalize`: reproducible, resumable Nat-HEAR copies of HEAR task folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml

from hear_wavjepa.hear_task import TaskError, load_task
from hear_wavjepa.scenes.naturalize import (
    MANIFEST,
    NatConfig,
    load_nat_config,
    naturalize,
    read_manifest,
    read_mono_16k,
    render_clip,
)
from hear_wavjepa.scenes.noise import load_noise_bank
from hear_wavjepa.scenes.render import ScenePlan, render_with_banks
from hear_wavjepa.scenes.rooms import load_room_bank


@pytest.fixture(scope="session")
def home(scene_home):
    """$HEAR_WAVJEPA_HOME for these tests: the tiny banks (tests/conftest.py) are built under it."""
    return scene_home


def run(task: Path, out: Path, home: Path, config: NatConfig, workers=1) -> Path:
    return naturalize(task, out, config, workers=workers, bank_root=home / "scenes", progress=False)


@pytest.mark.slow
def test_naturalize_is_reproducible_and_independent_of_workers(
    tone_task, tiny_nat, tree_digest, tmp_path, home
):
    task = tone_task(tmp_path / "suite" / "tvt")
    a = run(task, tmp_path / "a", home, tiny_nat, workers=1)
    b = run(task, tmp_path / "b", home, tiny_nat, workers=2)
    assert tree_digest(a) == tree_digest(b)
    out = load_task(a, sample_rate=16000)  # a valid HEAR task folder
    assert out.splits == ("train", "valid", "test") and out.sample_rates == (16000,)
    for split in out.splits:
        assert (a / f"{split}.json").read_bytes() == (task / f"{split}.json").read_bytes()
        for clip in out.clips[split]:
            info = soundfile.info(str(out.wav_path(split, clip)))
            assert (info.channels, info.samplerate, info.frames) == (2, 16000, 16000)
    nat = json.loads((a / "task_metadata.json").read_text())["nat"]
    assert nat["scene"]["snr"] == [5.0, 40.0] and nat["rooms"]["key"] == tiny_nat.rooms.key()
    assert nat["source_sample_rate"] == 16000 and nat["channels"] == 2
    _, _, plans = read_manifest(a)
    rooms = load_room_bank(tiny_nat.rooms, root=home / "scenes")
    noise = load_noise_bank(tiny_nat.noise, root=home / "scenes")
    test_noise = {str(noise.ids[i]) for i in noise.test_clips}
    for split, clips in plans.items():
        for plan in clips.values():
            held_out = plan["room"] in rooms.test_rooms
            assert held_out == (split == "test")
            assert all((n["clip_id"] in test_noise) == (split == "test") for n in plan["noises"])


@pytest.mark.slow
def test_interrupted_run_resumes_to_identical_output(
    tone_task, tiny_nat, tree_digest, tmp_path, home
):
    task = tone_task(tmp_path / "suite" / "long", per_split=12)
    reference = run(task, tmp_path / "reference", home, tiny_nat)
    config_file = tmp_path / "nat.yaml"
    config_file.write_text(yaml.safe_dump(json.loads(json.dumps(tiny_nat.to_dict()))))
    out = tmp_path / "killed"
    env = {**os.environ, "HEAR_WAVJEPA_HOME": str(home)}
    cmd = [sys.executable, "-m", "hear_wavjepa", "naturalize", str(task), str(out),
           "--config", str(config_file), "--workers", "1", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=Path(__file__).parents[1])
    wavs = out / "16000"
    deadline = time.monotonic() + 120
    while not list(wavs.rglob("*.wav")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = list(wavs.rglob("*.wav"))
    assert 0 < len(written) < 36 and not (out / "task_metadata.json").exists()
    for wav in written:  # finished clips are whole: nothing half-written under a final name
        assert soundfile.info(str(wav)).frames == 16000
    run(task, out, home, tiny_nat)
    assert tree_digest(out) == tree_digest(reference)
    # Deleting outputs (and leaving a stale temporary file) also resumes to the same bytes.
    for wav in sorted(wavs.rglob("*.wav"))[::3]:
        wav.unlink()
    (out / "task_metadata.json").unlink()
    (wavs / "test" / ".test-0.wav.k3j9x1.tmp").write_bytes(b"partial")  # atomicio temp name
    run(task, out, home, tiny_nat, workers=2)
    assert tree_digest(out) == tree_digest(reference)


def test_clip_rerenders_from_manifest_and_snr_is_measured(tone_task, tiny_nat, tmp_path, home):
    task = tone_task(tmp_path / "suite" / "snr")
    out = run(task, tmp_path / "out", home, tiny_nat)
    config, settings, plans = read_manifest(out)
    assert config == tiny_nat and settings["seed"] == 0
    rooms = load_room_bank(config.rooms, root=home / "scenes")
    noise = load_noise_bank(config.noise, root=home / "scenes")
    for split in ("train", "test"):
        for name, entry in plans[split].items():
            plan = ScenePlan.from_dict(entry)
            wav = task / "16000" / split / name
            pcm = render_clip(wav, 16000, plan, rooms, noise, config.scene)
            written, _ = soundfile.read(str(out / "16000" / split / name), dtype="int16")
            np.testing.assert_array_equal(pcm, written)
            parts = render_with_banks(read_mono_16k(wav, 16000), plan, rooms, noise, config.scene)
            on_disk = torch.from_numpy(written.T / 32767.0)
            source = on_disk - parts.noise.double()
            snr = 10 * torch.log10(source.pow(2).sum() / parts.noise.double().pow(2).sum())
            assert abs(float(snr) - plan.snr_db) < 1.0, (name, float(snr), plan.snr_db)


def test_event_task_at_48k(tone_task, tiny_nat, tmp_path, home):
    task = tone_task(tmp_path / "suite" / "events", rate=48000, event=True, per_split=2)
    out = run(task, tmp_path / "out", home, tiny_nat)
    nat = load_task(out, sample_rate=16000)  # event labels are still valid for the clip length
    assert nat.embedding_type == "event" and nat.clips["test"][0].events[0].start_ms == 100.0
    assert (
        json.loads((out / "task_metadata.json").read_text())["nat"]["source_sample_rate"] == 48000
    )
    for split in nat.splits:
        for clip in nat.clips[split]:
            info = soundfile.info(str(nat.wav_path(split, clip)))
            assert (info.channels, info.frames) == (2, 16000)
    # The 48 kHz source is resampled to 16 kHz: the 2 kHz tone stays at 2 kHz.
    x, _ = soundfile.read(str(nat.wav_path("train", nat.clips["train"][1])))
    peak_hz = np.argmax(np.abs(np.fft.rfft(x[:, 0]))) * 16000 / len(x)
    assert abs(peak_hz - 2000) < 20


def test_folds_use_disjoint_rooms_and_noise(tone_task, tiny_nat, tmp_path, home):
    task = tone_task(tmp_path / "suite" / "folds", folds=3, per_split=4)
    out = run(task, tmp_path / "out", home, tiny_nat)
    _, _, plans = read_manifest(out)
    rooms = {s: {p["room"] for p in c.values()} for s, c in plans.items()}
    noises = {s: {n["clip_id"] for p in c.values() for n in p["noises"]} for s, c in plans.items()}
    for i, a in enumerate(plans):
        for b in list(plans)[i + 1 :]:
            assert rooms[a].isdisjoint(rooms[b]) and noises[a].isdisjoint(noises[b])


def test_bad_inputs(tone_task, tiny_nat, tmp_path, home):
    with pytest.raises(TaskError, match="task_metadata.json"):
        run(tmp_path, tmp_path / "out", home, tiny_nat)
    with pytest.raises(ValueError, match="RT60 .* empty"):
        load_nat_config(rt60=(1.0, 0.5))
    with pytest.raises(ValueError, match="SNR .* absurd"):
        load_nat_config(snr=(5.0, 500.0))
    bad = tmp_path / "nat.yaml"
    bad.write_text(yaml.safe_dump({"rooms": {"hrtf": str(tmp_path / "nope.sofa")}}))
    with pytest.raises(ValueError, match="nope.sofa not found"):
        load_nat_config(bad)
    task = tone_task(tmp_path / "suite" / "t", per_split=1)
    out = run(task, tmp_path / "out2", home, tiny_nat)
    other = replace(tiny_nat, seed=1)
    with pytest.raises(ValueError, match="other settings"):
        naturalize(task, out, other, workers=1, bank_root=home / "scenes", progress=False)
    with pytest.raises(ValueError, match="must differ"):
        run(task, task, home, tiny_nat)
    assert (out / MANIFEST).is_file()
