"""The order in which one stream (rank, worker) reads its units, and where it stands in it.

A stream's clips are a function of (seed, rank, worker, position) (docs/pretraining.md,
Streaming). Epoch mode: epoch e shuffles all units with a generator seeded by (seed, e) and
gives stream (r, w) the units perm_e[r::world][w::workers], so the streams of one epoch are
disjoint and together read every unit once. Resampled mode: stream (r, w) draws
max(1, units // streams) units per "epoch" with replacement from (seed, r, w, e), endlessly.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from webdataset.tariterators import tar_file_iterator

from hear_wavjepa.training.decoded_corpus import AUDIO_SUFFIXES, CorpusError
from hear_wavjepa.training.sources import StreamSource

_ORDER, _RESAMPLE = 10, 11  # generator streams, apart from batches.py's


class Position(NamedTuple):
    """Where a stream stands: the next audio member to read is member `member` of unit `unit`
    of `epoch`'s list; `count` records were read before it (each record's clip is seeded by its
    count)."""

    epoch: int = 0
    unit: int = 0
    member: int = 0
    count: int = 0


class Record(NamedTuple):
    """One still-encoded clip: where it came from and its bytes."""

    name: str  # "shard::member" or the file path
    data: bytes
    epoch: int
    count: int


class StreamKey(NamedTuple):
    seed: int
    rank: int
    world: int
    worker: int
    workers: int
    resampled: bool


def stream_units(n_units: int, epoch: int, key: StreamKey) -> np.ndarray:
    """Indices of the units stream `key` reads in `epoch`."""
    if key.resampled:
        per = max(1, n_units // (key.world * key.workers))
        rng = np.random.default_rng([key.seed, _RESAMPLE, key.rank, key.worker, epoch])
        return rng.integers(0, n_units, per)
    perm = np.random.default_rng([key.seed, _ORDER, epoch]).permutation(n_units)
    return perm[key.rank :: key.world][key.worker :: key.workers]


def read_unit(path: str, kind: str) -> Iterator[tuple[str, bytes]]:
    """(name, encoded bytes) of each audio member of a tar shard (webdataset's reader), or of an
    audio file; CorpusError names the shard (and the member reached) when it cannot be read."""
    if kind == "files":
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise CorpusError(f"{path}: cannot read: {exc}") from exc
        yield path, data
        return
    last = "(start)"
    try:
        with open(path, "rb") as f:
            for sample in tar_file_iterator(f, select_files=_is_audio):
                last = sample["fname"]
                yield f"{path}::{last}", sample["data"]
    except (OSError, tarfile.TarError, EOFError, ValueError) as exc:
        raise CorpusError(f"{path}: unreadable shard after member {last}: {exc}") from exc


def _is_audio(name: str) -> bool:
    return name.lower().endswith(AUDIO_SUFFIXES)


def records(
    source: StreamSource, key: StreamKey, start: Position, on_error
) -> Iterator[tuple[Record, Position]]:
    """Every record of the stream from `start`, each with the position after it; endless.
    `on_error(CorpusError)` handles an unreadable unit (warn and go on, or raise)."""
    epoch, first, skip, count = start
    while True:
        units = stream_units(len(source.units), epoch, key)
        read_any = False
        for u in range(first, len(units)):
            path = source.units[units[u]]
            try:
                for m, (name, data) in enumerate(read_unit(path, source.kind)):
                    read_any = True
                    if m < skip:  # resuming inside this unit
                        continue
                    count += 1
                    yield Record(name, data, epoch, count - 1), Position(epoch, u, m + 1, count)
            except CorpusError as exc:
                on_error(exc)
            skip = 0
        if not read_any and first == 0 and len(units):
            raise CorpusError(
                f"{source.spec}: stream (rank {key.rank}, worker {key.worker}) found no "
                f"readable audio in its {len(units)} unit(s) of epoch {epoch}"
            )
        epoch, first = epoch + 1, 0


def shuffled(
    stream: Iterator[tuple[Record, Position]], size: int, rng: np.random.Generator
) -> Iterator[tuple[Record, Position]]:
    """A shuffle buffer of `size` records; each record leaves with the source position reached
    when it left (resuming there drops what the buffer still held)."""
    buffer: list[Record] = []
    for record, position in stream:
        buffer.append(record)
        if len(buffer) < size:
            continue
        i = int(rng.integers(len(buffer)))
        buffer[i], buffer[-1] = buffer[-1], buffer[i]
        yield buffer.pop(), position
