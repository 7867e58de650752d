"""Deterministic signal helpers for the mini-suite builders. Audio is float32 mono at 16 kHz
(read, resampled and quantised by `hear_wavjepa.audio`)."""

from __future__ import annotations

import numpy as np

from hear_wavjepa.audio import SAMPLE_RATE, to_mono_16k, to_pcm16

__all__ = ["SAMPLE_RATE", "to_mono_16k", "to_pcm16"]


def fit(x: np.ndarray, n: int, offset: int = 0) -> np.ndarray:
    """Crop `x` from `offset`, then zero-pad or trim to exactly `n` samples."""
    out = np.zeros(n, dtype=np.float32)
    part = x[offset : offset + n]
    out[: len(part)] = part
    return out


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def normalize(x: np.ndarray, dbfs: float = -20.0, peak: float = 0.95) -> np.ndarray:
    """Scale to `dbfs` RMS, then down so that |x| <= `peak`. A silent input stays silent."""
    if rms(x) < 1e-6:
        return x.astype(np.float32)
    y = x * (10 ** (dbfs / 20) / rms(x))
    top = float(np.abs(y).max())
    if top > peak:
        y = y * (peak / top)
    return y.astype(np.float32)


def trim_silence(x: np.ndarray, threshold_db: float = -40.0) -> np.ndarray:
    """Drop leading and trailing samples quieter than `threshold_db` relative to the peak."""
    bounds = active_bounds(x, threshold_db)
    return x if bounds is None else x[bounds[0] : bounds[1]]


def active_bounds(x: np.ndarray, threshold_db: float = -40.0) -> tuple[int, int] | None:
    """[start, end) samples of the part above `threshold_db` relative to the peak (10-ms frames)."""
    hop = SAMPLE_RATE // 100
    n = len(x) // hop
    if n == 0:
        return None
    frames = np.sqrt(np.mean(np.square(x[: n * hop].reshape(n, hop)), axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(frames / frames.max()) > threshold_db)
    if frames.max() < 1e-5 or loud.size == 0:
        return None
    return int(loud[0] * hop), int(min(len(x), (loud[-1] + 1) * hop))


def colored_noise(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    """1/f^beta noise of unit RMS: beta 0 white, 1 pink, 2 brown."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    y = np.fft.irfft(spectrum / freqs ** (beta / 2), n)
    return (y / rms(y)).astype(np.float32)
