"""HEAR MLP protocol wall time: `batched` (stacked grid points) against `sequential` (one by one).

Both modes run the same grid on the same synthetic cached embeddings, one run each:
* scene: 10 classes, 1,000 / 250 / 250 clips (train / valid / test), 256-d;
* event: 2 labels, 12 files per split of 400 frames (50 ms hop), 128-d.
Prints the wall times and the sequential / batched ratio per task. `--grid` and `--grid-points`
change the grid (default: heareval's `default` grid, 8 points); `--scale` shrinks the data.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from synthetic_cache import event_cache, scene_cache

from hear_wavjepa.evaluation.cache import load_cached_task
from hear_wavjepa.evaluation.hear_mlp import run_hear_mlp


def scene_task(tmp: Path, scale: float):
    rng = np.random.default_rng(0)
    classes_n, dim = 10, 256
    means = rng.normal(0, 0.5, (classes_n, dim))
    feats, classes = {}, {}
    for split, n in {"train": 1000, "valid": 250, "test": 250}.items():
        n = max(classes_n, int(n * scale))
        c = np.arange(n) % classes_n
        rng.shuffle(c)
        classes[split] = c
        feats[split] = (means[c] + rng.normal(0, 1.0, (n, dim))).astype(np.float32)
    labels = [f"c{i}" for i in range(classes_n)]
    return load_cached_task(scene_cache(tmp, feats, classes, labels))


def event_task(tmp: Path, scale: float):
    files = max(2, int(12 * scale))
    cache = event_cache(
        tmp, np.random.default_rng(1), files_per_split=files, frames=400, dim=128, noise=1.0
    )
    return load_cached_task(cache)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grid", default="default")
    parser.add_argument("--grid-points", type=int, default=8)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the clips to use")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tasks = {
            "scene": scene_task(Path(tmp) / "scene", args.scale),
            "event": event_task(Path(tmp) / "event", args.scale),
        }
        for name, task in tasks.items():
            times, scores = {}, {}
            for mode in ("batched", "sequential"):
                start = time.perf_counter()
                result = run_hear_mlp(task, args.grid, args.grid_points, mode)
                times[mode] = time.perf_counter() - start
                scores[mode] = result["test"]["test_score"]
            print(
                f"{name:<6} grid={args.grid} points={args.grid_points} scale={args.scale}  "
                f"batched {times['batched']:7.1f} s (test {scores['batched']:.3f})  "
                f"sequential {times['sequential']:7.1f} s (test {scores['sequential']:.3f})  "
                f"ratio {times['sequential'] / times['batched']:.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
