"""Post-LN transformer layers (PyTorch `TransformerEncoderLayer` semantics) on SDPA.

Parameter names follow `nn.TransformerEncoderLayer` (`self_attn.in_proj_weight`, `linear1`, ...), so
reference checkpoints map by prefix only. Attention runs through
`F.scaled_dot_product_attention`: with no padding mask PyTorch may pick flash kernels; with one it
picks the memory-efficient (or math) kernel.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from hear_wavjepa.model.config import TransformerConfig


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection. (B, S, D) -> (B, S, D)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        """`padding` (B, S) bool: True marks keys no query may attend to."""
        batch, seq, dim = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(batch, seq, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        mask = None if padding is None else ~padding[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(batch, seq, dim))


class PostLNLayer(nn.Module):
    """x <- LN1(x + MHA(x)); x <- LN2(x + W2 GELU(W1 x)). LayerNorm eps 1e-6, dropout 0."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.self_attn = SelfAttention(config.dim, config.heads)
        self.linear1 = nn.Linear(config.dim, config.mlp_dim)
        self.linear2 = nn.Linear(config.mlp_dim, config.dim)
        self.norm1 = nn.LayerNorm(config.dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(config.dim, eps=1e-6)

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        if torch.is_grad_enabled():
            x = self.norm1(x + self.self_attn(x, padding))
            return self.norm2(x + self.linear2(F.gelu(self.linear1(x))))
        # Without autograd: the same arithmetic into fewer fresh buffers (GELU and the residual
        # sums in place; docs/model.md, Embedding speed).
        x = self.norm1(_residual(self.self_attn(x, padding), x))
        hidden = torch.ops.aten.gelu_(self.linear1(x))
        return self.norm2(_residual(self.linear2(hidden), x))


def _residual(branch: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x + branch, into branch's buffer where that gives the same dtype (under autocast the
    branch may be bf16 while x is float32, and the sum must then be float32)."""
    if branch.dtype == torch.promote_types(branch.dtype, x.dtype):
        return branch.add_(x)
    return x + branch


class Transformer(nn.Module):
    """`depth` post-LN layers and a final LayerNorm (eps 1e-5)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(PostLNLayer(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim, eps=1e-5)
        init_weights(self)
        # The reference deep-copies one prototype layer, so every layer starts with the same
        # QKV projection (docs/faithfulness.md, Shared QKV initialisation).
        for layer in self.layers[1:]:
            layer.self_attn.in_proj_weight.data.copy_(self.layers[0].self_attn.in_proj_weight)

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S, D) -> (B, S, D), final LayerNorm applied."""
        for layer in self.layers:
            x = layer(x, padding)
        return self.norm(x)

    def layer_outputs(
        self, x: torch.Tensor, padding: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Every layer's output (B, S, D), without the final LayerNorm; index i = layer i + 1."""
        outputs = []
        for layer in self.layers:
            x = layer(x, padding)
            outputs.append(x)
        return outputs


def init_weights(module: nn.Module) -> None:
    """Reference init: Linear trunc-normal(0.02) with bias 0, LayerNorm (1, 0); QKV stays xavier."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
