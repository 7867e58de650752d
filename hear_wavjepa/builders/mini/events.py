"""Sound event detection (DCASE-2016-task-2-like): long scenes of non-overlapping events over a
noise background at a random event-to-background ratio; labels are onsets/offsets in ms."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hear_wavjepa.builders.mini.context import BuildContext
from hear_wavjepa.builders.mini.recipe import TaskRecipe
from hear_wavjepa.builders.mini.signal import SAMPLE_RATE, active_bounds, colored_noise, rms
from hear_wavjepa.builders.mini.soundbank import SoundBank
from hear_wavjepa.builders.mini.writer import TaskWriter


def build_events(recipe: TaskRecipe, ctx: BuildContext, out: Path) -> None:
    p = recipe.params
    rng = ctx.rng(recipe.task_name)
    specs = p["classes"]
    labels = sorted(specs)
    bank = SoundBank(ctx, specs, p["soundfonts"], p["list"])
    total = round(recipe.clips * ctx.scale)
    counts = {
        s: max(recipe.min_per_class, round(total * f))
        for s, f in zip(recipe.splits, p["split_fractions"], strict=True)
    }
    n = round(recipe.duration * SAMPLE_RATE)
    writer = TaskWriter(out, recipe, labels)
    i = 0
    for split, count in counts.items():
        for _ in range(count):
            background = colored_noise(rng, n, 2.0) + 0.5 * colored_noise(rng, n, 1.0)
            background *= 10 ** (-40 / 20) / rms(background)
            scene = background.copy()
            n_events = int(rng.integers(p["events_per_scene"][0], p["events_per_scene"][1] + 1))
            order = rng.permutation(len(labels))
            slot = n // n_events
            events = []
            for k in range(n_events):  # one event per slot, classes cycling in a random order
                label = labels[order[k % len(labels)]]
                audio = bank.render(label, rng)[: slot - SAMPLE_RATE // 10]
                bounds = active_bounds(audio, -30.0)
                if bounds is None:
                    continue
                ebr = float(rng.uniform(*p["event_to_background_db"]))
                audio = audio * (
                    rms(background) * 10 ** (ebr / 20) / rms(audio[bounds[0] : bounds[1]])
                )
                start = k * slot + int(rng.integers(0, slot - len(audio) + 1))
                scene[start : start + len(audio)] += audio
                events.append({
                    "label": label,
                    "start": round((start + bounds[0]) * 1000 / SAMPLE_RATE, 1),
                    "end": round((start + bounds[1]) * 1000 / SAMPLE_RATE, 1),
                })  # fmt: skip
            peak = float(np.abs(scene).max())
            writer.add(split, f"scene_{i:04d}.wav", scene * min(1.0, 0.95 / peak), events)
            i += 1
    writer.finish(bank.sources(), bank.versions)
