"""Streaming data throughput of ONE worker process: clips/s and crops/s from FLAC-in-tar shards,
mono (WavJEPA) and with Nat scene rendering (WavJEPA-Nat), and the worker cores it would take to
feed the measured H100 training throughput (base, bf16, compiled: 1,076 crops/s).

    python tests/benchmarks/bench_data_pipeline.py [CLIPS]

The shards hold CLIPS (default 48) clips of 10 s stereo noise, PCM-16 FLAC at 44.1 kHz (YouTube's
usual rate, so every clip is resampled as AudioSet's would be), in 4 shards. One `ClipStream`
runs in this process with one torch thread, which is exactly what one DataLoader worker does:
read the tar (webdataset), shuffle, decode, condition (resample with kaiser_best, -14 dBFS, 10 s),
render the scene (Nat), cut 8 crops per clip, standardise, draw masks. The Nat banks are built
from synthetic responses of the default length (1 s, 2 channels) and coloured noise, so the
convolution costs what the real banks' does without simulating rooms first.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from shards import write_shards

from hear_wavjepa.model.presets import preset
from hear_wavjepa.scenes.noise import NoiseBank, NoiseBankConfig, coloured_noise
from hear_wavjepa.scenes.render import SceneConfig
from hear_wavjepa.scenes.rooms import RoomBank, RoomBankConfig
from hear_wavjepa.training.scenes import BankRenderer
from hear_wavjepa.training.sources import find_stream
from hear_wavjepa.training.stream_order import StreamKey
from hear_wavjepa.training.streaming import ClipStream, StreamSettings

GPU_CROPS_PER_S = 1076.0  # one H100, base, bf16, torch.compile (docs/pretraining.md)
CROPS_PER_CLIP = 8


def synthetic_banks() -> tuple[RoomBank, NoiseBank]:
    """Default-length binaural responses (decaying noise) and a noise bank of coloured noise."""
    rng = np.random.default_rng(0)
    config = RoomBankConfig(n_train=4, n_test=1, positions=3)
    taps = config.taps
    rirs = rng.standard_normal((5, 3, 2, taps)) * np.exp(-np.arange(taps) / (0.1 * taps))
    rirs[..., 0] += 1.0
    zeros = np.zeros((5, 3))
    rooms = RoomBank(
        config, rirs.astype(np.float32), zeros, np.zeros(5), zeros, np.zeros(5), np.zeros((5, 3, 3))
    )
    noise_config = NoiseBankConfig(coloured=8, babble=0)
    clips = np.stack([coloured_noise(rng, noise_config.samples, i % 3) for i in range(8)])
    ids = np.array([f"noise-{i}" for i in range(8)])
    return rooms, NoiseBank(noise_config, clips, ids, np.array([False] * 7 + [True]))


def clips_per_second(shards: str, nat: bool, clips: int) -> float:
    """Clips per second through one stream in this process (after one warm-up batch)."""
    config = preset("base-nat" if nat else "base")
    renderer = BankRenderer(*synthetic_banks(), SceneConfig(snr=(5.0, 40.0))) if nat else None
    settings = StreamSettings(4, CROPS_PER_CLIP, 1, 160_000, -14.0, 8, False, 0.0)
    key = StreamKey(0, 0, 1, 0, 1, True)
    stream = iter(ClipStream(find_stream(shards), config, settings, key, renderer))
    next(stream)
    start, done = time.perf_counter(), 0
    while done < clips:
        done += len(next(stream).names)
    return done / (time.perf_counter() - start)


def main() -> None:
    clips = int(sys.argv[1]) if len(sys.argv) > 1 else 48
    torch.set_num_threads(1)  # as in a DataLoader worker
    with tempfile.TemporaryDirectory() as tmp:
        write_shards(
            Path(tmp), shards=4, per_shard=max(1, clips // 4), seconds=10, rate=44_100, channels=2
        )
        shards = str(Path(tmp) / "shard-{000..003}.tar")
        print(f"one worker process, 1 torch thread, {CROPS_PER_CLIP} crops per clip")
        print("| stream | clips/s | crops/s | workers for 1,076 crops/s |")
        print("|---|---|---|---|")
        for name, nat in (("mono", False), ("Nat scenes", True)):
            rate = clips_per_second(shards, nat, clips)
            crops = rate * CROPS_PER_CLIP
            need = math.ceil(GPU_CROPS_PER_S / crops)
            print(f"| {name} | {rate:.1f} | {crops:.0f} | {need} |")


if __name__ == "__main__":
    main()
