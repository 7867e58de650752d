"""Render one labelled sound from a declarative spec (used by the mixtures and events tasks).

Spec keys: `kind` = speech | gm | drum | real, plus per kind `languages` (speech), `programs`
(GM melodic programs), `keys` (MIDI keys; drum kit keys for `drum`), `notes` [lo, hi] notes or hits,
`note_seconds` [lo, hi], `gap` [lo, hi] seconds between notes/hits/recordings, `package` (real).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hear_wavjepa.builders.mini.context import BuildContext
from hear_wavjepa.builders.mini.music import DRUM_BANK, SOUNDFONT_PACKAGES, GMSynth
from hear_wavjepa.builders.mini.signal import SAMPLE_RATE, normalize, trim_silence
from hear_wavjepa.builders.mini.sources import Recording, SoundCache, fetch_recordings, read_list
from hear_wavjepa.builders.mini.speech import random_speaker, random_text, synthesize
from hear_wavjepa.paths import suite_file


def _uniform(rng: np.random.Generator, bounds: list[float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _count(rng: np.random.Generator, bounds: list[int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


class SoundBank:
    """Renders specs with one GM synthesiser, espeak-ng and cached recordings (one thread)."""

    def __init__(self, ctx: BuildContext, specs: dict[str, dict[str, Any]], soundfonts: list[str],
                 real_list: str):  # fmt: skip
        self.specs = specs
        self.synth = GMSynth(soundfonts)
        self.soundfonts = soundfonts
        self.kits = [(sf, prog) for sf in soundfonts for prog in self.synth.presets(sf, DRUM_BANK)]
        self.cache = SoundCache(ctx.sources_dir)
        packages = sorted({s["package"] for s in specs.values() if s["kind"] == "real"})
        self.real: dict[str, list[Recording]] = {}
        self.versions: dict[str, str] = {}
        if packages:
            verified, indexes = fetch_recordings(
                self.cache, read_list(suite_file(real_list)), packages
            )
            self.versions = {k: v["version"] for k, v in indexes.items()}
            for name, spec in specs.items():
                if spec["kind"] == "real":
                    self.real[name] = sorted(
                        (r for r in verified if r.label == name and r.package == spec["package"]),
                        key=lambda r: r.md5,
                    )
                    if not self.real[name]:
                        raise RuntimeError(
                            f"no verified recordings for {name} in {spec['package']}"
                        )

    def sources(self) -> list[str]:
        """SOURCES.md keys of everything the specs draw on."""
        kinds = {s["kind"] for s in self.specs.values()}
        keys = ["libfluidsynth3", *(SOUNDFONT_PACKAGES[s] for s in self.soundfonts)]
        if "speech" in kinds:
            keys += ["espeak-ng", "wordfreq"]
        return keys + sorted(self.versions)

    def render(self, name: str, rng: np.random.Generator) -> np.ndarray:
        """The sound `name` as float32 (samples,) at 16 kHz, -20 dBFS RMS, silence trimmed."""
        spec = self.specs[name]
        kind = spec["kind"]
        if kind == "speech":
            lang = str(rng.choice(sorted(spec["languages"])))
            speaker = random_speaker(rng, [spec["languages"][lang]])
            audio = synthesize(speaker, random_text(rng, lang, 1000, spec["notes"]))
        elif kind == "real":
            pool = self.real[name]
            parts = []
            for _ in range(_count(rng, spec["notes"])):
                parts.append(trim_silence(self.cache.load(pool[rng.integers(len(pool))].md5)))
                parts.append(np.zeros(round(_uniform(rng, spec["gap"]) * SAMPLE_RATE), np.float32))
            audio = np.concatenate(parts[:-1])
        else:
            sf = self.soundfonts[rng.integers(len(self.soundfonts))]
            if kind == "drum":
                sf, program = self.kits[rng.integers(len(self.kits))]
                bank = DRUM_BANK
            else:
                program, bank = int(rng.choice(spec["programs"])), 0
            notes, t = [], 0.0
            for _ in range(_count(rng, spec["notes"])):
                length = _uniform(rng, spec["note_seconds"])
                notes.append((t, int(rng.choice(spec["keys"])), int(rng.integers(70, 128)), length))
                t += length + _uniform(rng, spec["gap"])
            audio = self.synth.render(sf, bank, program, notes, t + 0.5)
        return normalize(trim_silence(audio), -20.0)
