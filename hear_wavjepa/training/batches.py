"""Training batches as a pure function of (seed, step, clip slot): exact resume, any rank count.

Step `s` uses the global clip slots 0..clips_per_step-1. Slot `g` reads corpus clip
perm_e[(s * clips_per_step + g) mod len] (perm_e: a seeded shuffle of epoch e), draws its crop
starts, masks and scene from generators seeded with (seed, s, g), so a rank or micro-batch that
owns slots [start, stop) builds exactly the crops a single process would, and resuming at step `s`
needs no data state at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from hear_wavjepa.model.config import WavJEPAConfig
from hear_wavjepa.model.masking import Masks, TimeInverseMasker
from hear_wavjepa.training.decoded_corpus import Corpus

#: (source (samples,) float32 at 16 kHz, generator) -> binaural scene (2, samples).
SceneRenderer = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]

_SHUFFLE, _CLEAN, _CLIP = 0, 1, 2  # generator streams: (seed, stream, ...)
_CROPS, _MASKS, _SCENE = 0, 1, 2  # per clip slot: (seed, _CLIP, step, slot, kind)


class Batch(NamedTuple):
    audio: torch.Tensor  # (clips * crops_per_clip, C, crop_samples) float32, standardised crops
    masks: Masks  # over the same crops


def standardise(crops: torch.Tensor) -> torch.Tensor:
    """(N, C, L): per crop, subtract the mean and divide by (unbiased std + 1e-5), jointly over
    channels x time (docs/pretraining.md, Crops and batches)."""
    mean = crops.mean(dim=(1, 2), keepdim=True)
    std = crops.std(dim=(1, 2), keepdim=True)
    return (crops - mean) / (std + 1e-5)


def cut_crops(
    clip: torch.Tensor, count: int, length: int, rng: np.random.Generator
) -> torch.Tensor:
    """(C, samples) -> (count, C, length): crops at starts uniform over the clip (may overlap)."""
    starts = rng.integers(0, clip.shape[-1] - length + 1, count)
    return torch.stack([clip[:, s : s + length] for s in starts.tolist()])


def draw_masks(masker: TimeInverseMasker, count: int, rng: np.random.Generator) -> Masks:
    """Masks of `count` crops, drawn from `rng`'s state."""
    masker.set_state(rng.bit_generator.state)
    return masker(count)


class BatchMaker:
    """Builds the crops and masks of any slice of any step's global batch."""

    def __init__(
        self,
        corpus: Corpus,
        config: WavJEPAConfig,
        *,
        clips_per_step: int,
        crops_per_clip: int,
        seed: int,
        renderer: SceneRenderer | None = None,
        clean_data_ratio: float = 1.0,
    ) -> None:
        if corpus.clip_samples < config.crop_samples:
            raise ValueError(
                f"corpus clips of {corpus.clip_samples} samples are shorter than one crop "
                f"({config.crop_samples}); use longer data.clip_seconds"
            )
        channels = 1 if renderer is not None else config.in_channels
        if corpus.channels != channels:
            raise ValueError(
                f"corpus {corpus.folder} has {corpus.channels} channel(s); "
                f"the batches need {channels}"
            )
        self.corpus = corpus
        self.config = config
        self.clips_per_step = clips_per_step
        self.crops_per_clip = crops_per_clip
        self.seed = seed
        self.renderer = renderer
        self.clean_data_ratio = clean_data_ratio
        self.masker = TimeInverseMasker(config.masking, config.frames_per_crop, config.in_channels)
        self._epoch: tuple[int, np.ndarray] = (-1, np.empty(0, dtype=np.int64))  # cached shuffle

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    def clip_index(self, step: int, slot: int) -> int:
        """Corpus index of global clip `slot` of `step`: a fresh shuffle every epoch."""
        position = step * self.clips_per_step + slot
        epoch, offset = divmod(position, len(self.corpus))
        if self._epoch[0] != epoch:
            self._epoch = (epoch, self._rng(_SHUFFLE, epoch).permutation(len(self.corpus)))
        return int(self._epoch[1][offset])

    def is_clean(self, step: int) -> bool:
        """Whether `step`'s whole batch skips scene rendering (per batch, docs/nat-scenes.md)."""
        if self.renderer is None:
            return True
        return bool(self._rng(_CLEAN, step).random() < self.clean_data_ratio)

    def __call__(self, step: int, start: int, stop: int) -> Batch:
        """Crops and masks of global clip slots [start, stop) of `step`."""
        if not 0 <= start < stop <= self.clips_per_step:
            raise ValueError(f"clip slots [{start}, {stop}) outside 0..{self.clips_per_step}")
        clean = self.is_clean(step)
        length, crops = self.config.crop_samples, self.crops_per_clip
        audio, contexts, targets = [], [], []
        for slot in range(start, stop):
            clip = torch.from_numpy(self.corpus.clip(self.clip_index(step, slot)))
            if self.renderer is not None:
                if clean:
                    clip = clip[:1].expand(self.config.in_channels, -1)
                else:
                    clip = self.renderer(clip[0], self._rng(_CLIP, step, slot, _SCENE))
            audio.append(cut_crops(clip, crops, length, self._rng(_CLIP, step, slot, _CROPS)))
            masks = draw_masks(self.masker, crops, self._rng(_CLIP, step, slot, _MASKS))
            contexts.append(masks.context)
            targets.append(masks.targets)
        crops_audio = standardise(torch.cat(audio).float())
        return Batch(crops_audio, Masks(torch.cat(contexts), torch.cat(targets)))
