"""Streamed training batches, built in DataLoader worker processes (docs/pretraining.md).

Each worker of each rank reads its own units (`stream_order.py`), keeps the still-encoded clips
in a shuffle buffer, then decodes and conditions each clip (`decoded_corpus.condition`: channel
pick, 16 kHz, -14 dBFS, 10 s), renders a Nat scene for it when the recipe asks, cuts its crops
and masks (`batches.py`) and yields whole micro-batches of standardised crops. Every random draw
of a clip is seeded by (seed, rank, worker, the clip's record count), so the stream is a function
of (seed, rank, worker, position).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from hear_wavjepa.model.config import WavJEPAConfig
from hear_wavjepa.model.masking import Masks, TimeInverseMasker
from hear_wavjepa.training.batches import Batch, SceneRenderer, cut_crops, draw_masks, standardise
from hear_wavjepa.training.decoded_corpus import CorpusError, condition, decode_audio
from hear_wavjepa.training.sources import StreamSource
from hear_wavjepa.training.stream_order import Position, StreamKey, records, shuffled

_STREAM = 3  # generator streams: (seed, _STREAM, kind, rank, worker, count); batches.py uses 0-2
_BUFFER, _CLEAN, _CROPS, _MASKS, _SCENE = range(5)


class StreamItem(NamedTuple):
    """A micro-batch from worker `worker`, and where that worker's stream stood after it; or,
    with `error` set, the message that stops the run."""

    batch: Batch | None
    worker: int
    position: Position
    skipped: int  # unreadable clips this worker skipped since it started
    names: tuple[str, ...]  # the clips of the batch ("shard::member" or a path)
    epochs: tuple[int, ...]  # the epoch each clip was read in
    pid: int  # the process that built the batch
    error: str = ""


@dataclass(frozen=True)
class StreamSettings:
    """What every worker needs to turn records into micro-batches of `clips` clips."""

    clips: int
    crops_per_clip: int
    channels: int  # decoded channels: 1, or 2 for a 2-channel model without rendering
    clip_samples: int
    loudness_dbfs: float
    shuffle_buffer: int
    skip_unreadable: bool
    clean_data_ratio: float


class ClipStream(IterableDataset):
    """This rank's stream: each DataLoader worker yields `StreamItem`s from its own units."""

    def __init__(
        self,
        source: StreamSource,
        config: WavJEPAConfig,
        settings: StreamSettings,
        key: StreamKey,
        renderer: SceneRenderer | None = None,
        starts: dict[int, Position] | None = None,
    ) -> None:
        if settings.clip_samples < config.crop_samples:
            raise ValueError(
                f"clips of {settings.clip_samples} samples are shorter than one crop "
                f"({config.crop_samples}); use longer data.clip_seconds"
            )
        self.source, self.config, self.settings, self.key = source, config, settings, key
        self.renderer = renderer
        self.starts = starts or {}

    def _rng(self, key: StreamKey, kind: int, *rest: int) -> np.random.Generator:
        return np.random.default_rng([key.seed, _STREAM, kind, key.rank, key.worker, *rest])

    def __iter__(self):
        info = get_worker_info()
        worker = info.id if info is not None else 0
        key = self.key._replace(worker=worker)
        start = Position(*self.starts.get(worker, Position()))
        skipped = 0

        def on_error(exc: CorpusError) -> None:
            nonlocal skipped
            if not self.settings.skip_unreadable:
                raise exc
            skipped += 1
            warnings.warn(f"skipping {exc}", stacklevel=2)

        stream = shuffled(
            records(self.source, key, start, on_error),
            self.settings.shuffle_buffer,
            self._rng(key, _BUFFER, *start),
        )
        masker = TimeInverseMasker(
            self.config.masking, self.config.frames_per_crop, self.config.in_channels
        )
        clips: list[tuple[str, int, int, np.ndarray]] = []
        try:
            for record, position in stream:
                try:
                    samples, rate = decode_audio(record.data, record.name)
                except CorpusError as exc:
                    on_error(exc)
                    continue
                clip = condition(
                    samples,
                    rate,
                    self.settings.channels,
                    self.settings.clip_samples,
                    self.settings.loudness_dbfs,
                )
                clips.append((record.name, record.epoch, record.count, clip))
                if len(clips) == self.settings.clips:
                    batch = self._batch(key, masker, clips)
                    names, epochs = zip(*[(c[0], c[1]) for c in clips], strict=True)
                    yield StreamItem(batch, worker, position, skipped, names, epochs, os.getpid())
                    clips = []
        except CorpusError as exc:  # stops the run with one line (not a worker traceback)
            yield StreamItem(None, worker, start, skipped, (), (), os.getpid(), str(exc))

    def _batch(
        self, key: StreamKey, masker: TimeInverseMasker, clips: list[tuple[str, int, int, object]]
    ) -> Batch:
        """Crops (clips * crops_per_clip, C, crop_samples), standardised, and their masks."""
        first = clips[0][2]
        clean = self.renderer is None or bool(
            self._rng(key, _CLEAN, first).random() < self.settings.clean_data_ratio
        )
        crops, length = self.settings.crops_per_clip, self.config.crop_samples
        audio, contexts, targets = [], [], []
        for _, _, count, array in clips:
            clip = torch.from_numpy(array)
            if self.renderer is not None:
                if clean:
                    clip = clip[:1].expand(self.config.in_channels, -1)
                else:
                    clip = self.renderer(clip[0], self._rng(key, _SCENE, count))
            audio.append(cut_crops(clip, crops, length, self._rng(key, _CROPS, count)))
            masks = draw_masks(masker, crops, self._rng(key, _MASKS, count))
            contexts.append(masks.context)
            targets.append(masks.targets)
        return Batch(
            standardise(torch.cat(audio).float()), Masks(torch.cat(contexts), torch.cat(targets))
        )
