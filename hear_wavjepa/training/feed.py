"""What the loop trains on: each step's micro-batches for this rank, from the decoded corpus
(`MemmapFeed`, a pure function of the step) or from the stream (`StreamFeed`, DataLoader workers
whose positions the checkpoints record)."""

from __future__ import annotations

import itertools
from typing import Any

from torch.utils.data import DataLoader

from hear_wavjepa.audio import SAMPLE_RATE
from hear_wavjepa.model.config import WavJEPAConfig
from hear_wavjepa.training.batches import Batch, BatchMaker, SceneRenderer
from hear_wavjepa.training.decoded_corpus import CorpusError
from hear_wavjepa.training.recipe import Recipe, RecipeError
from hear_wavjepa.training.sources import StreamSource
from hear_wavjepa.training.stream_order import Position, StreamKey
from hear_wavjepa.training.streaming import ClipStream, StreamItem, StreamSettings


class MemmapFeed:
    """Clip slots [first, first + per_rank) of every step, split into `accumulation` parts."""

    skipped = 0

    def __init__(self, maker: BatchMaker, first: int, per_rank: int, accumulation: int) -> None:
        micro = per_rank // accumulation
        self.maker = maker
        self.slots = [first + m * micro for m in range(accumulation + 1)]

    def take(self, step: int) -> tuple[list[Batch], None]:
        return [self.maker(step, a, b) for a, b in itertools.pairwise(self.slots)], None

    def consumed(self, token: None) -> None:
        pass

    def state(self) -> None:
        return None

    def close(self) -> None:
        pass


class StreamFeed:
    """The next `accumulation` micro-batches of this rank's DataLoader; tracks, for every worker,
    the stream position after the last batch the loop consumed (not merely prefetched)."""

    def __init__(
        self, stream: ClipStream, workers: int, accumulation: int, saved: dict | None
    ) -> None:
        loader = DataLoader(
            stream,
            batch_size=None,
            num_workers=workers,
            prefetch_factor=2 if workers else None,
        )
        self.accumulation = accumulation
        self.iterator = iter(loader)
        self.positions = {w: Position(*stream.starts.get(w, ())) for w in range(max(1, workers))}
        self.earlier = saved["skipped"] if saved else 0  # skipped before this process started
        self.skipped_now: dict[int, int] = {}

    @property
    def skipped(self) -> int:
        """Unreadable clips skipped by this rank's workers over the whole run."""
        return self.earlier + sum(self.skipped_now.values())

    def take(self, step: int) -> tuple[list[Batch], list[StreamItem]]:
        items = []
        for _ in range(self.accumulation):
            item = next(self.iterator)
            if item.error:
                raise CorpusError(item.error)
            items.append(item)
        return [item.batch for item in items], items

    def consumed(self, items: list[StreamItem]) -> None:
        for item in items:
            self.positions[item.worker] = item.position
            self.skipped_now[item.worker] = item.skipped

    def state(self) -> dict[str, Any]:
        positions = {str(w): list(p) for w, p in self.positions.items()}
        return {"positions": positions, "skipped": self.skipped}

    def close(self) -> None:
        del self.iterator  # shuts the workers down


def open_stream(
    recipe: Recipe,
    config: WavJEPAConfig,
    source: StreamSource,
    renderer: SceneRenderer | None,
    rank: int,
    world: int,
    saved: dict | None,
) -> StreamFeed:
    """This rank's `StreamFeed`, continuing the streams of checkpoint state `saved` if given."""
    data, train = recipe.data, recipe.train
    workers = max(1, data.workers)
    if not data.resampled and len(source.units) < world * workers:
        raise RecipeError(
            f"data.path {source.spec} has {len(source.units)} {source.kind}, but epoch mode "
            f"splits them over {world} rank(s) x {workers} worker(s); give more, lower "
            "data.workers, or set data.resampled=true"
        )
    mine = None
    if saved is not None:
        if (saved["world"], saved["workers"]) != (world, workers):
            raise RecipeError(
                f"the run streamed with {saved['world']} rank(s) x {saved['workers']} worker(s);"
                f" resume it with the same (now {world} x {workers})"
            )
        mine = saved["ranks"][rank]
    settings = StreamSettings(
        clips=data.clips_per_step // world // train.accumulation,
        crops_per_clip=data.crops_per_clip,
        channels=1 if renderer is not None else config.in_channels,
        clip_samples=round(data.clip_seconds * SAMPLE_RATE),
        loudness_dbfs=data.loudness_dbfs,
        shuffle_buffer=data.shuffle_buffer,
        skip_unreadable=data.skip_unreadable,
        clean_data_ratio=recipe.scenes.clean_data_ratio,
    )
    key = StreamKey(train.seed, rank, world, 0, workers, data.resampled)
    starts = {int(w): Position(*p) for w, p in mine["positions"].items()} if mine else None
    stream = ClipStream(source, config, settings, key, renderer, starts)
    return StreamFeed(stream, data.workers, train.accumulation, mine)


def stream_state(states: list[dict | None], world: int, workers: int) -> dict | None:
    """The checkpoint's record of every rank's streams (None for the decoded corpus)."""
    if states[0] is None:
        return None
    return {"world": world, "workers": max(1, workers), "ranks": states}
