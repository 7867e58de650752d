"""Pretraining throughput (crops/s) through the real training loop on a generated corpus.

* CPU: train/tiny-cpu.yaml (the demo) with its conv front end frozen (scale 0: no gradient, no
  optimiser state) against the same front end back-propagated and stepped at a learning rate
  of ~0 (scale 1e-12, what scale 0 did before), alternated in one run; s/step.
* CPU: the base preset, 8 crops per step (1 clip x 8 crops), fp32.
* CUDA (when available): the base preset at the recipe's per-GPU batch (16 clips x 8 = 128 crops),
  bf16 autocast, without and with torch.compile.
Each measurement is the median crops/s of the steps after the warm-up steps.
"""

from __future__ import annotations

import csv
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[2]


def write_corpus(folder: Path, clips: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(clips):
        sf.write(folder / f"{i:03d}.wav", 0.1 * rng.standard_normal(160_000), 16_000)


def crops_per_second(
    corpus: Path, name: str, steps: int, warmup: int, *overrides: str, recipe: str = "wavjepa-base"
) -> float:
    from hear_wavjepa.training.loop import pretrain
    from hear_wavjepa.training.recipe import load_recipe

    recipe = load_recipe(
        ROOT / "train" / f"{recipe}.yaml",
        [f"data.path={corpus}", f"train.name={name}", f"train.steps={steps}",
         f"train.checkpoint_every={steps}", "optim.warmup_steps=10", *overrides],
    )  # fmt: skip
    run = pretrain(recipe, progress=False)
    with (run / "metrics.csv").open() as f:
        rates = [float(row["crops_per_s"]) for row in csv.DictReader(f)]
    return statistics.median(rates[warmup:])


def frozen_front_end(corpus: Path, rounds: int = 3, steps: int = 8) -> None:
    """The demo recipe's s/step, front end frozen against back-propagated at lr ~0."""
    times: dict[str, list[float]] = {"frozen": [], "back-propagated": []}
    crops = 32  # tiny-cpu.yaml: 16 clips x 2 crops
    for i in range(rounds):
        for label, scale in (("back-propagated", "1e-12"), ("frozen", "0")):
            rate = crops_per_second(corpus, f"demo-{label}-{i}", steps, 2,
                                    f"optim.frontend_lr_scale={scale}", "monitor.every=0",
                                    recipe="tiny-cpu")  # fmt: skip
            times[label].append(crops / rate)
    before, after = (statistics.median(times[k]) for k in ("back-propagated", "frozen"))
    print(f"tiny-cpu.yaml, CPU ({torch.get_num_threads()} threads), 32 crops/step, median of "
          f"{rounds} alternated runs: front end back-propagated at lr ~0 {before:.2f} s/step, "
          f"frozen {after:.2f} s/step ({before / after:.2f}x)")  # fmt: skip


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HEAR_WAVJEPA_HOME"] = tmp
        corpus = Path(tmp) / "corpus"
        write_corpus(corpus, 16)
        threads = torch.get_num_threads()
        frozen_front_end(corpus)
        torch.set_num_threads(threads)
        cpu = crops_per_second(corpus, "cpu", 4, 1, "data.clips_per_step=1", "train.compile=false",
                               "train.precision=fp32", "train.device=cpu")  # fmt: skip
        print(f"base preset, CPU ({threads} threads), 8 crops/step, fp32: {cpu:.2f} crops/s")
        if not torch.cuda.is_available():
            print("CUDA not available: GPU throughput not measured")
            return 0
        gpu = torch.cuda.get_device_name(0)
        batch = ["data.clips_per_step=16", "train.precision=bf16", "train.device=cuda:0"]
        eager = crops_per_second(corpus, "eager", 12, 4, *batch, "train.compile=false")
        compiled = crops_per_second(corpus, "compiled", 16, 8, *batch, "train.compile=true")
        print(f"base preset, {gpu}, 128 crops/step, bf16 eager:    {eager:.1f} crops/s")
        print(f"base preset, {gpu}, 128 crops/step, bf16 compiled: {compiled:.1f} crops/s "
              f"({compiled / eager:.2f}x eager)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
