"""Music tasks from General MIDI soundfonts (FluidSynth): note pitch (NSynth-like), instrument
family (the same wavs, hard-linked) and drum strokes (Mridangam-stroke-like, split by kit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hear_wavjepa.builders.mini.context import BuildContext
from hear_wavjepa.builders.mini.recipe import TaskRecipe
from hear_wavjepa.builders.mini.signal import SAMPLE_RATE, fit, normalize, rms
from hear_wavjepa.builders.mini.splits import balanced_folds, fraction_split
from hear_wavjepa.builders.mini.writer import TaskWriter
from hear_wavjepa.hear_task import load_task
from hear_wavjepa.suite import task_folder

SOUNDFONT_DIR = Path("/usr/share/sounds/sf2")
#: soundfont file stem -> the Debian package that ships it (for SOURCES.md)
SOUNDFONT_PACKAGES = {"FluidR3_GM": "fluid-soundfont-gm", "TimGM6mb": "timgm6mb-soundfont"}
DRUM_BANK = 128


class GMSynth:
    """One FluidSynth instance at 16 kHz with reverb and chorus off, holding the named soundfonts.

    Render in one thread: output depends on the sequence of calls, which the builders keep fixed.
    """

    def __init__(self, soundfonts: list[str]):
        try:
            import fluidsynth
        except ImportError as err:  # pyfluidsynth needs Debian's libfluidsynth3
            raise RuntimeError(
                "pyfluidsynth/libfluidsynth3 missing (tasks/apt-packages.txt)"
            ) from err
        self.synth = fluidsynth.Synth(gain=0.4, samplerate=float(SAMPLE_RATE))
        self.synth.setting("synth.reverb.active", 0)
        self.synth.setting("synth.chorus.active", 0)
        self.ids = {}
        for name in soundfonts:
            path = SOUNDFONT_DIR / f"{name}.sf2"
            if not path.is_file():
                raise RuntimeError(f"{path} is missing: install {SOUNDFONT_PACKAGES[name]}")
            self.ids[name] = self.synth.sfload(str(path))

    def presets(self, soundfont: str, bank: int) -> dict[int, str]:
        """program -> preset name of the presets that exist in `bank`."""
        sfid = self.ids[soundfont]
        names = {p: self.synth.sfpreset_name(sfid, bank, p) for p in range(128)}
        return {p: n for p, n in names.items() if n}

    def render(
        self, soundfont: str, bank: int, program: int, notes: list[tuple[float, int, int, float]],
        seconds: float,
    ) -> np.ndarray:  # fmt: skip
        """Play `notes` (start s, MIDI key, velocity, length s); float32 (samples,) of `seconds`."""
        channel = 9 if bank == DRUM_BANK else 0
        self.synth.program_select(channel, self.ids[soundfont], bank, program)
        events = sorted(
            [(t, 1, k, v) for t, k, v, _ in notes] + [(t + d, 0, k, 0) for t, k, _, d in notes]
        )
        total = round(seconds * SAMPLE_RATE)
        chunks, done = [], 0
        for t, on, key, vel in events:
            at = min(total, round(t * SAMPLE_RATE))
            if at > done:
                chunks.append(self.synth.get_samples(at - done))
                done = at
            if on:
                self.synth.noteon(channel, key, vel)
            else:
                self.synth.noteoff(channel, key)
        if total > done:
            chunks.append(self.synth.get_samples(total - done))
        self.synth.all_sounds_off(channel)
        self.synth.get_samples(256)  # flush released voices
        stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2) / 32768.0
        return fit(stereo.mean(axis=1), total)


def _note_name(soundfont: str, program: int, key: int, velocity: int, i: int) -> str:
    return f"{soundfont.lower()}-p{program:03d}-n{key:03d}-v{velocity:03d}-{i:05d}.wav"


def build_pitch(recipe: TaskRecipe, ctx: BuildContext, out: Path) -> None:
    """One note per clip, labels MIDI 21..108 (strings, numeric order). Instruments = (soundfont,
    program); within each GM family they are split train/valid/test: test instruments are unseen."""
    p = recipe.params
    rng = ctx.rng(recipe.task_name)
    synth = GMSynth(p["soundfonts"])
    lo, hi = p["pitch_range"]
    labels = [str(k) for k in range(lo, hi + 1)]
    instruments = [(sf, prog) for sf in p["soundfonts"] for prog in range(*p["programs"])
                   if prog in synth.presets(sf, 0)]  # fmt: skip
    split_of = {}
    for family in sorted({prog // 8 for _, prog in instruments}):
        members = [f"{sf}:{prog}" for sf, prog in instruments if prog // 8 == family]
        split_of.update(fraction_split(members, recipe.splits, p["split_fractions"], rng))
    pool = {s: [i for i in instruments if split_of[f"{i[0]}:{i[1]}"] == s] for s in recipe.splits}
    total = recipe.n_clips(ctx.scale, len(labels))
    counts = {
        s: max(1, round(total * f))
        for s, f in zip(recipe.splits, p["split_fractions"], strict=True)
    }
    writer = TaskWriter(out, recipe, labels)
    i = 0
    for split, count in counts.items():
        order = rng.permutation(len(labels))  # each split cycles through the pitches evenly
        for j in range(count):
            key = lo + int(order[j % len(labels)])
            for _ in range(50):  # some (instrument, key) pairs are silent: redraw the instrument
                sf, prog = pool[split][rng.integers(len(pool[split]))]
                vel = int(rng.integers(60, 128))
                audio = synth.render(
                    sf, 0, prog, [(0.0, key, vel, p["note_seconds"])], recipe.duration
                )
                if rms(audio) > 1e-4:
                    break
            else:
                raise RuntimeError(f"{recipe.task_name}: no audible instrument for MIDI key {key}")
            writer.add(split, _note_name(sf, prog, key, vel, i), normalize(audio), [str(key)])
            i += 1
    writer.finish(["libfluidsynth3", *(SOUNDFONT_PACKAGES[s] for s in p["soundfonts"])])


def build_family(recipe: TaskRecipe, ctx: BuildContext, out: Path) -> None:
    """The pitch task's wavs, hard-linked, labelled with the GM family (program // 8)."""
    families = recipe.params["families"]
    pitch = load_task(
        ctx.suite_dir / task_folder(recipe.requires, recipe.version), check_audio=False
    )
    writer = TaskWriter(out, recipe, sorted(families))
    for split in pitch.splits:
        for clip in pitch.clips[split]:
            program = int(clip.filename.split("-")[1].removeprefix("p"))
            writer.link(split, clip.filename, pitch.wav_path(split, clip), [families[program // 8]])
    used = {c.filename.split("-")[0] for clips in pitch.clips.values() for c in clips}
    packages = [v for k, v in SOUNDFONT_PACKAGES.items() if k.lower() in used]
    writer.finish(["libfluidsynth3", *packages])


def build_drums(recipe: TaskRecipe, ctx: BuildContext, out: Path) -> None:
    """One drum stroke per clip from the soundfonts' GM drum kits; kits of one family (e.g.
    'Standard 1'..'Standard 7') stay in one fold."""
    p = recipe.params
    rng = ctx.rng(recipe.task_name)
    synth = GMSynth(p["soundfonts"])
    strokes = p["strokes"]
    labels = sorted(strokes)
    kits = [(sf, prog, name) for sf in p["soundfonts"]
            for prog, name in sorted(synth.presets(sf, DRUM_BANK).items())]  # fmt: skip
    family = {k: f"{k[0]}:{k[2].rstrip('0123456789 ')}" for k in kits}
    sizes: dict[str, int] = {}
    for k in kits:
        sizes[family[k]] = sizes.get(family[k], 0) + 1
    fold_of = balanced_folds(sizes, recipe.splits, rng)
    per_fold = max(1, recipe.n_clips(ctx.scale, len(labels)) // (len(labels) * len(recipe.splits)))
    writer = TaskWriter(out, recipe, labels)
    i = 0
    for fold in recipe.splits:
        fold_kits = [k for k in kits if fold_of[family[k]] == fold]
        for label in labels:
            for _ in range(per_fold):
                for _ in range(50):  # a key missing from a kit is silent: redraw
                    sf, prog, _name = fold_kits[rng.integers(len(fold_kits))]
                    key = int(rng.choice(strokes[label]))
                    vel = int(rng.integers(50, 128))
                    audio = synth.render(
                        sf, DRUM_BANK, prog, [(0.0, key, vel, 0.5)], recipe.duration
                    )
                    if rms(audio) > 1e-4:
                        break
                else:
                    raise RuntimeError(f"{recipe.task_name}: no audible kit for {label} in {fold}")
                name = _note_name(sf, prog, key, vel, i).replace("-p", "-kit", 1)
                writer.add(fold, name, normalize(audio), [label])
                i += 1
    writer.finish(["libfluidsynth3", *(SOUNDFONT_PACKAGES[s] for s in p["soundfonts"])])
