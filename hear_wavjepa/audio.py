"""Audio at the project's one sample rate: down-mix, resample, PCM-16 and atomic FLAC writes.

Each call site keeps the resampler settings and quantisation it was written with (`RESAMPLERS`,
`to_pcm16` / `to_pcm16_channels_last`), so built suites, caches and corpora keep their bytes.

`SAMPLE_RATE` (16 kHz) is the rate of the model, of the HEAR API, of the built suites and of the
pretraining corpora; every module takes it from here.
"""

from __future__ import annotations

import os

import numpy as np
import soundfile
import torch
import torchaudio.functional as AF

from hear_wavjepa.atomicio import atomic_write

SAMPLE_RATE = 16_000


#: torchaudio's resampler settings by name: its defaults, and the Kaiser window of
#: librosa's "kaiser_best" (used where pretraining decodes arbitrary audio)
RESAMPLERS: dict[str, dict] = {
    "default": {},
    "kaiser_best": {
        "lowpass_filter_width": 64,
        "rolloff": 0.9475937,
        "resampling_method": "sinc_interp_kaiser",
        "beta": 14.769656,
    },
}


def resample(
    x: torch.Tensor, rate: int, target: int = SAMPLE_RATE, quality: str = "default"
) -> torch.Tensor:
    """`x` (..., samples) at `rate` Hz resampled to `target` Hz with the `quality` settings."""
    return AF.resample(x, rate, target, **RESAMPLERS[quality])


def to_mono_16k(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """(samples,) or (samples, channels) at `sample_rate` Hz -> float32 (samples',) at 16 kHz."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sample_rate != SAMPLE_RATE:
        x = resample(torch.from_numpy(np.ascontiguousarray(x)), sample_rate).numpy()
    return x.astype(np.float32)


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16 (rounded, clipped), so that writes are bit-exact."""
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def to_pcm16_channels_last(mix: torch.Tensor) -> np.ndarray:
    """(C, L) float in [-1, 1] -> (L, C) int16, rounded in float64 and clipped after scaling
    (the Nat renderer's quantisation; `to_pcm16` clips before scaling, in the input's dtype)."""
    return np.round(mix.double().numpy().T * 32767).clip(-32768, 32767).astype(np.int16)


def write_flac(path: str | os.PathLike, pcm16: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """PCM-16 samples as a FLAC file, written atomically (temp file, then rename)."""
    atomic_write(path, lambda f: soundfile.write(f, pcm16, rate, subtype="PCM_16", format="FLAC"))
