"""Audio at the project's one sample rate: down-mix, resample, PCM-16 and atomic FLAC writes.

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


def to_mono_16k(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """(samples,) or (samples, channels) at `sample_rate` Hz -> float32 (samples',) at 16 kHz."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sample_rate != SAMPLE_RATE:
        x = AF.resample(torch.from_numpy(np.ascontiguousarray(x)), sample_rate, SAMPLE_RATE).numpy()
    return x.astype(np.float32)


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16 (rounded, clipped), so that writes are bit-exact."""
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def write_flac(path: str | os.PathLike, pcm16: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """PCM-16 samples as a FLAC file, written atomically (temp file, then rename)."""
    atomic_write(path, lambda f: soundfile.write(f, pcm16, rate, subtype="PCM_16", format="FLAC"))
