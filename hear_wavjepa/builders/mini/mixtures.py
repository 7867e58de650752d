"""Multilabel mixtures (FSD50K-like): 1-3 sound sources per clip, labelled with each source and its
parent class (e.g. `piano` + `music`), scored with mAP."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hear_wavjepa.builders.mini.context import BuildContext
from hear_wavjepa.builders.mini.recipe import TaskRecipe
from hear_wavjepa.builders.mini.signal import SAMPLE_RATE, fit, normalize
from hear_wavjepa.builders.mini.soundbank import SoundBank
from hear_wavjepa.builders.mini.writer import TaskWriter


def build_mixtures(recipe: TaskRecipe, ctx: BuildContext, out: Path) -> None:
    p = recipe.params
    rng = ctx.rng(recipe.task_name)
    specs = p["sources"]
    leaves = sorted(specs)
    labels = sorted(set(leaves) | {s["parent"] for s in specs.values()})
    bank = SoundBank(ctx, specs, p["soundfonts"], p["list"])
    total = round(recipe.clips * ctx.scale)
    counts = {
        s: max(recipe.min_per_class * len(leaves), round(total * f))
        for s, f in zip(recipe.splits, p["split_fractions"], strict=True)
    }
    n = round(recipe.duration * SAMPLE_RATE)
    writer = TaskWriter(out, recipe, labels)
    lo, hi = p["sources_per_clip"]
    i = 0
    for split, count in counts.items():
        order = rng.permutation(len(leaves))  # the first source cycles through every class
        for j in range(count):
            first = leaves[order[j % len(leaves)]]
            others = [x for x in leaves if x != first]
            picked = [first] + [
                others[k] for k in rng.permutation(len(others))[: rng.integers(lo, hi + 1) - 1]
            ]
            mix = np.zeros(n, dtype=np.float32)
            for k, name in enumerate(picked):
                audio = bank.render(name, rng)
                gain = 1.0 if k == 0 else 10 ** (float(rng.uniform(*p["snr_db"])) / 20)
                start = int(rng.integers(0, max(1, n - len(audio) // 2)))
                mix[start:] += gain * fit(
                    audio, n - start, int(rng.integers(0, max(1, len(audio) - n + 1)))
                )
            tags = sorted(set(picked) | {specs[x]["parent"] for x in picked})
            writer.add(split, f"mix{len(picked)}_{i:05d}.wav", normalize(mix), tags)
            i += 1
    writer.finish(bank.sources(), bank.versions)
