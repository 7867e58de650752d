"""What every mini-task builder receives: seed, scale, workers, source cache and output folder."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")

#: --sounds tiers, cumulative: "default" downloads the small packages too.
SOUND_TIERS = ("small", "default", "more")


@dataclass(frozen=True)
class BuildContext:
    """`suite_dir` is the final OUT folder; `sources_dir` caches fetched, converted source audio."""

    suite_dir: Path
    sources_dir: Path
    seed: int
    scale: float
    sounds: str = "default"
    workers: int = 2
    progress: bool = True

    def rng(self, *keys: str | int) -> np.random.Generator:
        """A generator that depends only on the seed and `keys` (never on build order)."""
        words = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
        return np.random.default_rng([self.seed, *words])

    def map(self, fn: Callable[[T], R], items: Iterable[T], desc: str) -> list[R]:
        """`[fn(x) for x in items]` on `workers` threads, in order (never depends on timing)."""
        items = list(items)
        bar = tqdm(total=len(items), desc=desc, unit="clip", disable=not self.progress, leave=False)
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            out = []
            for result in pool.map(fn, items):
                out.append(result)
                bar.update()
        bar.close()
        return out

    def sound_packages(self, tiers: dict[str, list[str]]) -> list[str]:
        """The Debian packages of the chosen --sounds tier and every tier below it."""
        upto = SOUND_TIERS.index(self.sounds) + 1
        return [p for tier in SOUND_TIERS[:upto] for p in tiers.get(tier, [])]
