"""Real recorded sounds (ESC-like): curated Debian recordings, one clip per recording.

Classes with fewer than `min_recordings` verified recordings in the chosen --sounds tier are left
out; big classes are capped. Recordings of one group (a drum kit folder, or numbered takes such as
`birdchirp1..6`) stay in one fold.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from hear_wavjepa.builders.mini.context import BuildContext
from hear_wavjepa.builders.mini.recipe import TaskRecipe
from hear_wavjepa.builders.mini.signal import SAMPLE_RATE, fit, normalize, trim_silence
from hear_wavjepa.builders.mini.sources import Recording, SoundCache, fetch_recordings, read_list
from hear_wavjepa.builders.mini.splits import balanced_folds
from hear_wavjepa.builders.mini.writer import TaskWriter
from hear_wavjepa.paths import suite_file


def recording_group(rec: Recording) -> str:
    """Near-duplicates share a group: same folder and the name's first word without digits, so
    velocity layers (`Crash-Hard`, `Crash-Soft`) and numbered takes (`birdchirp1..6`) stay
    together."""
    path = PurePosixPath(rec.path)
    word = re.split(r"[-_ ]", path.stem)[0].rstrip("0123456789") or path.stem
    return f"{rec.package}:{path.parent}/{word.lower()}"


def available_recordings(recipe: TaskRecipe, ctx: BuildContext) -> tuple[list[Recording], dict]:
    """Fetch the tier's packages; the verified recordings and each package's cache index."""
    recordings = read_list(suite_file(recipe.params["list"]))
    packages = ctx.sound_packages(recipe.params["packages"])
    return fetch_recordings(SoundCache(ctx.sources_dir), recordings, packages)


def build_sounds(recipe: TaskRecipe, ctx: BuildContext, out: Path) -> None:
    p = recipe.params
    rng = ctx.rng(recipe.task_name)
    verified, indexes = available_recordings(recipe, ctx)
    by_label: dict[str, list[Recording]] = {}
    for rec in verified:
        by_label.setdefault(rec.label, []).append(rec)
    labels = sorted(k for k, v in by_label.items() if len(v) >= p["min_recordings"])
    if len(labels) < 2:
        raise RuntimeError(f"{recipe.task_name}: fewer than 2 classes with enough recordings")
    cap = max(recipe.min_per_class, round(p["cap_per_class"] * ctx.scale))
    cache = SoundCache(ctx.sources_dir)
    n = round(recipe.duration * SAMPLE_RATE)
    dropped = sorted(k for k, v in by_label.items() if k not in labels)
    totals: dict[str, int] = {}
    plans: dict[str, tuple[list[Recording], dict[str, str]]] = {}
    unrotatable = []
    for label in labels:
        pool = sorted(by_label[label], key=lambda r: r.md5)
        chosen = [pool[i] for i in sorted(rng.permutation(len(pool))[:cap])]
        sizes: dict[str, int] = {}
        for rec in chosen:
            sizes[recording_group(rec)] = sizes.get(recording_group(rec), 0) + 1
        fold_of = balanced_folds(sizes, recipe.splits, rng, totals)
        # Fold i is tested with fold i+1 as validation: a class in fewer than 3 folds would be
        # missing from some rotation's training folds. Splitting a recording group across folds
        # would leak near-duplicate takes, so such a class is left out instead.
        if len(set(fold_of.values())) < 3:
            unrotatable.append(label)
            continue
        plans[label] = (chosen, fold_of)
    labels = [label for label in labels if label in plans]
    if len(labels) < 2:
        raise RuntimeError(f"{recipe.task_name}: fewer than 2 classes span 3 folds")
    writer = TaskWriter(out, recipe, labels)
    for label in labels:
        chosen, fold_of = plans[label]
        for rec in chosen:
            audio = trim_silence(cache.load(rec.md5))
            # long ambiences: a random window; short events: from the onset
            start = int(rng.integers(0, len(audio) - n + 1)) if len(audio) > 2 * n else 0
            name = f"{label}_{rec.md5[:12]}.wav"
            writer.add(
                fold_of[recording_group(rec)], name, fit(normalize(audio), n, start), [label]
            )
    skipped = sum(len(i["md5_mismatch"]) + len(i["missing"]) for i in indexes.values())
    notes = (
        f"Sound tier `{ctx.sounds}`: packages {', '.join(indexes)}. {len(verified)} verified "
        f"recordings; {skipped} listed files skipped (md5 mismatch or missing). Classes left out "
        f"(< {p['min_recordings']} recordings): {', '.join(dropped) or 'none'}; (recordings in "
        f"fewer than 3 folds): {', '.join(unrotatable) or 'none'}. Cap per class: {cap}."
    )
    versions = {k: v["version"] for k, v in indexes.items()}
    writer.finish(list(indexes), versions, notes)
