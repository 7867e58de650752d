"""HEAR-Naive, re-done as a HEAR module: log-mel frames times a fixed random projection.

Like hearbaseline's naive model (the floor row of the HEAR tables): a log mel spectrogram (about
96 ms windows, 50 ms hop, 128 mel bands), projected to 4,096 dimensions by a matrix drawn from a
fixed seed; the scene embedding is the time mean. Runs at 16 kHz, the rate of the project's tasks.
Use it as `hear-validator hear_wavjepa.baselines.naive` or `--module hear_wavjepa.baselines.naive`.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from hear_wavjepa.audio import SAMPLE_RATE

N_FFT = 1536  # 96 ms
HOP = 800  # 50 ms
N_MELS = 128
EMBEDDING_SIZE = 4096
SEED = 0


class NaiveModel(nn.Module):
    """(n_sounds, samples) -> (n_sounds, frames, 4096) log-mel random projections."""

    def __init__(self) -> None:
        super().__init__()
        self.sample_rate = SAMPLE_RATE
        self.scene_embedding_size = EMBEDDING_SIZE
        self.timestamp_embedding_size = EMBEDDING_SIZE
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE,
            n_fft=N_FFT,
            hop_length=HOP,
            n_mels=N_MELS,
            center=True,
            pad_mode="constant",
        )
        generator = torch.Generator().manual_seed(SEED)
        projection = torch.randn(N_MELS, EMBEDDING_SIZE, generator=generator) / N_MELS**0.5
        self.register_buffer("projection", projection)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        logmel = torch.log(self.mel(audio) + 1e-5).transpose(1, 2)  # (B, frames, mels)
        return logmel @ self.projection


def load_model(model_file_path: str = "", **options) -> NaiveModel:
    """The naive model; it has no weights to load, so a path or options are an error."""
    if model_file_path or options:
        raise ValueError(
            f"HEAR-Naive takes no weights or options, got path={model_file_path!r}, "
            f"options={sorted(options)}"
        )
    return NaiveModel()


def _mono(audio: torch.Tensor) -> torch.Tensor:
    if not isinstance(audio, torch.Tensor) or audio.ndim not in (2, 3):
        raise ValueError("audio must be a torch.Tensor (n_sounds, n_samples) or (n, channels, n)")
    if not audio.is_floating_point():
        raise ValueError(f"audio must be floating point in [-1, 1], got dtype {audio.dtype}")
    if audio.shape[-1] == 0:
        raise ValueError(f"audio clips have 0 samples (shape {tuple(audio.shape)})")
    if not bool(torch.isfinite(audio).all()):
        raise ValueError("audio contains NaN or Inf")
    return (audio.mean(dim=1) if audio.ndim == 3 else audio).float()


def get_timestamp_embeddings(
    audio: torch.Tensor, model: NaiveModel
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings (n_sounds, frames, 4096) float32; timestamps (n_sounds, frames) ms, centred
    frames every 50 ms from 0 (frame i is centred on sample i * hop; edges zero-padded)."""
    wave = _mono(audio)
    device = model.projection.device
    with torch.no_grad():
        emb = model(wave.to(device))
    frames = emb.shape[1]
    duration_ms = 1000 * wave.shape[-1] / SAMPLE_RATE
    ts = (torch.arange(frames, dtype=torch.float64) * HOP * 1000 / SAMPLE_RATE).clamp(
        max=duration_ms
    )
    return emb.to(audio.device), ts[None].expand(wave.shape[0], -1).to(audio.device)


def get_scene_embeddings(audio: torch.Tensor, model: NaiveModel) -> torch.Tensor:
    """(n_sounds, 4096): the time mean of the timestamp embeddings."""
    return get_timestamp_embeddings(audio, model)[0].mean(dim=1)
