"""The JEPA predictor: context features + mask tokens -> target latents (docs/model.md)."""

from __future__ import annotations

import torch
from torch import nn

from hear_wavjepa.model.config import WavJEPAConfig
from hear_wavjepa.model.packing import pack
from hear_wavjepa.model.positions import positional_table
from hear_wavjepa.model.transformer import Transformer


class Predictor(nn.Module):
    """Linear enc->pred, mask tokens, positional table, post-LN transformer, Linear pred->enc."""

    def __init__(self, config: WavJEPAConfig) -> None:
        super().__init__()
        dim = config.predictor.dim
        self.input_proj = nn.Linear(config.encoder.dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.transformer = Transformer(config.predictor)
        self.output_proj = nn.Linear(dim, config.encoder.dim)
        nn.init.normal_(self.mask_token, std=0.02)
        table = positional_table(dim, config.frames_per_crop, config.in_channels)
        self.register_buffer("pos_embed", table[None], persistent=False)

    def forward(
        self, context: torch.Tensor, context_mask: torch.Tensor, keep: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predict latents for each target group.

        context: (N, S, D_enc) encoder outputs (only context positions are read);
        context_mask: (N, S) bool, True at context tokens;
        keep: (N, G, S) bool, context | targets of group g: the tokens replica g may attend to.
        Returns predictions (N*G, L, D_enc) over packed slots, their positions (N*G, L) and a
        (N*G, L) bool padding mask.
        """
        n, groups, seq = keep.shape
        x = self.input_proj(context)
        mask = self.mask_token.to(x.dtype).expand(n, seq, -1)
        x = torch.where(context_mask[..., None], x, mask) + self.pos_embed[:, :seq].to(x.dtype)
        x = x[:, None].expand(n, groups, seq, -1).reshape(n * groups, seq, -1)
        packed = pack(x, keep.reshape(n * groups, seq))
        out = self.transformer(packed.tokens, packed.padding)
        return self.output_proj(out), packed.index, packed.padding
