"""WavJEPA-Nat online scene rendering: a mono clip -> a binaural scene (docs/nat-scenes.md).

Each clip of an augmented batch gets its own scene drawn by `hear_wavjepa.scenes`: a room and a
source position from the pre-built binaural room bank, 1-5 noise sources playing clips of the noise
bank, and an SNR from U(lo, hi) dB. Only the banks' TRAIN rooms and TRAIN noise clips are used, so
the Nat-HEAR test scenes stay unseen. Scenes are rendered at 16 kHz (the banks' rate), not through
the reference's 32 kHz detour.
"""

from __future__ import annotations

import numpy as np
import torch

from hear_wavjepa.audio import SAMPLE_RATE
from hear_wavjepa.scenes.noise import NoiseBank, NoiseBankConfig, load_noise_bank
from hear_wavjepa.scenes.render import SceneConfig, draw_scene, render_with_banks
from hear_wavjepa.scenes.rooms import RoomBank, RoomBankConfig, load_room_bank
from hear_wavjepa.training.batches import SceneRenderer
from hear_wavjepa.training.recipe import Recipe


class BankRenderer:
    """`SceneRenderer` over a room bank and a noise bank: (samples,) -> (2, samples)."""

    def __init__(self, rooms: RoomBank, noise: NoiseBank, config: SceneConfig) -> None:
        for name, rate in (("room", rooms.config.sample_rate), ("noise", noise.config.sample_rate)):
            if rate != SAMPLE_RATE:
                raise ValueError(f"the {name} bank is at {rate} Hz; training renders at 16 kHz")
        self.rooms, self.noise, self.config = rooms, noise, config
        length = noise.clips.shape[-1]
        self.noise_clips = [(str(noise.ids[i]), length) for i in noise.train_clips]

    def __call__(self, source: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        plan = draw_scene(
            int(rng.integers(2**63 - 1)),
            source.shape[-1],
            self.rooms.train_rooms,
            self.rooms.config.positions,
            self.noise_clips,
            self.config,
        )
        return render_with_banks(source, plan, self.rooms, self.noise, self.config).mix.float()


def build_renderer(recipe: Recipe) -> SceneRenderer | None:
    """The renderer of `recipe.scenes` (building and caching the default banks once), or None."""
    if not recipe.scenes.enabled:
        return None
    rooms = load_room_bank(RoomBankConfig(sample_rate=SAMPLE_RATE))
    noise = load_noise_bank(NoiseBankConfig(sample_rate=SAMPLE_RATE))
    return BankRenderer(rooms, noise, SceneConfig(snr=tuple(recipe.scenes.snr_db)))
