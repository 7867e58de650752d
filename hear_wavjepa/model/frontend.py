"""Waveform front end: wav2vec2-style conv stacks, one per channel, plus the token projection."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from hear_wavjepa.model.config import WavJEPAConfig, frames_for_samples
from hear_wavjepa.model.positions import positional_table


class ConvStack(nn.Module):
    """Conv1d (no bias, no padding) -> [GroupNorm on layer 1] -> exact GELU, per layer.

    (batch, 1, samples) -> (batch, frames, channels_out).
    """

    def __init__(self, layers: tuple[tuple[int, int, int], ...]) -> None:
        super().__init__()
        convs, in_ch = [], 1
        for out_ch, kernel, stride in layers:
            conv = nn.Conv1d(in_ch, out_ch, kernel, stride=stride, bias=False)
            nn.init.kaiming_normal_(conv.weight)  # fan_in, gain sqrt(2), as the reference
            convs.append(conv)
            in_ch = out_ch
        self.convs = nn.ModuleList(convs)
        # GroupNorm with one group per channel = per-channel normalisation over time.
        self.norm = nn.GroupNorm(layers[0][0], layers[0][0], eps=1e-5, affine=True)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        grad = torch.is_grad_enabled()
        if not grad and wave.device.type == "cpu":
            return self._cpu_inference(wave)
        gelu = F.gelu if grad else torch.ops.aten.gelu_  # without autograd, in place
        x = wave
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i == 0:
                x = self.norm(x)
            x = gelu(x)
        return x.transpose(1, 2)

    def _cpu_inference(self, wave: torch.Tensor) -> torch.Tensor:
        """The same function without autograd on CPU, faster (docs/model.md, Embedding speed):
        GELU in place; features stay time-major ((B, T, C) in memory, a channels-last
        (B, C, 1, T) tensor for oneDNN) so no layer reorders its input, and the first layer
        (one input channel) is a matmul over strided sample windows."""
        first = self.convs[0]
        windows = wave[:, 0].unfold(-1, first.kernel_size[0], first.stride[0])  # (B, T, K) view
        x = torch.matmul(windows, first.weight[:, 0].t())  # (B, T, C)
        x = x.transpose(1, 2).unsqueeze(2)  # (B, C, 1, T), channels-last
        x = torch.ops.aten.gelu_(self.norm(x))
        for conv in self.convs[1:]:
            weight = conv.weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
            x = torch.ops.aten.gelu_(F.conv2d(x, weight, stride=(1, conv.stride[0])))
        return x.squeeze(2).transpose(1, 2)  # (B, T, C), contiguous


class FrontEnd(nn.Module):
    """(batch, channels, samples) -> tokens (batch, channels * frames, dim), channel-major.

    One independent conv stack per channel (WavJEPA-Nat shares no weights across ears), then a
    LayerNorm over conv features, Linear to the encoder width and the fixed positional table.
    """

    def __init__(self, config: WavJEPAConfig) -> None:
        super().__init__()
        self.config = config
        self.stacks = nn.ModuleList(
            ConvStack(config.conv_layers) for _ in range(config.in_channels)
        )
        conv_dim = config.conv_layers[-1][0]
        self.feature_norm = nn.LayerNorm(conv_dim, eps=1e-5)
        self.feature_proj = nn.Linear(conv_dim, config.encoder.dim)
        table = positional_table(config.encoder.dim, config.frames_per_crop, config.in_channels)
        self.register_buffer("pos_embed", table[None], persistent=False)

    def frames(self, samples: int) -> int:
        return frames_for_samples(samples, self.config.conv_layers)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim != 3 or wave.shape[1] != self.config.in_channels:
            raise ValueError(
                f"front end expects (batch, {self.config.in_channels}, samples), "
                f"got {tuple(wave.shape)}"
            )
        frames = self.frames(wave.shape[-1])
        if not 1 <= frames <= self.config.frames_per_crop:
            raise ValueError(
                f"{wave.shape[-1]} samples give {frames} frames; the front end takes "
                f"{self.config.receptive_field}..{self.config.crop_samples} samples"
            )
        feats = torch.cat(
            [stack(wave[:, c : c + 1]) for c, stack in enumerate(self.stacks)], dim=1
        )  # (B, C*T, conv_dim), channel-major
        tokens = self.feature_proj(self.feature_norm(feats))
        pos = self.pos_embed.view(self.config.in_channels, self.config.frames_per_crop, -1)
        pos = pos[:, :frames].reshape(1, -1, tokens.shape[-1])
        return tokens + pos.to(tokens.dtype)
