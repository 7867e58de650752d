"""WavJEPA: the audio encoder (HEAR inference model) and the JEPA training model around it."""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from hear_wavjepa.model.config import WavJEPAConfig
from hear_wavjepa.model.frontend import FrontEnd
from hear_wavjepa.model.masking import Masks
from hear_wavjepa.model.packing import pack
from hear_wavjepa.model.predictor import Predictor
from hear_wavjepa.model.transformer import Transformer, init_weights


class AudioEncoder(nn.Module):
    """Front end + context encoder. (B, C, samples) -> (B, C * frames, D), channel-major tokens."""

    def __init__(self, config: WavJEPAConfig) -> None:
        super().__init__()
        self.config = config
        self.frontend = FrontEnd(config)
        self.transformer = Transformer(config.encoder)
        init_weights(self.frontend)

    def forward(self, wave: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        """Context-encoder output after the final LayerNorm; `padding` (B, S) hides keys."""
        return self.transformer(self.frontend(wave), padding)

    def hidden_states(
        self, wave: torch.Tensor, padding: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """[layer 1, ..., layer depth, final LayerNorm of the last layer], each (B, S, D)."""
        outputs = self.transformer.layer_outputs(self.frontend(wave), padding)
        return [*outputs, self.transformer.norm(outputs[-1])]


class JEPAOutput(NamedTuple):
    loss: torch.Tensor  # scalar: squared error summed over targets / target count
    squared_error: torch.Tensor  # scalar: sum over (group, target token) of the feature-mean MSE
    target_count: torch.Tensor  # scalar: number of (group, target token) pairs
    target_std: torch.Tensor  # scalar: std of the targets across tokens, mean over features
    prediction_std: torch.Tensor  # scalar: same for the predictions at target tokens
    context_rank: torch.Tensor  # scalar: effective rank of the crops' mean context embeddings


def effective_rank(x: torch.Tensor) -> torch.Tensor:
    """Participation ratio (sum s^2)^2 / sum s^4 of the singular values of x (N, D) centred over
    N: 1 when the rows vary along one direction only (dimensional collapse), up to min(N-1, D)."""
    if len(x) < 2:
        return torch.tensor(1.0, device=x.device)
    if not torch.isfinite(x).all():  # a diverged step: the loss check reports it
        return torch.tensor(math.nan, device=x.device)
    power = torch.linalg.svdvals(x - x.mean(dim=0)).pow(2)
    return power.sum().pow(2) / power.pow(2).sum().clamp_min(1e-12)


class WavJEPA(nn.Module):
    """Student encoder, predictor and EMA teacher (docs/model.md).

    The teacher is a copy of the student's transformer only: it reads the student's detached
    front-end tokens (docs/faithfulness.md, Teacher input).
    """

    def __init__(self, config: WavJEPAConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = AudioEncoder(config)
        self.predictor = Predictor(config)
        init_weights(self.predictor.input_proj)
        init_weights(self.predictor.output_proj)
        self.teacher = copy.deepcopy(self.encoder.transformer)
        self.teacher.requires_grad_(False)

    def forward(self, audio: torch.Tensor, masks: Masks) -> JEPAOutput:
        """audio (N, C, crop_samples), standardised crops; masks over the N * S tokens."""
        expected = (self.config.in_channels, self.config.crop_samples)
        if audio.ndim != 3 or tuple(audio.shape[1:]) != expected:
            raise ValueError(
                f"expected audio (N, {expected[0]}, {expected[1]}), got {tuple(audio.shape)}"
            )
        n, seq = audio.shape[0], self.config.tokens_per_crop
        if masks.context.shape != (n, seq) or masks.targets.shape[::2] != (n, seq):
            raise ValueError(
                f"masks do not fit {n} crops of {seq} tokens: context "
                f"{tuple(masks.context.shape)}, targets {tuple(masks.targets.shape)}"
            )
        local = self.encoder.frontend(audio)

        # Student: only context tokens, packed (identical to the full sequence with key padding).
        ctx = pack(local, masks.context)
        encoded = self.encoder.transformer(ctx.tokens, ctx.padding)
        index = ctx.index[..., None].expand_as(encoded)
        # Under bf16 autocast the tokens are bf16 and the final LayerNorm's output is fp32.
        context = encoded.new_zeros(local.shape).scatter(1, index, encoded)

        keep = masks.context[:, None, :] | masks.targets
        prediction, slots, padding = self.predictor(context, masks.context, keep)

        with torch.no_grad():
            targets = self.targets(local.detach())
        groups = masks.targets.shape[1]
        is_target = masks.targets.reshape(n * groups, seq).gather(1, slots) & ~padding
        targets = targets[:, None].expand(n, groups, seq, -1).reshape(n * groups, seq, -1)
        targets = targets.gather(1, slots[..., None].expand(-1, -1, targets.shape[-1]))

        error = (prediction.float() - targets.float()).pow(2).mean(dim=-1)
        weight = is_target.to(error.dtype)
        squared_error = (error * weight).sum()
        count = weight.sum()
        with torch.no_grad():
            chosen_targets = targets[is_target].float()
            chosen_predictions = prediction[is_target].float()
            valid = (~ctx.padding)[..., None].float()
            crop_means = (encoded.float() * valid).sum(1) / valid.sum(1).clamp_min(1)
        return JEPAOutput(
            loss=squared_error / (count + 1e-8),
            squared_error=squared_error,
            target_count=count,
            target_std=chosen_targets.std(dim=0).mean(),
            prediction_std=chosen_predictions.std(dim=0).mean(),
            context_rank=effective_rank(crop_means),
        )

    @torch.no_grad()
    def targets(self, local: torch.Tensor) -> torch.Tensor:
        """Teacher targets (N, S, D): top-K layer outputs, each standardised per crop, averaged.
        `target_norm` "joint": over (tokens x features) (docs/model.md, Targets), and K = 1
        gives the raw output, as the reference; "per_feature": each feature over the tokens."""
        outputs = self.teacher.layer_outputs(local)[-self.config.top_k_targets :]
        stacked = torch.stack(outputs).float()
        if self.config.target_norm == "per_feature":
            mean = stacked.mean(dim=-2, keepdim=True)
            var = stacked.var(dim=-2, unbiased=False, keepdim=True)
            return ((stacked - mean) / torch.sqrt(var + 1e-5)).mean(dim=0)
        if len(outputs) == 1:
            return outputs[0]
        return F.layer_norm(stacked, stacked.shape[-2:], eps=1e-5).mean(dim=0)

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """teacher <- momentum * teacher + (1 - momentum) * student transformer."""
        student = dict(self.encoder.transformer.named_parameters())
        for name, param in self.teacher.named_parameters():
            param.lerp_(student[name].detach().to(param.dtype), 1.0 - momentum)
