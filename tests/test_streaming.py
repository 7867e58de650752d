"""Streaming pretraining data: shards and manifests read in DataLoader workers, disjoint across
ranks and workers, resumable from the checkpointed positions, Nat scenes rendered in the workers,
unreadable members skipped or fatal, missing shards named."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch
from shards import write_shards
from test_training_data import small_banks

from hear_wavjepa import cli
from hear_wavjepa.scenes.render import SceneConfig
from hear_wavjepa.training.decoded_corpus import CorpusError
from hear_wavjepa.training.feed import open_stream, stream_state
from hear_wavjepa.training.loop import pretrain
from hear_wavjepa.training.recipe import RecipeError, load_recipe
from hear_wavjepa.training.scenes import BankRenderer
from hear_wavjepa.training.sources import find_stream, stream_format
from hear_wavjepa.training.stream_order import Position, StreamKey, records

TESTS = Path(__file__).parent
TINY = TESTS.parent / "train" / "tiny-cpu.yaml"
CLI = Path(sys.executable).parent / "hear-wavjepa"


def feed_of(spec: str, *overrides: str, renderer=None, saved=None, rank=0, world=1):
    recipe = load_recipe(
        None, [f"data.path={spec}", "data.clips_per_step=1", "data.crops_per_clip=2", *overrides]
    )
    source = find_stream(spec)
    return open_stream(recipe, recipe.model_config(), source, renderer, rank, world, saved)


def take(feed, steps: int) -> list:
    items = []
    for step in range(steps):
        _, got = feed.take(step)
        feed.consumed(got)
        items += got
    return items


def test_data_path_kinds_and_formats(tmp_path):
    write_shards(tmp_path / "s", shards=3)
    pattern = str(tmp_path / "s" / "shard-{000..002}.tar")
    assert stream_format(pattern, "auto") == "stream"
    assert stream_format(str(tmp_path / "s"), "auto") == "stream"  # a folder of shards
    assert find_stream(pattern).units == find_stream(str(tmp_path / "s" / "*.tar")).units
    assert len(find_stream(f"{pattern}::{pattern}").units) == 6
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(2):
        sf.write(audio / f"{i}.wav", torch.zeros(8000).numpy(), 8000)
    assert stream_format(str(audio), "auto") == "memmap"
    manifest = tmp_path / "train.tsv"
    manifest.write_text(f"{audio}\n0.wav\t8000\n1.wav\t8000\n")
    assert stream_format(str(manifest), "auto") == "stream"
    assert find_stream(str(manifest)).units == (str(audio / "0.wav"), str(audio / "1.wav"))
    items = take(feed_of(str(manifest), "data.workers=0", "data.shuffle_buffer=1"), 4)
    assert [i.names[0] for i in items][:2] in ([str(audio / f"{i}.wav") for i in o] for o in
                                               ((0, 1), (1, 0)))  # fmt: skip
    assert items[0].batch.audio.shape == (2, 1, 32159)
    with pytest.raises(CorpusError, match="set data.format=stream"):
        stream_format(str(manifest), "memmap")


def test_missing_shard_is_an_error_naming_it(tmp_path, capsys):
    write_shards(tmp_path, shards=3)
    with pytest.raises(CorpusError, match=r"shard-003\.tar: no such shard"):
        find_stream(str(tmp_path / "shard-{000..003}.tar"))
    spec = f"data.path={tmp_path}/shard-{{000..003}}.tar"
    args = ["pretrain", "--config", str(TINY), spec, "monitor.every=0"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "shard-003.tar: no such shard" in err


def test_corrupt_member_is_skipped_with_a_warning_or_stops_the_run(tmp_path):
    write_shards(tmp_path, shards=2, corrupt=(1, 2))
    spec = str(tmp_path / "shard-{000..001}.tar")
    with pytest.warns(UserWarning, match=r"skipping .*shard-001\.tar::1-2\.flac: cannot decode"):
        items = take(
            feed_of(spec, "data.workers=0", "data.skip_unreadable=true", "data.shuffle_buffer=1"), 6
        )
    assert items[-1].skipped == 1
    assert all("1-2.flac" not in n for i in items for n in i.names)
    feed = feed_of(spec, "data.workers=2", "data.shuffle_buffer=1")  # stops, from a worker
    with pytest.raises(CorpusError, match=r"shard-001\.tar::1-2\.flac: cannot decode audio"):
        take(feed, 6)
    feed.close()


def test_nat_scenes_are_rendered_in_the_workers(tmp_path):
    write_shards(tmp_path, shards=2)
    renderer = BankRenderer(*small_banks(), SceneConfig(snr=(5.0, 40.0)))
    feed = feed_of(
        str(tmp_path / "shard-{000..001}.tar"),
        "model.preset=tiny-nat",
        "scenes.enabled=true",
        "data.workers=2",
        renderer=renderer,
    )
    items = take(feed, 2)
    feed.close()
    assert {i.worker for i in items} == {0, 1}
    assert all(i.pid != os.getpid() for i in items)
    for item in items:
        audio = item.batch.audio
        assert audio.shape == (2, 2, 32159) and torch.isfinite(audio).all()
        assert not torch.equal(audio[:, 0], audio[:, 1])  # two different ears


def test_resume_continues_each_worker_stream_after_its_checkpointed_position(tmp_path):
    """Workers 0 and 1 each read 3 shards of 3 clips per epoch through a buffer of 3 clips."""
    write_shards(tmp_path, shards=6)
    spec, buffer = str(tmp_path / "shard-{000..005}.tar"), 3
    args = ("data.workers=2", f"data.shuffle_buffer={buffer}")
    first = feed_of(spec, *args)
    before = take(first, 4)  # two clips from each worker
    saved = json.loads(json.dumps(stream_state([first.state()], 1, 2)))  # as a checkpoint has it
    after = take(first, 10)  # the uninterrupted run
    first.close()
    resumed = feed_of(spec, *args, saved=saved)
    again = take(resumed, 10)
    resumed.close()
    for worker in (0, 1):
        key = StreamKey(42, 0, 1, worker, 2, False)
        stream = records(find_stream(spec), key, Position(), on_error=None)
        # (clip, epoch) in the order the worker reads them: epochs 0 and 1, unshuffled
        order = [(r.name, r.epoch) for r, _ in itertools.islice(stream, 18)]
        consumed = [
            c for i in before if i.worker == worker for c in zip(i.names, i.epochs, strict=True)
        ]
        read = saved["ranks"][0]["positions"][str(worker)][3]
        resumed = [
            c for i in again if i.worker == worker for c in zip(i.names, i.epochs, strict=True)
        ]
        # at the checkpoint the buffer held buffer - 1 read clips; resuming drops exactly those
        dropped = set(order[:read]) - set(consumed)
        assert len(dropped) == buffer - 1 and set(consumed) <= set(order[:read])
        # the resumed stream reads on from the checkpointed position: nothing read before comes
        # again, nothing after it is left out beyond what the new buffer still holds
        assert len(resumed) == 5 and set(resumed) <= set(order[read : read + 5 + buffer - 1])
        # a clip both runs train on gets the same crops (seeded by its record count)
        same = {i.names[0]: i.batch.audio for i in after if i.worker == worker}
        shared = [i for i in again if i.worker == worker and i.names[0] in same]
        assert shared and all(torch.equal(same[i.names[0]], i.batch.audio) for i in shared)
    with pytest.raises(RecipeError, match="resume it with the same"):
        feed_of(spec, "data.workers=1", saved=saved)


@pytest.mark.slow
def test_two_gloo_ranks_and_two_workers_see_disjoint_clips_per_epoch(tmp_path):
    write_shards(tmp_path / "shards", shards=4)
    spec = str(tmp_path / "shards" / "shard-{000..003}.tar")
    script = str(TESTS / "stream_ranks.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", script, spec, str(tmp_path)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS.parent)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    streams: dict[tuple[int, int], list[str]] = {}
    for rank in (0, 1):
        for name, epoch, worker in json.loads((tmp_path / f"rank-{rank}.json").read_text()):
            if epoch == 0:
                streams.setdefault((rank, worker), []).append(name)
    assert len(streams) == 4  # 2 ranks x 2 workers, one shard each per epoch
    everything = [n for names in streams.values() for n in names]
    assert len(everything) == len(set(everything)) == 12  # disjoint, and all 4 x 3 clips
    for names in streams.values():
        assert len({n.split("::")[0] for n in names}) == 1


@pytest.mark.slow
def test_pretrain_streams_shards_without_writing_a_decoded_corpus(tmp_path):
    write_shards(tmp_path / "shards", shards=4)
    home = tmp_path / "home"
    command = [str(CLI), "pretrain", "--no-progress", "--config", str(TINY),
               f"data.path={tmp_path}/shards/shard-{{000..003}}.tar", "train.steps=3",
               "train.name=streamed", "data.workers=2", "data.clips_per_step=4",
               "monitor.every=0"]  # fmt: skip
    env = {**os.environ, "HEAR_WAVJEPA_HOME": str(home), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = home / "runs" / "streamed"
    assert (run / "model.safetensors").is_file()
    assert sorted(p.name for p in home.iterdir()) == ["runs"]  # no corpora/
    state = json.loads((run / "checkpoints" / "step-00000003" / "state.json").read_text())
    assert state["stream"]["workers"] == 2 and state["stream"]["world"] == 1
    assert sum(p[3] for p in state["stream"]["ranks"][0]["positions"].values()) > 0


@pytest.mark.slow
def test_resumed_streaming_run_continues_from_the_checkpointed_positions(tmp_path, monkeypatch):
    """A 4-step run, and the same run resumed from its step-2 checkpoint: the resumed stream
    restarts at the step-2 position with an empty buffer, so it ends buffer - 1 records on."""
    monkeypatch.setenv("HEAR_WAVJEPA_HOME", str(tmp_path / "home"))
    write_shards(tmp_path / "shards", shards=2, per_shard=8)
    buffer = 4
    overrides = [
        f"data.path={tmp_path}/shards/shard-{{000..001}}.tar",
        "train.steps=4",
        "train.name=a",
        "train.checkpoint_every=2",
        "data.workers=1",
        f"data.shuffle_buffer={buffer}",
        "data.clips_per_step=2",
        "train.threads=1",
        "monitor.every=0",
    ]
    recipe = load_recipe(TINY, overrides)
    threads = torch.get_num_threads()
    try:
        full = pretrain(recipe, progress=False)
        copy = full.parent / "b"
        shutil.copytree(full, copy)
        shutil.rmtree(copy / "checkpoints" / "step-00000004")
        (copy / "model.safetensors").unlink()
        resumed = pretrain(resume="b", progress=False)
    finally:
        torch.set_num_threads(threads)

    def count(run: Path, step: int) -> int:
        state = json.loads((run / "checkpoints" / f"step-{step:08d}" / "state.json").read_text())
        return state["stream"]["ranks"][0]["positions"]["0"][3]

    assert count(full, 2) == buffer + 3  # the 4th clip left the buffer when 7 were read
    assert count(full, 4) == buffer + 7
    assert count(resumed, 4) == count(full, 2) + buffer + 3 == count(full, 4) + buffer - 1
