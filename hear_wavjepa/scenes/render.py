"""Render a binaural scene: a mono source and 1-5 noise sources in a simulated room.

`draw_scene` makes every random choice for one clip (a `ScenePlan`, JSON-serialisable), and
`render_scene` is a pure function of the waveforms, responses and that plan, on any torch device, so
a manifest entry re-renders its clip exactly and pretraining can render on the fly.

Recipe (docs/nat-scenes.md, Scene recipe): the source is set to
`loudness_db` RMS and convolved with its 2-ear response (the tail past the clip is cut); each noise
source plays its own segment of its own noise clip (unit RMS, `gain_db`, linear fades) through its
own response; the summed noise is scaled to the drawn SNR measured jointly over both ears and the
whole clip, so interaural level differences survive; the mix is set to `loudness_db` RMS (jointly
over both ears), lowered further if its peak would exceed `peak`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from hear_wavjepa.scenes.noise import NoiseBank
from hear_wavjepa.scenes.rooms import RoomBank, check_range


@dataclass(frozen=True)
class SceneConfig:
    """Per-clip draw ranges: SNR (dB), noise sources per clip, per-source gain (dB); fade (s)."""

    snr: tuple[float, float] = (5.0, 40.0)
    noise_sources: tuple[int, int] = (1, 5)
    noise_gain_db: tuple[float, float] = (-6.0, 0.0)
    fade_seconds: float = 0.2
    loudness_db: float = -14.0
    peak: float = 0.99

    def __post_init__(self) -> None:
        object.__setattr__(self, "snr", check_range("SNR (dB)", self.snr, -30.0, 80.0))
        lo, hi = check_range("noise sources per clip", self.noise_sources, 1, 32)
        if lo != int(lo) or hi != int(hi):
            raise ValueError(f"noise sources per clip must be integers, got {self.noise_sources}")
        object.__setattr__(self, "noise_sources", (int(lo), int(hi)))
        gain = check_range("noise gain (dB)", self.noise_gain_db, -40.0, 0.0)
        object.__setattr__(self, "noise_gain_db", gain)
        if not 0 <= self.fade_seconds <= 5:
            raise ValueError(f"fade_seconds must lie in [0, 5], got {self.fade_seconds}")
        if not -60 <= self.loudness_db <= 0:
            raise ValueError(f"loudness_db must lie in [-60, 0] dBFS, got {self.loudness_db}")
        if not 0 < self.peak <= 1:
            raise ValueError(f"peak must lie in (0, 1], got {self.peak}")


@dataclass(frozen=True)
class NoisePlacement:
    """Noise source: samples [start, start+length) of clip `clip_id`, at `offset` in the output,
    played from room position `position` at `gain_db` relative to unit RMS."""

    clip_id: str
    position: int
    start: int
    offset: int
    length: int
    gain_db: float


@dataclass(frozen=True)
class ScenePlan:
    """Every random choice of one rendered clip (`length` samples at the render rate)."""

    seed: int
    length: int
    room: int
    source_position: int
    snr_db: float
    noises: tuple[NoisePlacement, ...]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, entry: dict) -> ScenePlan:
        try:
            noises = tuple(NoisePlacement(**n) for n in entry["noises"])
            fields = {k: entry[k] for k in ("seed", "length", "room", "source_position", "snr_db")}
        except (KeyError, TypeError) as err:
            raise ValueError(f"malformed scene plan {entry!r}: {err}") from err
        return cls(**fields, noises=noises)


def draw_scene(
    seed: int,
    length: int,
    rooms: list[int],
    positions: int,
    noise_clips: list[tuple[str, int]],
    config: SceneConfig,
) -> ScenePlan:
    """Draw a scene for a clip of `length` samples from `np.random.default_rng(seed)`.

    `rooms`: room ids to choose from; `positions`: source positions per room; `noise_clips`:
    (clip id, clip length) pairs to choose from (each clip at most once per scene).
    """
    if not rooms or not noise_clips:
        raise ValueError("draw_scene needs at least one room and one noise clip")
    rng = np.random.default_rng(seed)
    room = rooms[int(rng.integers(len(rooms)))]
    order = rng.permutation(positions)
    most = min(config.noise_sources[1], positions - 1, len(noise_clips))
    count = int(rng.integers(min(config.noise_sources[0], most), most + 1))
    chosen = rng.choice(len(noise_clips), size=count, replace=False)
    noises = []
    for position, pick in zip(order[1 : 1 + count], chosen, strict=True):
        clip_id, clip_length = noise_clips[int(pick)]
        if clip_length >= length:
            start, offset, span = int(rng.integers(clip_length - length + 1)), 0, length
        else:
            start, offset, span = 0, int(rng.integers(length - clip_length + 1)), clip_length
        gain = float(rng.uniform(*config.noise_gain_db))
        noises.append(NoisePlacement(clip_id, int(position), start, offset, span, gain))
    snr = float(rng.uniform(*config.snr))
    return ScenePlan(seed, length, room, int(order[0]), snr, tuple(noises))


def _fade(n: int, fade: int, like: torch.Tensor) -> torch.Tensor:
    """Linear fade-in and fade-out envelope of `n` samples (ramps of at most n // 2)."""
    ramp = min(fade, n // 2)
    env = torch.ones(n, dtype=like.dtype, device=like.device)
    if ramp > 0:
        up = torch.arange(1, ramp + 1, dtype=like.dtype, device=like.device) / (ramp + 1)
        env[:ramp] = up
        env[n - ramp :] = up.flip(0)
    return env


def convolve_sum(signals: torch.Tensor, rirs: torch.Tensor, length: int) -> torch.Tensor:
    """sum_j signals[j] * rirs[j] (linear convolution), first `length` samples: (N, L), (N, 2, T)
    -> (2, length). One power-of-two FFT size; the sum is taken in the frequency domain."""
    size = 1 << (signals.shape[-1] + rirs.shape[-1] - 2).bit_length()
    spectra = torch.fft.rfft(signals, n=size).unsqueeze(1) * torch.fft.rfft(rirs, n=size)
    return torch.fft.irfft(spectra.sum(0), n=size)[:, :length]


def _power(x: torch.Tensor) -> torch.Tensor:
    return x.double().pow(2).mean()


@dataclass(frozen=True)
class RenderedScene:
    """`mix` (2, L) as written; `source` and `noise` (2, L) are its parts (mix = source + noise)."""

    mix: torch.Tensor
    source: torch.Tensor
    noise: torch.Tensor
    gain: float


def render_scene(
    source: torch.Tensor,
    source_rir: torch.Tensor,
    noises: list[torch.Tensor],
    noise_rirs: torch.Tensor,
    plan: ScenePlan,
    config: SceneConfig,
    sample_rate: int,
) -> RenderedScene:
    """Render `plan`. `source` (L,) mono; `source_rir` (2, T); `noises[j]` (Lj,), the clip of
    `plan.noises[j]`; `noise_rirs` (K, 2, T), one response per noise source. Float tensors."""
    length = source.shape[-1]
    if source.dim() != 1 or length != plan.length:
        raise ValueError(f"source must be (L,) with L = {plan.length}, got {tuple(source.shape)}")
    if len(noises) != len(plan.noises) or noise_rirs.shape[0] != len(plan.noises):
        raise ValueError(
            f"plan has {len(plan.noises)} noise sources, got {len(noises)} clips and "
            f"{noise_rirs.shape[0]} responses"
        )
    target = 10 ** (config.loudness_db / 20)
    level = _power(source).sqrt()
    x = source * (target / level).to(source.dtype) if level > 1e-8 else source
    src = convolve_sum(x.unsqueeze(0), source_rir.unsqueeze(0), length)

    fade = round(config.fade_seconds * sample_rate)
    placed = torch.zeros(len(noises), length, dtype=src.dtype, device=src.device)
    for row, clip, place in zip(placed, noises, plan.noises, strict=True):
        segment = clip[place.start : place.start + place.length]
        if segment.shape[-1] != place.length or place.offset + place.length > length:
            raise ValueError(f"noise placement {place} does not fit clip and output")
        segment = segment / _power(segment).sqrt().clamp_min(1e-12).to(segment.dtype)
        segment = segment * _fade(place.length, fade, segment) * 10 ** (place.gain_db / 20)
        row[place.offset : place.offset + place.length] = segment
    noise = convolve_sum(placed, noise_rirs.to(src.dtype), length)

    p_src = _power(src)
    if p_src < 1e-16:  # silent clip: measure SNR against a nominal source at the target loudness
        p_src = target**2 * source_rir.double().pow(2).sum(-1).mean()
    p_noise = _power(noise)
    scale = (p_src / (p_noise * 10 ** (plan.snr_db / 10))).sqrt() if p_noise > 0 else p_noise
    noise = noise * scale.to(noise.dtype)
    mix = src + noise
    peak = mix.abs().max().double()
    gain = target / _power(mix).sqrt().clamp_min(1e-12)
    gain = float(torch.minimum(gain, config.peak / peak.clamp_min(1e-12)))
    return RenderedScene(mix * gain, src * gain, noise * gain, gain)


def render_with_banks(
    source: torch.Tensor, plan: ScenePlan, rooms: RoomBank, noise: NoiseBank, config: SceneConfig
) -> RenderedScene:
    """Render `plan` for the mono `source` (L,) with responses and clips looked up in the banks."""
    if rooms.config.sample_rate != noise.config.sample_rate:
        raise ValueError(
            f"room bank at {rooms.config.sample_rate} Hz, "
            f"noise bank at {noise.config.sample_rate} Hz"
        )
    if not 0 <= plan.room < len(rooms.rirs):
        raise ValueError(f"room {plan.room} is not in room bank {rooms.config.key()}")
    rirs = torch.from_numpy(rooms.rirs[plan.room])
    clips = [torch.from_numpy(noise.clips[noise.index(p.clip_id)]) for p in plan.noises]
    positions = [p.position for p in plan.noises]
    return render_scene(
        source.float(),
        rirs[plan.source_position],
        clips,
        rirs[positions],
        plan,
        config,
        rooms.config.sample_rate,
    )
