"""Speech tasks from espeak-ng: keywords (Speech-Commands-like), language ID (VoxLingua-like) and
talker count (LibriCount-like). A "speaker" is an espeak-ng voice + variant + pitch + rate."""

from __future__ import annotations

import functools
import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from hear_wavjepa.builders.mini.context import BuildContext
from hear_wavjepa.builders.mini.recipe import TaskRecipe
from hear_wavjepa.builders.mini.signal import (
    SAMPLE_RATE,
    colored_noise,
    fit,
    normalize,
    rms,
    to_mono_16k,
    trim_silence,
)
from hear_wavjepa.builders.mini.splits import balanced_folds, fraction_split
from hear_wavjepa.builders.mini.writer import TaskWriter

SILENCE, UNKNOWN = "_silence_", "_unknown_"


@dataclass(frozen=True)
class Speaker:
    """An espeak-ng voice: `voice` e.g. 'en-us', `variant` e.g. 'm3', pitch 0-99, words/min."""

    voice: str
    variant: str
    pitch: int
    rate: int


@functools.lru_cache(maxsize=1)
def espeak_variants() -> tuple[str, ...]:
    """The installed espeak-ng voice variants (file names, e.g. 'm3', 'klatt2', 'Alex'), sorted."""
    try:
        out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    except (FileNotFoundError, subprocess.CalledProcessError) as err:
        raise RuntimeError("espeak-ng is not installed (see tasks/apt-packages.txt)") from err
    names = [line.split()[4].removeprefix("!v/") for line in out.splitlines()[1:] if line.strip()]
    return tuple(sorted(n for n in names if "whisper" not in n))


def synthesize(
    speaker: Speaker, text: str, pitch_jitter: int = 0, rate_factor: float = 1.0
) -> np.ndarray:
    """espeak-ng speech as float32 (samples,) at 16 kHz (espeak-ng renders at 22,050 Hz)."""
    pitch = int(np.clip(speaker.pitch + pitch_jitter, 0, 99))
    rate = int(np.clip(speaker.rate * rate_factor, 80, 450))
    command = ["espeak-ng", "-v", f"{speaker.voice}+{speaker.variant}", "-p", str(pitch),
               "-s", str(rate), "--stdout", text]  # fmt: skip
    wav = subprocess.run(command, capture_output=True, check=True).stdout
    audio, rate_hz = soundfile.read(io.BytesIO(wav), dtype="float32")
    return to_mono_16k(audio, rate_hz)


def random_speaker(rng: np.random.Generator, voices: list[str]) -> Speaker:
    variants = espeak_variants()
    return Speaker(
        voice=voices[rng.integers(len(voices))],
        variant=variants[rng.integers(len(variants))],
        pitch=int(rng.integers(15, 85)),
        rate=int(rng.integers(130, 210)),
    )


@functools.lru_cache(maxsize=32)
def word_list(language: str, top: int) -> tuple[str, ...]:
    """The `top` most frequent alphabetic words of `language` (wordfreq, offline)."""
    from wordfreq import top_n_list

    return tuple(w for w in top_n_list(language, top) if w.isalpha())


def random_text(rng: np.random.Generator, language: str, top: int, n_words: list[int]) -> str:
    words = word_list(language, top)
    count = int(rng.integers(n_words[0], n_words[1] + 1))
    return " ".join(words[i] for i in rng.integers(len(words), size=count))


def _background(rng: np.random.Generator, n: int, level_db: float) -> np.ndarray:
    return colored_noise(rng, n, float(rng.choice([0.0, 1.0, 2.0]))) * 10 ** (level_db / 20)


def _place(rng: np.random.Generator, x: np.ndarray, n: int) -> np.ndarray:
    """Put `x` at a random offset in `n` samples (or take a random `n`-sample crop of it)."""
    if len(x) >= n:
        return fit(x, n, int(rng.integers(0, len(x) - n + 1)))
    out = np.zeros(n, dtype=np.float32)
    start = int(rng.integers(0, n - len(x) + 1))
    out[start : start + len(x)] = x
    return out


def _count_per_split(recipe: TaskRecipe, total: int, fractions: list[float]) -> dict[str, int]:
    return {s: max(1, round(total * f)) for s, f in zip(recipe.splits, fractions, strict=True)}


def build_keywords(recipe: TaskRecipe, ctx: BuildContext, out: Path) -> None:
    """12 classes: the keywords, `_unknown_` (other words) and `_silence_` (noise only), 1 s each;
    speakers are disjoint across train/valid/test; per clip the pitch and rate are jittered."""
    p = recipe.params
    rng = ctx.rng(recipe.task_name)
    labels = sorted([*p["keywords"], UNKNOWN, SILENCE])
    n_speakers = max(2 * len(recipe.splits), round(p["speakers"] * min(1.0, ctx.scale * 4)))
    speakers = [random_speaker(rng, p["accents"]) for _ in range(n_speakers)]
    split_of = fraction_split([str(i) for i in range(n_speakers)], recipe.splits,
                              p["split_fractions"], rng)  # fmt: skip
    by_split = {s: [i for i in range(n_speakers) if split_of[str(i)] == s] for s in recipe.splits}
    per_class = recipe.n_clips(ctx.scale, len(labels)) // len(labels)
    plan = []
    for split, count in _count_per_split(recipe, per_class, p["split_fractions"]).items():
        for label in labels:
            for _ in range(count):
                spk = by_split[split][rng.integers(len(by_split[split]))]
                word = (
                    label
                    if label not in (UNKNOWN, SILENCE)
                    else str(rng.choice(p["unknown_words"]))
                )
                plan.append((split, label, spk, word, int(rng.integers(-8, 9)),
                             float(rng.uniform(0.85, 1.15)), int(rng.integers(2**31))))  # fmt: skip

    def render(item):
        _, label, spk, word, jitter, factor, seed = item
        r = np.random.default_rng(seed)
        n = SAMPLE_RATE
        noise = _background(r, n, float(r.uniform(-60, -35)))
        if label == SILENCE:
            return normalize(noise, float(r.uniform(-45, -25)))
        speech = trim_silence(synthesize(speakers[spk], word, jitter, factor))
        speech = normalize(speech, float(r.uniform(-26, -14)))
        return np.clip(_place(r, speech, n) + noise, -1, 1)

    clips = ctx.map(render, plan, recipe.task_name)
    writer = TaskWriter(out, recipe, labels)
    for i, (item, audio) in enumerate(zip(plan, clips, strict=True)):
        split, label, spk = item[:3]
        writer.add(split, f"spk{spk:03d}_{label.strip('_')}_{i:05d}.wav", audio, [label])
    writer.finish(["espeak-ng"])


def build_langid(recipe: TaskRecipe, ctx: BuildContext, out: Path) -> None:
    """Language ID over `languages`: random frequent-word text read by random espeak-ng speakers;
    each language's speakers are assigned whole to one fold."""
    p = recipe.params
    rng = ctx.rng(recipe.task_name)
    languages = sorted(p["languages"])
    per_class = recipe.n_clips(ctx.scale, len(languages)) // len(languages)
    n_speakers = max(recipe.nfolds, min(p["speakers_per_language"], per_class))
    plan, fold_of, totals = [], {}, {}
    for lang in languages:
        speakers = [random_speaker(rng, [p["languages"][lang]]) for _ in range(n_speakers)]
        picks = [int(rng.integers(n_speakers)) for _ in range(per_class)]
        picks[:n_speakers] = range(min(n_speakers, per_class))
        sizes = {f"{lang}{s:03d}": picks.count(s) for s in set(picks)}
        fold_of.update(balanced_folds(sizes, recipe.splits, rng, totals))
        for s in picks:
            text = random_text(rng, lang, p["top_words"], p["words"])
            plan.append((lang, f"{lang}{s:03d}", speakers[s], text, int(rng.integers(2**31))))

    n = round(recipe.duration * SAMPLE_RATE)

    def render(item):
        _, _, speaker, text, seed = item
        r = np.random.default_rng(seed)
        speech = normalize(trim_silence(synthesize(speaker, text)), float(r.uniform(-26, -16)))
        return np.clip(_place(r, speech, n) + _background(r, n, float(r.uniform(-60, -40))), -1, 1)

    clips = ctx.map(render, plan, recipe.task_name)
    writer = TaskWriter(out, recipe, languages)
    for i, (item, audio) in enumerate(zip(plan, clips, strict=True)):
        lang, spk = item[:2]
        writer.add(fold_of[spk], f"{spk}_{i:05d}.wav", audio, [lang])
    writer.finish(["espeak-ng", "wordfreq"])


def build_count(recipe: TaskRecipe, ctx: BuildContext, out: Path) -> None:
    """Talker count 0..max_talkers: that many random speakers talk at once (random offsets, +-3 dB),
    over a faint noise floor; clips are normalised, so loudness does not give the count away."""
    p = recipe.params
    rng = ctx.rng(recipe.task_name)
    counts = list(range(p["max_talkers"] + 1))
    labels = sorted(str(c) for c in counts)
    per_class = recipe.n_clips(ctx.scale, len(counts)) // len(counts)
    lang, voice = next(iter(p["languages"].items()))
    plan = []
    for count in counts:
        for _ in range(per_class):
            talkers = [
                (random_speaker(rng, [voice]), random_text(rng, lang, p["top_words"], p["words"]))
                for _ in range(count)
            ]
            plan.append((count, talkers, int(rng.integers(2**31))))
    n = round(recipe.duration * SAMPLE_RATE)

    def render(item):
        _, talkers, seed = item
        r = np.random.default_rng(seed)
        mix = _background(r, n, float(r.uniform(-60, -45)))
        for speaker, text in talkers:
            speech = normalize(trim_silence(synthesize(speaker, text)), float(r.uniform(-23, -17)))
            mix = mix + _place(r, speech, n)
        return normalize(mix, -20.0) if rms(mix) > 1e-4 else np.clip(mix, -1, 1)

    clips = ctx.map(render, plan, recipe.task_name)
    folds, totals = {}, {}
    for count in counts:  # stratified: each count spread evenly over the folds
        members = [str(i) for i, item in enumerate(plan) if item[0] == count]
        folds.update(balanced_folds(dict.fromkeys(members, 1), recipe.splits, rng, totals))
    writer = TaskWriter(out, recipe, labels)
    for i, (item, audio) in enumerate(zip(plan, clips, strict=True)):
        writer.add(folds[str(i)], f"count{item[0]}_{i:05d}.wav", audio, [str(item[0])])
    writer.finish(["espeak-ng", "wordfreq"])
