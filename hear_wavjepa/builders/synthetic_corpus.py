"""`hear-wavjepa tasks build-corpus`: an offline pretraining corpus of 10-s 16-kHz mono FLAC clips.

Clip `i` is planned from its own generator `[seed, crc32("pretrain-corpus"), i]` (a stream the
mini suite never uses, whose generators are `[seed, crc32(task_name)]`) and is one of: speech
(espeak-ng, 37 languages, 1-2 random voices, sentences with pauses), music (a GM phrase: melody,
chords, bass), drums (a pattern on a GM drum kit), real recordings (words and noises recorded by
people) or a mixture of 2-3 of these. Files are written atomically; existing clips are skipped, so
an interrupted build resumes, and `--clips` can grow a corpus (clip `i` never depends on N).

Exclusion rule (no mini-suite evaluation material, read from `tasks/mini.yaml` at build time):
- GM music and drums use only MuseScore_General_Lite.sf3 (Debian musescore-general-soundfont-small),
  a soundfont the mini suite never loads (it uses FluidR3_GM and TimGM6mb): no mini pitch/family
  instrument (of any split) and no mini drum kit (every drums fold is a test fold once) appears.
- Real recordings come only from Debian packages the mini suite never fetches (ktuberling-data,
  qabcs-data, kajongg); a file whose md5 is in any mini recording list is dropped as well.
- Speech: espeak voices are synthetic and reused, but texts are fresh random sentences from the
  wordfreq top 5000 per language, with every mini keyword/unknown word removed.
The build refuses to run (RuntimeError) if the recipe ever starts using this soundfont or these
packages. Determinism: a fresh build is byte-identical for a seed. FluidSynth output depends on
the order of render calls, so a resumed music clip may differ from a fresh build in low bits.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
from tqdm import tqdm

from hear_wavjepa.atomicio import write_text
from hear_wavjepa.audio import write_flac
from hear_wavjepa.builders.debian import read_index, unpacked_package, write_index
from hear_wavjepa.builders.mini.attributions import SOURCES, debian_version
from hear_wavjepa.builders.mini.music import DRUM_BANK, GMSynth
from hear_wavjepa.builders.mini.recipe import DEFAULT_RECIPE, mini_material
from hear_wavjepa.builders.mini.signal import (
    SAMPLE_RATE,
    colored_noise,
    fit,
    normalize,
    rms,
    to_mono_16k,
    to_pcm16,
    trim_silence,
)
from hear_wavjepa.builders.mini.speech import Speaker, espeak_variants, synthesize, word_list
from hear_wavjepa.paths import corpus_dir, sources_dir

VERSION = 1
CLIP_SECONDS = 10.0
DEFAULT_CLIPS = 800
STREAM = zlib.crc32(b"pretrain-corpus")
SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
SOUNDFONT_PACKAGE = "musescore-general-soundfont-small"
#: Debian package -> (what it provides, licence, attribution)
REAL_PACKAGES = {
    "ktuberling-data": ("spoken words, ~25 languages", "GPL-2+", "KDE KTuberling contributors"),
    "qabcs-data": ("spoken words, letters (7 languages), noises", "GPL-3+", "qABCs contributors"),
    "kajongg": ("8 voices calling mah-jongg tiles", "GPL-2+", "KDE Kajongg contributors"),
}
#: fraction of clips per kind
WEIGHTS = {"speech": 0.3, "music": 0.2, "drums": 0.1, "real": 0.2, "mix": 0.2}
#: wordfreq language -> espeak-ng voice (tested with espeak-ng 1.51; ta/bn/zh left out)
LANGUAGES = {
    "ar": "ar", "bg": "bg", "ca": "ca", "cs": "cs", "da": "da", "de": "de", "el": "el",
    "en": "en-us", "es": "es", "fa": "fa", "fi": "fi", "fr": "fr-fr", "he": "he", "hi": "hi",
    "hu": "hu", "id": "id", "is": "is", "it": "it", "ja": "ja", "ko": "ko", "lt": "lt",
    "lv": "lv", "mk": "mk", "ms": "ms", "nb": "nb", "nl": "nl", "pl": "pl", "pt": "pt",
    "ro": "ro", "ru": "ru", "sk": "sk", "sl": "sl", "sv": "sv", "tr": "tr", "uk": "uk",
    "ur": "ur", "vi": "vi",
}  # fmt: skip
SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10],
          "dorian": [0, 2, 3, 5, 7, 9, 10], "pentatonic": [0, 2, 4, 7, 9]}  # fmt: skip
CHORD_PROGRAMS = [*range(0, 8), *range(16, 32), *range(48, 56), *range(88, 96)]
DRUM_VOICES = {"kick": [35, 36], "snare": [38, 40, 37], "hihat": [42, 44, 46], "ride": [51, 59],
               "tom": [41, 43, 45, 47, 48, 50], "latin": [60, 61, 62, 63, 64, 65, 66],
               "shaker": [54, 69, 70, 82], "clap": [39, 56, 75, 76]}  # fmt: skip


@dataclass(frozen=True)
class CorpusReport:
    """A finished build: clips per kind, clips written now, wall seconds, bytes of audio."""

    out: Path
    kinds: dict[str, int]
    written: int
    seconds: float
    bytes: int


def default_out() -> Path:
    return corpus_dir()


def check_exclusion(mini: dict[str, Any]) -> None:
    """Raise RuntimeError if the corpus' soundfont or real packages are mini-suite material."""
    if SOUNDFONT.stem in mini["soundfonts"]:
        raise RuntimeError(f"{DEFAULT_RECIPE}: the mini suite uses {SOUNDFONT.stem}")
    if shared := sorted(set(REAL_PACKAGES) & mini["packages"]):
        raise RuntimeError(f"{DEFAULT_RECIPE}: the mini suite uses the corpus packages {shared}")


def fetch_real(
    package: str, cache: Path, banned_md5: set[str], progress: bool = True
) -> dict[str, Any]:
    """Every wav/ogg of `package` (apt-get download), minus `banned_md5`, cached as 16 kHz FLAC
    under `cache/<md5>.flac`; returns the index (version, files with md5/path/group/seconds)."""
    index_path = cache / f"{package}.json"
    known = read_index(index_path)
    if known is not None:
        return known
    with unpacked_package(package, cache) as (version, tree):
        paths = sorted(p for p in tree.rglob("*")
                       if p.is_file() and p.suffix.lower() in (".wav", ".ogg"))  # fmt: skip
        files, banned = [], 0
        for src in tqdm(
            paths, f"convert {package}", unit="file", leave=False, disable=not progress
        ):
            md5 = hashlib.md5(src.read_bytes()).hexdigest()
            if md5 in banned_md5:
                banned += 1
                continue
            try:
                audio, rate = soundfile.read(str(src), dtype="float32", always_2d=True)
            except (RuntimeError, soundfile.LibsndfileError):
                continue  # an undecodable file is left out (and not in the index)
            audio = trim_silence(to_mono_16k(audio, rate))
            if len(audio) < SAMPLE_RATE // 5:
                continue
            write_flac(cache / f"{md5}.flac", to_pcm16(normalize(audio)))
            rel = "/" + str(src.relative_to(tree))
            files.append({"md5": md5, "path": rel, "group": str(Path(rel).parent),
                          "seconds": round(len(audio) / SAMPLE_RATE, 3)})  # fmt: skip
    index = {"package": package, "version": version, "files": files, "mini_md5_dropped": banned}
    write_index(index_path, index)
    return index


class Planner:
    """Plans clip `i` (a JSON-able spec) from `[seed, STREAM, i]` alone; renders nothing."""

    def __init__(self, seed: int, words_out: set[str], programs: list[int], kits: dict[int, str],
                 real: dict[str, list[dict]]):  # fmt: skip
        self.seed, self.words_out, self.programs, self.kits = seed, words_out, programs, kits
        self.real = real  # group -> files, groups with >= 3 files
        self.groups = sorted(real)
        self.variants = espeak_variants()
        self._words: dict[str, list[str]] = {}

    def words(self, lang: str) -> list[str]:
        if lang not in self._words:
            self._words[lang] = [
                w for w in word_list(lang, 5000) if w.lower() not in self.words_out
            ]
        return self._words[lang]

    def clip(self, i: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, STREAM, i])
        kinds = [k for k in WEIGHTS if k != "real" or self.groups]
        p = np.array([WEIGHTS[k] for k in kinds])
        kind = kinds[rng.choice(len(kinds), p=p / p.sum())]
        if kind == "mix":
            parts = [k for k in ("speech", "music", "drums", "real") if k != "real" or self.groups]
            picked = [parts[j] for j in rng.permutation(len(parts))[: rng.integers(2, 4)]]
            layers = [self.layer(k, rng) for k in picked]
            gains = [0.0] + [round(float(rng.uniform(-12, 3)), 2) for _ in layers[1:]]
        else:
            layers, gains = [self.layer(kind, rng)], [0.0]
        return {"index": i, "file": f"audio/c{i:05d}-{kind}.flac", "kind": kind,
                "layers": layers, "gains_db": gains,
                "noise": {"beta": float(rng.choice([0.0, 1.0, 2.0])),
                          "snr_db": round(float(rng.uniform(35, 60)), 2),
                          "seed": int(rng.integers(2**31))} if rng.random() < 0.5 else None,
                "level_db": round(float(rng.uniform(-30, -16)), 2)}  # fmt: skip

    def layer(self, kind: str, rng: np.random.Generator) -> dict[str, Any]:
        return {"speech": self.speech, "music": self.music, "drums": self.drums,
                "real": self.real_clip}[kind](rng)  # fmt: skip

    def speech(self, rng: np.random.Generator) -> dict[str, Any]:
        lang = sorted(LANGUAGES)[rng.integers(len(LANGUAGES))]
        speakers = [Speaker(LANGUAGES[lang], self.variants[rng.integers(len(self.variants))],
                            int(rng.integers(10, 90)), int(rng.integers(120, 220)))
                    for _ in range(rng.integers(1, 3))]  # fmt: skip
        words, turns = self.words(lang), []
        for t in range(int(rng.integers(2, 5))):
            sentences = []
            for _ in range(int(rng.integers(1, 4))):
                w = [words[j] for j in rng.integers(len(words), size=rng.integers(3, 13))]
                if len(w) > 6 and rng.random() < 0.5:
                    w[len(w) // 2] += ","
                sentences.append(" ".join(w) + str(rng.choice([".", ".", "?", "!"])))
            turns.append({"speaker": asdict(speakers[t % len(speakers)]),
                          "text": " ".join(sentences),
                          "gap": round(float(rng.uniform(0.2, 1.2)), 3)})  # fmt: skip
        return {"kind": "speech", "language": lang, "turns": turns}

    def music(self, rng: np.random.Generator) -> dict[str, Any]:
        beat = 60.0 / float(rng.uniform(70, 160))
        scale_name = sorted(SCALES)[rng.integers(len(SCALES))]
        scale, root = SCALES[scale_name], int(rng.integers(45, 58))

        def key(degree: int) -> int:
            return root + 12 * (degree // len(scale)) + scale[degree % len(scale)]

        melody, t, degree = [], float(rng.uniform(0, 1)), int(rng.integers(0, len(scale)))
        while t < CLIP_SECONDS:
            length = beat * float(rng.choice([0.5, 1, 1, 1.5, 2]))
            if rng.random() > 0.15:  # else a rest
                degree = int(np.clip(degree + rng.integers(-2, 3), -3, 2 * len(scale)))
                melody.append((t, key(degree) + 12, int(rng.integers(60, 120)), 0.9 * length))
            t += length + (beat * 2 if rng.random() < 0.05 else 0.0)  # phrase pauses
        parts = [{"program": self._program(rng, self.programs), "notes": melody}]
        n_parts = int(rng.integers(1, 4))
        chords, bass, t = [], [], 0.0
        while t < CLIP_SECONDS:
            d, length = int(rng.choice([0, 3, 4, 5, 1])), beat * float(rng.choice([2, 4]))
            chords += [(t, key(d + k), int(rng.integers(45, 90)), length) for k in (0, 2, 4)]
            bass.append((t, key(d) - 12, int(rng.integers(60, 110)), 0.9 * length))
            t += length
        if n_parts >= 2:
            parts.append({"program": self._program(rng, CHORD_PROGRAMS), "notes": chords})
        if n_parts >= 3:
            parts.append({"program": self._program(rng, list(range(32, 40))), "notes": bass})
        return {"kind": "music", "soundfont": SOUNDFONT.stem, "scale": scale_name, "root": root,
                "tempo_bpm": round(60 / beat, 1), "parts": parts}  # fmt: skip

    def _program(self, rng: np.random.Generator, wanted: list[int]) -> int:
        pool = [p for p in wanted if p in self.programs] or self.programs
        return int(pool[rng.integers(len(pool))])

    def drums(self, rng: np.random.Generator) -> dict[str, Any]:
        kit = sorted(self.kits)[rng.integers(len(self.kits))]
        step = 60.0 / float(rng.uniform(80, 170)) / 4  # sixteenth notes
        voices = ["kick", "snare", "hihat"] + [
            v for v in ("ride", "tom", "latin", "shaker", "clap") if rng.random() < 0.3
        ]
        bar = {v: (int(rng.choice(DRUM_VOICES[v])), rng.random(16) < rng.uniform(0.1, 0.6))
               for v in voices}  # fmt: skip
        bar["kick"][1][0] = True  # a downbeat and a backbeat in every pattern
        bar["snare"][1][[4, 12]] = True
        notes, t = [], 0.0
        while t < CLIP_SECONDS:
            fill = rng.random() < 0.15
            for s in range(16):
                for v in voices:
                    k, hits = bar[v]
                    if hits[s] and rng.random() > 0.1:
                        notes.append((t, k, int(rng.integers(50, 127)), 0.1))
                if fill and s >= 8 and rng.random() < 0.6:
                    notes.append((t, int(rng.choice(DRUM_VOICES["tom"])), 100, 0.1))
                t += step
            if rng.random() < 0.3:
                notes.append((t, int(rng.choice([49, 57, 52, 55])), 110, 0.1))
        notes = [n for n in notes if n[0] < CLIP_SECONDS]
        return {"kind": "drums", "soundfont": SOUNDFONT.stem, "kit": kit,
                "kit_name": self.kits[kit], "notes": notes}  # fmt: skip

    def real_clip(self, rng: np.random.Generator) -> dict[str, Any]:
        group = self.groups[rng.integers(len(self.groups))]
        pool, picked, t = self.real[group], [], float(rng.uniform(0, 1))
        while t < CLIP_SECONDS and len(picked) < 40:
            f = pool[rng.integers(len(pool))]
            gap = round(float(rng.uniform(0.15, 1.0)), 3)
            picked.append({"md5": f["md5"], "at": round(t, 3)})
            t += f["seconds"] + gap
        return {"kind": "real", "group": group, "files": picked}


def _load_soundfont(dynamic: bool) -> GMSynth:
    """A GMSynth holding SOUNDFONT; `dynamic` decodes samples only when a preset is played."""
    if not SOUNDFONT.is_file():
        raise RuntimeError(f"{SOUNDFONT} is missing: apt-get install {SOUNDFONT_PACKAGE}")
    synth = GMSynth([])
    synth.synth.setting("synth.dynamic-sample-loading", int(dynamic))
    synth.ids[SOUNDFONT.stem] = synth.synth.sfload(str(SOUNDFONT))
    return synth


def soundfont_catalog() -> tuple[list[int], dict[int, str]]:
    """Melodic programs < 120 and drum kits (program -> name, no metronome) of SOUNDFONT."""
    synth = _load_soundfont(dynamic=True)
    kits = synth.presets(SOUNDFONT.stem, DRUM_BANK)
    programs = sorted(p for p in synth.presets(SOUNDFONT.stem, 0) if p < 120)
    synth.synth.delete()
    return programs, {k: v for k, v in kits.items() if "metronome" not in v.lower()}


class Renderer:
    """Turns clip specs into audio; FluidSynth layers on the calling thread, the rest anywhere."""

    def __init__(self, real_cache: Path):
        self.real_cache = real_cache
        self._synth: GMSynth | None = None

    @property
    def synth(self) -> GMSynth:
        """The soundfont, fully decoded on first use (~10 s)."""
        if self._synth is None:
            self._synth = _load_soundfont(dynamic=False)
        return self._synth

    def synth_layers(self, clip: dict[str, Any]) -> list[np.ndarray | None]:
        """The GM layers of `clip` (float32 (samples,)), None for the others. One thread only."""
        out = []
        for layer in clip["layers"]:
            if layer["kind"] == "music":
                parts = [self.synth.render(SOUNDFONT.stem, 0, part["program"], part["notes"],
                                           CLIP_SECONDS) for part in layer["parts"]]  # fmt: skip
                out.append(normalize(np.sum(parts, axis=0), -20.0))
            elif layer["kind"] == "drums":
                audio = self.synth.render(SOUNDFONT.stem, DRUM_BANK, layer["kit"], layer["notes"],
                                          CLIP_SECONDS)  # fmt: skip
                out.append(normalize(audio, -20.0))
            else:
                out.append(None)
        return out

    def finish(self, clip: dict[str, Any], synth: list[np.ndarray | None]) -> np.ndarray:
        """The whole clip: float32 (160000,) at 16 kHz. Thread-safe."""
        n = round(CLIP_SECONDS * SAMPLE_RATE)
        mix = np.zeros(n, dtype=np.float32)
        for layer, audio, gain in zip(clip["layers"], synth, clip["gains_db"], strict=True):
            if audio is None:
                audio = self.speech(layer, n) if layer["kind"] == "speech" else self.real(layer, n)
            mix += audio * np.float32(10 ** (gain / 20))
        if noise := clip["noise"]:  # a noise floor `snr_db` below the clip (half the clips)
            level = max(rms(mix), 1e-3) * 10 ** (-noise["snr_db"] / 20)
            rng = np.random.default_rng(noise["seed"])
            mix += colored_noise(rng, n, noise["beta"]) * np.float32(level)
        return normalize(mix, clip["level_db"])

    @staticmethod
    def speech(layer: dict[str, Any], n: int) -> np.ndarray:
        parts = []
        for turn in layer["turns"]:
            parts.append(trim_silence(synthesize(Speaker(**turn["speaker"]), turn["text"])))
            parts.append(np.zeros(round(turn["gap"] * SAMPLE_RATE), np.float32))
        audio = np.concatenate(parts)
        offset = zlib.crc32(layer["turns"][0]["text"].encode()) % max(1, len(audio) - n + 1)
        return normalize(fit(audio, n, offset), -20.0)

    def real(self, layer: dict[str, Any], n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.float32)
        for f in layer["files"]:
            audio, _ = soundfile.read(str(self.real_cache / f"{f['md5']}.flac"), dtype="float32")
            start = round(f["at"] * SAMPLE_RATE)
            part = audio[: max(0, n - start)]
            out[start : start + len(part)] += part
        return normalize(out, -20.0)


def _settings(seed: int, real: dict[str, dict], mini: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": VERSION, "seed": seed, "stream": "pretrain-corpus",
        "clip_seconds": CLIP_SECONDS, "sample_rate": SAMPLE_RATE, "format": "FLAC PCM_16 mono",
        "weights": WEIGHTS, "languages": LANGUAGES, "soundfont": SOUNDFONT.name,
        "real_packages": {k: v["version"] for k, v in real.items()},
        "exclusion": {
            "mini_soundfonts": sorted(mini["soundfonts"]),
            "mini_packages": sorted(mini["packages"]),
            "mini_md5s": len(mini["md5s"]), "mini_words_removed": sorted(mini["words"]),
            "real_files_dropped_by_md5": sum(v["mini_md5_dropped"] for v in real.values()),
        },
    }  # fmt: skip


def _public(clip: dict[str, Any]) -> dict[str, Any]:
    """The manifest entry: the spec without note lists."""

    def strip(layer: dict[str, Any]) -> dict[str, Any]:
        layer = {k: v for k, v in layer.items() if k != "notes"}
        if "parts" in layer:
            layer["parts"] = [{"program": p["program"], "notes": len(p["notes"])}
                              for p in layer["parts"]]  # fmt: skip
        return layer

    return {**clip, "layers": [strip(layer) for layer in clip["layers"]]}


def _sources_md(real: dict[str, dict]) -> str:
    rows = [(k, *SOURCES[k], debian_version(k)) for k in ("espeak-ng", "libfluidsynth3")]
    rows.append(("wordfreq", *SOURCES["wordfreq"], "PyPI"))
    soundfont = (f"{SOUNDFONT.name} General MIDI soundfont", "MIT", "S. Christian Collins")
    rows.append((SOUNDFONT_PACKAGE, *soundfont, debian_version(SOUNDFONT_PACKAGE)))
    rows += [(k, *REAL_PACKAGES[k], v["version"]) for k, v in real.items()]
    lines = [
        "# Pretraining corpus: sources, licences and attributions",
        "",
        "Generated by `hear-wavjepa tasks build-corpus` "
        "(hear_wavjepa/builders/synthetic_corpus.py); "
        "none of it is mini-suite evaluation material (see corpus.json `exclusion`).",
        "",
        "| source | provides | licence | attribution | version |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(r)} |" for r in rows]  # fmt: skip
    return "\n".join(lines) + "\n"


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Torch intra-op threads = 1 inside (the build parallelises over clips); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def build_synthetic_corpus(
    out: Path | str | None = None,
    *,
    clips: int = DEFAULT_CLIPS,
    seed: int = 0,
    workers: int = 2,
    real_packages: tuple[str, ...] = tuple(REAL_PACKAGES),
    progress: bool = True,
) -> CorpusReport:
    """Build (or resume) the corpus in `out` (default `$HEAR_WAVJEPA_HOME/corpus`).

    A `corpus.json` with other settings (seed, packages, version) is refused with a ValueError, as
    are clip files beyond `clips`; existing clips are kept and only missing ones are rendered.
    """
    start = time.perf_counter()
    out = Path(out) if out is not None else default_out()
    if clips < 1:
        raise ValueError(f"clips must be >= 1, got {clips}")
    if unknown := sorted(set(real_packages) - set(REAL_PACKAGES)):
        raise ValueError(f"unknown real packages {unknown}; known: {sorted(REAL_PACKAGES)}")
    mini = mini_material()
    check_exclusion(mini)
    cache = sources_dir() / "corpus-real"
    with _one_torch_thread():  # resampling many short files: parallel threads fight
        real = {p: fetch_real(p, cache, mini["md5s"], progress) for p in real_packages}
    settings = _settings(seed, real, mini)
    manifest_path = out / "corpus.json"
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())["settings"]
        if old != settings:
            diff = sorted(k for k in settings if old.get(k) != settings[k])
            raise ValueError(f"{manifest_path}: built with other settings ({diff}); use a new OUT")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    for stale in [*(out / "audio").glob("*.part"), *(out / "audio").glob(".*.tmp")]:
        stale.unlink()  # left by a killed build
    beyond = [p for p in (out / "audio").glob("c*.flac") if int(p.name[1:6]) >= clips]
    if beyond:
        raise ValueError(f"{out}: holds clips beyond --clips {clips} (e.g. {beyond[0].name})")

    groups: dict[str, list[dict]] = {}
    for index in real.values():
        for f in index["files"]:
            groups.setdefault(f"{index['package']}:{f['group']}", []).append(f)
    renderer = Renderer(cache)
    programs, kits = soundfont_catalog()
    planner = Planner(seed, mini["words"], programs, kits,
                      {g: f for g, f in groups.items() if len(f) >= 3})  # fmt: skip
    plan = [planner.clip(i) for i in range(clips)]
    pending = [c for c in plan if not (out / c["file"]).is_file()]

    def write(clip: dict[str, Any], synth: list[np.ndarray | None]) -> None:
        write_flac(out / clip["file"], to_pcm16(renderer.finish(clip, synth)))

    bar = tqdm(total=len(plan), initial=len(plan) - len(pending), desc="corpus", unit="clip",
               disable=not progress)  # fmt: skip
    with _one_torch_thread(), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        queue: list[Future] = []
        for clip in pending:  # GM layers in plan order on this thread, the rest in the pool
            queue.append(pool.submit(write, clip, renderer.synth_layers(clip)))
            while len(queue) > 4 * max(1, workers) or (queue and queue[0].done()):
                queue.pop(0).result()
                bar.update()
        for future in queue:
            future.result()
            bar.update()
    bar.close()
    manifest = {"settings": settings, "clips": [_public(c) for c in plan],
                "counts": dict(sorted(Counter(c["kind"] for c in plan).items()))}  # fmt: skip
    write_text(manifest_path, json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False))
    write_text(out / "SOURCES.md", _sources_md(real))
    size = sum(os.path.getsize(out / c["file"]) for c in plan)
    return CorpusReport(out, manifest["counts"], len(pending), time.perf_counter() - start, size)
