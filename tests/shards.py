"""FLAC-in-tar shards in WebDataset style, for the streaming tests and the data benchmark."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf


def write_shards(
    folder: Path,
    shards: int = 4,
    per_shard: int = 3,
    seconds: float = 2.0,
    rate: int = 16_000,
    channels: int = 1,
    corrupt: tuple[int, int] | None = None,
) -> list[Path]:
    """`shards` tars `shard-000.tar` ... of `per_shard` noise clips `s-m.flac` (PCM-16) each,
    with a JSON member beside each clip as AudioSet's shards have; member `corrupt` =
    (shard, member) holds bytes that are not audio."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for s in range(shards):
        path = folder / f"shard-{s:03d}.tar"
        with tarfile.open(path, "w") as tar:
            for m in range(per_shard):
                buffer = io.BytesIO()
                noise = 0.1 * rng.standard_normal((int(seconds * rate), channels))
                sf.write(buffer, noise, rate, format="FLAC", subtype="PCM_16")
                data = buffer.getvalue() if (s, m) != corrupt else b"not audio at all" * 64
                _add(tar, f"{s}-{m}.flac", data)
                _add(tar, f"{s}-{m}.json", b'{"labels": []}')
        paths.append(path)
    return paths


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
