"""Pretraining throughput (crops/s) through the real training loop on a generated corpus.

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


def crops_per_second(corpus: Path, name: str, steps: int, warmup: int, *overrides: str) -> float:
    from hear_wavjepa.training.loop import pretrain
    from hear_wavjepa.training.recipe import load_recipe

    recipe = load_recipe(
        ROOT / "train" / "wavjepa-base.yaml",
        [f"data.path={corpus}", f"train.name={name}", f"train.steps={steps}",
         f"train.checkpoint_every={steps}", "optim.warmup_steps=10", *overrides],
    )  # fmt: skip
    run = pretrain(recipe, progress=False)
    with (run / "metrics.csv").open() as f:
        rates = [float(row["crops_per_s"]) for row in csv.DictReader(f)]
    return statistics.median(rates[warmup:])


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HEAR_WAVJEPA_HOME"] = tmp
        corpus = Path(tmp) / "corpus"
        write_corpus(corpus, 16)
        threads = torch.get_num_threads()
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
