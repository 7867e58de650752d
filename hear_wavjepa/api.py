"""The HEAR API: `load_model`, `get_timestamp_embeddings`, `get_scene_embeddings`.

Windowing (`chunking="hop"`, the default): windows of 32,159 samples (200 frames) every 32,000
samples, so frame i of a clip always covers samples [160 i, 160 i + 240) and its timestamp is the
frame centre, 7.5 + 10 i ms: an exact 10 ms grid. A clip of L >= 240 samples gives
floor((L - 240) / 160) + 1 frames; shorter clips are zero-padded to 240 samples and give 1 frame.
Each window is standardised over its valid samples; frames past the clip are hidden as keys.
`chunking="reference"` reproduces the reference runtime (docs/hear-api.md, Reference chunking):
consecutive 32,159-sample chunks, start-aligned timestamps, 996 frames for 10 s.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hear_wavjepa.checkpoint import (
    FORMAT,
    encoder_tensors,
    load_encoder,
    load_strict,
    notice,
    read_checkpoint,
)
from hear_wavjepa.model.config import WavJEPAConfig, frames_for_samples
from hear_wavjepa.model.jepa import AudioEncoder
from hear_wavjepa.model.presets import preset

WEIGHTS_ENV = "HEAR_WAVJEPA_WEIGHTS"
DEFAULT_SEED = 20250927
CHANNEL_POLICIES = ("auto", "mean", "first", "duplicate", "native")
_warned_untrained = False


@dataclass(frozen=True)
class HearOptions:
    """Options of `load_model(**options)` (heareval passes `--model-options` JSON as these)."""

    preset: str | None = None
    #: how input channels become model channels: "auto" = native when the counts match, mono
    #: input duplicated for a Nat model, multi-channel input averaged for a mono model.
    channel_policy: str = "auto"
    #: "last" = context-encoder output after the final LayerNorm (the reference); or 1-based
    #: encoder layer indices (an int or a list) whose outputs are averaged.
    layers: Any = "last"
    chunking: str = "hop"
    #: windows per encoder forward, across all clips of a call (bounds memory).
    max_chunks: int = 32
    precision: str = "float32"

    def __post_init__(self) -> None:
        if self.channel_policy not in CHANNEL_POLICIES:
            raise ValueError(
                f"channel_policy must be one of {CHANNEL_POLICIES}, got {self.channel_policy!r}"
            )
        if self.chunking not in ("hop", "reference"):
            raise ValueError(f"chunking must be 'hop' or 'reference', got {self.chunking!r}")
        if not isinstance(self.max_chunks, int) or self.max_chunks < 1:
            raise ValueError(f"max_chunks must be a positive int, got {self.max_chunks!r}")
        if self.precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be 'float32' or 'bfloat16', got {self.precision!r}")

    def layer_indices(self, depth: int) -> list[int] | None:
        """None for "last", else the 1-based layer indices, validated against `depth`."""
        if self.layers == "last":
            return None
        single = isinstance(self.layers, int | str)
        layers = [self.layers] if single else list(self.layers)
        if not layers or any(
            not isinstance(i, int) or isinstance(i, bool) or not 1 <= i <= depth for i in layers
        ):
            raise ValueError(f"layers must be 'last' or ints in 1..{depth}, got {self.layers!r}")
        return layers


class HearWavJEPA(nn.Module):
    """The object `load_model` returns: an AudioEncoder plus the HEAR attributes and options."""

    def __init__(self, encoder: AudioEncoder, options: HearOptions, source: str) -> None:
        super().__init__()
        self.encoder = encoder.eval()
        self.options = options
        self.source = source
        self.config: WavJEPAConfig = encoder.config
        self.layers = options.layer_indices(self.config.encoder.depth)
        self.sample_rate = int(self.config.sample_rate)
        self.scene_embedding_size = int(self.config.encoder.dim)
        self.timestamp_embedding_size = int(self.config.encoder.dim)

    def encode_windows(self, windows: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        """windows (W, C_model, samples) -> (W, frames, D), ears averaged for Nat models."""
        if self.layers is None:
            tokens = self.encoder(windows, padding)
        else:
            states = self.encoder.hidden_states(windows, padding)
            tokens = torch.stack([states[i - 1] for i in self.layers]).mean(dim=0)
        channels = self.config.in_channels
        return tokens.view(tokens.shape[0], channels, -1, tokens.shape[-1]).mean(dim=1)


def load_model(model_file_path: str = "", **options: Any) -> HearWavJEPA:
    """A HEAR model. No path: `$HEAR_WAVJEPA_WEIGHTS` if set, else an UNTRAINED model of `preset`
    (default "base") initialised from a fixed seed, identical on every call."""
    known = {f.name for f in dataclasses.fields(HearOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown load_model options {unknown}; valid options: {sorted(known)}")
    opts = HearOptions(**options)
    path = str(model_file_path or os.environ.get(WEIGHTS_ENV, ""))
    if path:
        encoder = _load_weights(path)
        if opts.preset is not None and not _same_architecture(preset(opts.preset), encoder.config):
            raise ValueError(f"{path}: holds another architecture than preset {opts.preset!r}")
        return HearWavJEPA(encoder, opts, source=path)
    global _warned_untrained
    if not _warned_untrained:
        warnings.warn(
            f"hear_wavjepa: no weights given (model_file_path or ${WEIGHTS_ENV}); using an "
            f"UNTRAINED {opts.preset or 'base'} model initialised from seed {DEFAULT_SEED}",
            stacklevel=2,
        )
        _warned_untrained = True
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(DEFAULT_SEED)
        encoder = AudioEncoder(preset(opts.preset or "base"))
    return HearWavJEPA(encoder, opts, source=f"untrained:{opts.preset or 'base'}:{DEFAULT_SEED}")


def _is_own_checkpoint(path: str) -> bool:
    from hear_wavjepa.hub import safetensors_header

    header = safetensors_header(Path(path)) if Path(path).is_file() else None
    return header is not None and header.get("format") == FORMAT


def _load_weights(path: str) -> AudioEncoder:
    """The encoder of a hear-wavjepa checkpoint, or of a reference checkpoint (hub snapshot
    folder or weights file, Lightning or plain) imported in memory with a one-line notice."""
    if _is_own_checkpoint(path) or not Path(path).exists():
        return load_encoder(path)[0]
    from hear_wavjepa.reference import import_reference

    imported = import_reference(path)
    encoder = AudioEncoder(imported.config)
    load_strict(encoder, encoder_tensors(imported), path)
    notice(
        f"{path}: imported a reference checkpoint ({imported.weights.layout} layout) in memory; "
        "`hear-wavjepa convert` writes it as a sealed hear-wavjepa checkpoint"
    )
    return encoder.eval()


def _same_architecture(a: WavJEPAConfig, b: WavJEPAConfig) -> bool:
    keys = ("in_channels", "conv_layers", "crop_samples", "encoder", "sample_rate")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def checkpoint_config(path: str) -> WavJEPAConfig:
    """The architecture of a checkpoint (a reference checkpoint is imported to read it)."""
    if _is_own_checkpoint(path) or not Path(path).exists():
        return read_checkpoint(path).config
    from hear_wavjepa.reference import import_reference

    return import_reference(path).config


def get_timestamp_embeddings(
    audio: torch.Tensor, model: HearWavJEPA
) -> tuple[torch.Tensor, torch.Tensor]:
    """audio (n_sounds, n_samples) or (n_sounds, channels, n_samples), float in [-1, 1], 16 kHz.

    Returns embeddings (n_sounds, n_frames, D) float32 and timestamps (n_sounds, n_frames) in ms
    (frame centres), both on the input's device.
    """
    wave = _prepare(audio, model)
    if model.options.chunking == "reference":
        embeddings, timestamps = _reference_chunks(wave, model)
    else:
        embeddings, timestamps = _hop_windows(wave, model)
    timestamps = timestamps[None].expand(wave.shape[0], -1)
    return embeddings.to(audio.device), timestamps.to(audio.device)


def get_scene_embeddings(audio: torch.Tensor, model: HearWavJEPA) -> torch.Tensor:
    """(n_sounds, D) float32: the time mean of the timestamp embeddings."""
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)


def _prepare(audio: Any, model: HearWavJEPA) -> torch.Tensor:
    """Validate `audio` and map its channels to the model's: (B, C_model, L) float32."""
    expected = "(n_sounds, n_samples) or (n_sounds, channels, n_samples) float audio"
    if not isinstance(audio, torch.Tensor):
        raise ValueError(f"audio must be a torch.Tensor {expected}, got {type(audio).__name__}")
    if audio.ndim not in (2, 3):
        raise ValueError(f"audio must be {expected}, got shape {tuple(audio.shape)}")
    if not audio.is_floating_point():
        raise ValueError(f"audio must be floating point in [-1, 1], got dtype {audio.dtype}")
    if audio.shape[-1] == 0:
        raise ValueError(f"audio clips have 0 samples (shape {tuple(audio.shape)})")
    wave = audio if audio.ndim == 3 else audio[:, None]
    if wave.shape[1] == 0:
        raise ValueError(f"audio has 0 channels (shape {tuple(audio.shape)})")
    bad = (~torch.isfinite(wave)).flatten(1).any(dim=1)
    if bool(bad.any()):
        raise ValueError(f"audio contains NaN or Inf in clip(s) {bad.nonzero().flatten().tolist()}")
    wave = _limit_peak(wave).to(device=_device(model), dtype=torch.float32)
    return _apply_channel_policy(wave, model.config.in_channels, model.options.channel_policy)


#: clips louder than this are scaled down by a power of two before anything else, so casting to
#: float32 and averaging channels cannot overflow (standardisation makes the scale irrelevant).
PEAK_LIMIT_EXPONENT = 100


def _limit_peak(wave: torch.Tensor) -> torch.Tensor:
    """(B, C, L) -> the same, each clip whose max-abs reaches 2^100 scaled by a power of two."""
    if wave.numel() == 0:
        return wave
    peak = wave.abs().flatten(1).amax(dim=1).double()
    _, exponent = torch.frexp(peak)  # peak = m * 2^exponent, 0.5 <= m < 1
    excess = (exponent - PEAK_LIMIT_EXPONENT).clamp(min=0)
    if not bool(excess.any()):
        return wave
    scale = torch.ldexp(torch.ones_like(peak), -excess).to(wave.dtype)  # exact: 2^-k, k <= 924
    return wave * scale[:, None, None]


def _apply_channel_policy(wave: torch.Tensor, channels: int, policy: str) -> torch.Tensor:
    have = wave.shape[1]
    if policy == "auto":
        policy = "native" if have == channels else ("duplicate" if have == 1 else "mean")
    if policy == "native":
        if have != channels:
            raise ValueError(
                f"channel_policy 'native' needs {channels}-channel audio, got {have} channels"
            )
        return wave
    if policy == "duplicate" and have != 1:
        raise ValueError(f"channel_policy 'duplicate' needs mono audio, got {have} channels")
    mono = wave.mean(dim=1, keepdim=True) if policy == "mean" else wave[:, :1]
    return mono.expand(-1, channels, -1)


def _device(model: HearWavJEPA) -> torch.device:
    return next(model.encoder.parameters()).device


def _standardise(windows: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Zero-mean / unit-std (unbiased, + 1e-5) per window over channels x valid samples;
    samples past `valid` (W,) become 0. Each window is first scaled by a power of two so its
    max-abs lies in [0.5, 1), and the 1e-5 alike: the result is bit-identical to the plain formula
    wherever that does not overflow, and finite for every finite input."""
    length = windows.shape[-1]
    keep = (torch.arange(length, device=windows.device)[None] < valid[:, None])[:, None]
    count = (valid * windows.shape[1]).clamp(min=1).to(windows.dtype)[:, None, None]
    windows = windows * keep
    _, exponent = torch.frexp(windows.abs().amax(dim=(1, 2), keepdim=True))
    # 2^-exponent in two factors, each a normal float32 for every float32 exponent
    first, second = _power_of_two(-(exponent // 2)), _power_of_two(exponent // 2 - exponent)
    scaled = windows * first * second
    eps = torch.full_like(first, 1e-5) * first * second
    mean = scaled.sum(dim=(1, 2), keepdim=True) / count
    centred = (scaled - mean) * keep
    var = centred.pow(2).sum(dim=(1, 2), keepdim=True) / (count - 1).clamp(min=1)
    return centred / (var.sqrt() + eps)


def _power_of_two(k: torch.Tensor) -> torch.Tensor:
    """2^k as float32, built from its bits (exact); k (int32) must lie in [-126, 127]."""
    return ((k.to(torch.int32) + 127) << 23).view(torch.float32)


def _run(model: HearWavJEPA, windows: torch.Tensor, frames_valid: torch.Tensor) -> torch.Tensor:
    """Encode windows (W, C, samples) whose first `frames_valid` (W,) frames are real."""
    config = model.config
    frames = config.frames_per_crop
    padding = torch.arange(frames, device=windows.device)[None] >= frames_valid[:, None]
    padding = padding.repeat(1, config.in_channels) if bool(padding.any()) else None
    autocast = torch.autocast(
        windows.device.type, dtype=torch.bfloat16, enabled=model.options.precision == "bfloat16"
    )
    with torch.no_grad(), autocast:
        return model.encode_windows(windows, padding).float()


def _hop_windows(wave: torch.Tensor, model: HearWavJEPA) -> tuple[torch.Tensor, torch.Tensor]:
    config = model.config
    crop, frames_per = config.crop_samples, config.frames_per_crop
    hop = frames_per * config.hop_samples  # 32,000 samples = 200 frames
    batch, _, length = wave.shape
    n_frames = max(1, frames_for_samples(length, config.conv_layers))
    n_windows = -(-n_frames // frames_per)
    padded = torch.nn.functional.pad(wave, (0, (n_windows - 1) * hop + crop - length))
    windows = padded.unfold(-1, crop, hop)  # (B, C, W, crop) view, no copy
    out = torch.empty(batch, n_frames, config.encoder.dim, device=wave.device)
    whole = n_frames // frames_per  # windows k < whole have all their frames inside the clip
    grid = out[:, : whole * frames_per].view(batch, whole, frames_per, out.shape[-1])
    # Whole windows first: a forward pass whose windows are all whole needs no key-padding mask
    # (on CUDA SDPA can then use its flash kernel), so the clips' partial last windows go last.
    flat = sorted(
        ((b, k) for b in range(batch) for k in range(n_windows)), key=lambda i: i[1] >= whole
    )
    for start in range(0, len(flat), model.options.max_chunks):
        group = flat[start : start + model.options.max_chunks]
        clip = torch.tensor([b for b, _ in group], device=wave.device)
        index = torch.tensor([k for _, k in group], device=wave.device)
        valid = (length - index * hop).clamp(max=crop)
        keep = (n_frames - index * frames_per).clamp(max=frames_per)
        encoded = _run(model, _standardise(windows[clip, :, index], valid), keep)
        n_whole = sum(k < whole for _, k in group)  # the group's whole windows lead it
        grid[clip[:n_whole], index[:n_whole]] = encoded[:n_whole]
        for (b, k), emb in zip(group[n_whole:], encoded[n_whole:], strict=True):
            out[b, k * frames_per :] = emb[: n_frames - k * frames_per]
    sr = config.sample_rate
    if length < config.receptive_field:
        timestamps = torch.tensor([length / 2 / sr * 1000.0], dtype=torch.float64)
    else:
        centres = torch.arange(n_frames, dtype=torch.float64) * config.hop_samples
        timestamps = (centres + config.receptive_field / 2) / sr * 1000.0
    return out, timestamps.to(wave.device)


def _reference_chunks(wave: torch.Tensor, model: HearWavJEPA) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference runtime's chunking, kept for comparison (docs/faithfulness.md)."""
    config = model.config
    unit, frames_per, sr = config.crop_samples, config.frames_per_crop, config.sample_rate
    length = wave.shape[-1]
    pad = unit - length % unit  # always > 0: an exact multiple gets a whole extra chunk
    padded = torch.nn.functional.pad(wave, (0, pad))
    n_chunks = padded.shape[-1] // unit
    seconds_per_chunk = unit // sr  # integer division: 2, not 2.01 (the reference's arithmetic)
    mask_chunks = int(padded.shape[-1] / sr / seconds_per_chunk)
    if mask_chunks != n_chunks:
        raise ValueError(
            f"chunking='reference' is only defined while the reference's padding-mask arithmetic "
            f"holds (up to ~400 s); this clip has {length / sr:.1f} s; use chunking='hop'"
        )
    fps = int(frames_per / seconds_per_chunk)
    pad_steps = int(pad / sr * fps)
    total = frames_per * n_chunks
    cut_off = total - pad_steps
    valid_frames = torch.full((n_chunks,), frames_per)
    valid_frames[-1] = max(0, frames_per - pad_steps)
    outputs = []
    for k in range(n_chunks):
        if valid_frames[k] <= 0:  # an all-padding chunk lies wholly past cut_off
            continue
        chunk = padded[:, :, k * unit : (k + 1) * unit]
        # The reference standardises the whole chunk, zero padding included (docs/faithfulness.md).
        full = torch.full((chunk.shape[0],), unit, device=chunk.device)
        keep = valid_frames[k].expand(chunk.shape[0]).to(chunk.device)
        outputs.append(_run(model, _standardise(chunk, full), keep))
    embeddings = torch.cat(outputs, dim=1)[:, :cut_off]
    duration_ms = length / sr * 1000.0
    timestamps = torch.arange(cut_off, dtype=torch.float64) * (duration_ms / cut_off)
    return embeddings, timestamps.to(wave.device)
