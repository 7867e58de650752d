"""Noise banks: coloured noise (1/f^beta) and espeak-ng babble, split into train and test clips.

A bank is a deterministic function of its config (every clip is seeded by (seed, kind, index)) and
is cached under `$HEAR_WAVJEPA_HOME/scenes/noise-<key>/noise.npz`: `clips` (n, samples) float32 at
unit RMS, `ids` (n,) such as `pink-003` or `babble-007`, `is_test` (n,) bool. In each kind the last
`test_fraction` of the clips are test clips.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly
from tqdm import tqdm

from hear_wavjepa.atomicio import atomic_write, write_text
from hear_wavjepa.paths import scenes_dir
from hear_wavjepa.scenes.rooms import check_range

COLOURS = {0.0: "white", 1.0: "pink", 2.0: "brown"}
BABBLE_LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pt", "pl", "sv")
BABBLE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
_SYLLABLE_ONSETS = [*"bdfgklmnprstvz", "ch", "sh", "tr"]
_SYLLABLE_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ei"]


@dataclass(frozen=True)
class NoiseBankConfig:
    """Everything that determines a noise bank. `talkers`: (min, max) voices per babble clip."""

    seconds: float = 10.0
    sample_rate: int = 16000
    coloured: int = 24
    babble: int = 16
    talkers: tuple[int, int] = (4, 8)
    test_fraction: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.5 <= self.seconds <= 600:
            raise ValueError(f"noise clip seconds must lie in [0.5, 600], got {self.seconds}")
        if self.coloured < 0 or self.babble < 0 or self.coloured + self.babble == 0:
            raise ValueError(
                f"a noise bank needs clips: coloured={self.coloured} babble={self.babble}"
            )
        lo, hi = check_range("babble talkers", self.talkers, 1, 32)
        object.__setattr__(self, "talkers", (int(lo), int(hi)))
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"noise test_fraction must lie in (0, 1), got {self.test_fraction}")

    @property
    def samples(self) -> int:
        return round(self.seconds * self.sample_rate)

    def key(self) -> str:
        text = json.dumps({**asdict(self), "format": 1}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class NoiseBank:
    """A loaded noise bank; clip ids index `clips` and `ids`."""

    config: NoiseBankConfig
    clips: np.ndarray  # (n, samples) float32, unit RMS
    ids: np.ndarray  # (n,) str
    is_test: np.ndarray  # (n,) bool

    @property
    def train_clips(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(~self.is_test)]

    @property
    def test_clips(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.is_test)]

    def index(self, clip_id: str) -> int:
        """Position of clip `clip_id` (e.g. `babble-003`); ValueError if the bank has none."""
        hits = np.flatnonzero(self.ids == clip_id)
        if len(hits) != 1:
            raise ValueError(f"noise clip {clip_id!r} is not in noise bank {self.config.key()}")
        return int(hits[0])


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return (x / max(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))), 1e-12)).astype(np.float32)


def coloured_noise(rng: np.random.Generator, samples: int, beta: float) -> np.ndarray:
    """Gaussian noise with power spectrum 1/f^beta (no DC), unit RMS, shape (samples,)."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = np.inf
    return _unit_rms(np.fft.irfft(spectrum * f ** (-beta / 2.0), n=samples))


def _pseudo_text(rng: np.random.Generator, words: int) -> str:
    out = []
    for _ in range(words):
        n = int(rng.integers(1, 4))
        out.append(
            "".join(rng.choice(_SYLLABLE_ONSETS) + rng.choice(_SYLLABLE_VOWELS) for _ in range(n))
        )
    return " ".join(out)


def espeak(text: str, voice: str, speed: int, pitch: int, sample_rate: int) -> np.ndarray:
    """Synthesize `text` with espeak-ng; returns mono float32 at `sample_rate` Hz."""
    if shutil.which("espeak-ng") is None:
        raise ValueError("espeak-ng is not installed (Debian package espeak-ng): babble needs it")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "talker.wav"
        cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not wav.is_file():
            raise ValueError(f"espeak-ng failed for voice {voice}: {done.stderr.strip()}")
        x, rate = soundfile.read(str(wav), dtype="float64")
    g = gcd(rate, sample_rate)
    return resample_poly(x, sample_rate // g, rate // g).astype(np.float32)


def babble(rng: np.random.Generator, config: NoiseBankConfig) -> np.ndarray:
    """A mix of `config.talkers` espeak-ng talkers speaking pseudo-words; unit RMS, (samples,)."""
    n = config.samples
    mix = np.zeros(n, np.float64)
    for _ in range(int(rng.integers(config.talkers[0], config.talkers[1] + 1))):
        voice = f"{rng.choice(BABBLE_LANGUAGES)}+{rng.choice(BABBLE_VARIANTS)}"
        speed, pitch = int(rng.integers(130, 200)), int(rng.integers(20, 80))
        words = int(config.seconds * speed / 60 * 1.3) + 2
        talker = espeak(_pseudo_text(rng, words), voice, speed, pitch, config.sample_rate)
        talker = np.roll(np.resize(talker, n), int(rng.integers(n)))  # tile, random phase
        mix += _unit_rms(talker) * 10 ** (rng.uniform(-6.0, 0.0) / 20)
    return _unit_rms(mix)


def _build(config: NoiseBankConfig) -> dict[str, np.ndarray]:
    betas = list(COLOURS)
    clips, ids, is_test = [], [], []
    jobs = [("coloured", i) for i in range(config.coloured)]
    jobs += [("babble", i) for i in range(config.babble)]
    for kind, i in tqdm(jobs, desc=f"noise bank {config.key()}"):
        rng = np.random.default_rng([config.seed, 0 if kind == "coloured" else 1, i])
        total = config.coloured if kind == "coloured" else config.babble
        if kind == "coloured":
            beta = betas[i % len(betas)]
            clips.append(coloured_noise(rng, config.samples, beta))
            ids.append(f"{COLOURS[beta]}-{i:03d}")
        else:
            clips.append(babble(rng, config))
            ids.append(f"babble-{i:03d}")
        is_test.append(i >= total - max(1, round(total * config.test_fraction)))
    return {"clips": np.stack(clips), "ids": np.array(ids), "is_test": np.array(is_test)}


def load_noise_bank(config: NoiseBankConfig, root: Path | None = None) -> NoiseBank:
    """Load the noise bank for `config`, building and caching it first if needed."""
    folder = (root or scenes_dir()) / f"noise-{config.key()}"
    path = folder / "noise.npz"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        arrays = _build(config)
        atomic_write(path, lambda f: np.savez(f, **arrays))
        info = json.dumps({**asdict(config), "key": config.key()}, indent=2, sort_keys=True)
        write_text(folder / "noise.json", info + "\n")
    with np.load(path) as data:
        return NoiseBank(config, data["clips"], data["ids"], data["is_test"])
