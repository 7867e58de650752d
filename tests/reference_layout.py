"""The reference's (labhamlet/wavjepa) module naming, rebuilt from stock torch.nn modules, and
the three files users hold it in: a hub snapshot, a Lightning checkpoint and a plain state dict."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from hear_wavjepa.model.positions import positional_table


def reference_conv_stack(config) -> nn.ModuleList:
    layers, in_ch = [], 1
    for i, (out_ch, kernel, stride) in enumerate(config.conv_layers):
        block = [nn.Conv1d(in_ch, out_ch, kernel, stride=stride, bias=False), nn.Dropout(0.0)]
        if i == 0:
            block.append(nn.GroupNorm(out_ch, out_ch, affine=True))
        block.append(nn.GELU())
        layers.append(nn.Sequential(*block))
        in_ch = out_ch
    return nn.ModuleList(layers)


def reference_transformer(cfg) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        cfg.dim,
        cfg.heads,
        cfg.mlp_dim,
        dropout=0.0,
        activation="gelu",
        layer_norm_eps=1e-6,
        batch_first=True,
        norm_first=False,
    )
    return nn.TransformerEncoder(
        layer, cfg.depth, norm=nn.LayerNorm(cfg.dim), enable_nested_tensor=False
    )


class ReferenceLikeJEPA(nn.Module):
    """The reference's module naming, built from stock torch.nn modules."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        extract = nn.Module()
        if config.in_channels == 1:
            extract.cnn = reference_conv_stack(config)
        else:
            extract.cnns = nn.ModuleList(reference_conv_stack(config) for _ in range(2))
        self.extract_audio = extract
        conv_dim = config.conv_layers[-1][0]
        self.feature_norms = nn.LayerNorm(conv_dim)
        self.post_extraction_mapper = nn.Linear(conv_dim, config.encoder.dim)
        self.encoder = reference_transformer(config.encoder)
        self.teacher_encoder = reference_transformer(config.encoder)
        self.decoder = reference_transformer(config.predictor)
        self.encoder_to_decoder_mapper = nn.Linear(config.encoder.dim, config.predictor.dim)
        self.decoder_to_encoder_mapper = nn.Linear(config.predictor.dim, config.encoder.dim)
        self.mask_token = nn.Parameter(torch.randn(1, 1, config.predictor.dim) * 0.02)
        frames, ch = config.frames_per_crop, config.in_channels
        self.pos_encoding_encoder = nn.Parameter(
            positional_table(config.encoder.dim, frames, ch)[None], requires_grad=False
        )
        self.pos_encoding_decoder = nn.Parameter(
            positional_table(config.predictor.dim, frames, ch)[None], requires_grad=False
        )

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, C, 32159) -> (B, C * 200, D): the reference's get_audio_representation."""
        stacks = (
            [self.extract_audio.cnn] if self.config.in_channels == 1 else self.extract_audio.cnns
        )
        feats = []
        for c, stack in enumerate(stacks):
            x = wave[:, c : c + 1]
            for block in stack:
                x = block(x)
            feats.append(x.transpose(1, 2))
        x = self.post_extraction_mapper(self.feature_norms(torch.cat(feats, dim=1)))
        return self.encoder.train()(x + self.pos_encoding_encoder)


def _layer_cfg(cfg) -> dict:
    """A transformer layer config as the reference keeps it (activation is an nn.GELU object)."""
    return {
        "d_model": cfg.dim,
        "nhead": cfg.heads,
        "batch_first": True,
        "norm_first": False,
        "bias": True,
        "dim_feedforward": cfg.mlp_dim,
        "dropout": 0.0,
        "activation": nn.GELU(),
        "layer_norm_eps": 1e-6,
    }


def write_hub_snapshot(reference: ReferenceLikeJEPA, folder: Path, config_json: bool = True):
    """A hub snapshot folder: model.safetensors with `model.`-prefixed keys and config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {f"model.{k}": v.detach().clone() for k, v in reference.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    if config_json:
        config = reference.config
        spec = " + ".join(f"[{tuple(layer)}]" for layer in config.conv_layers)
        data = {"extractor_config": {"conv_layers_spec": spec, "in_channels": config.in_channels}}
        for name, cfg in (("encoder", config.encoder), ("decoder", config.predictor)):
            layer = {k: v for k, v in _layer_cfg(cfg).items() if k != "activation"}
            data[f"{name}_layers_cfg"] = layer
            data[f"{name}_cfg"] = {"num_layers": cfg.depth, "enable_nested_tensor": False}
        (folder / "config.json").write_text(json.dumps(data, indent=2))
    return folder / "model.safetensors"


def write_lightning(reference: ReferenceLikeJEPA, path: Path, hparams: dict | None = None):
    """A Lightning checkpoint of the reference: compiled extractor keys (`_orig_mod.`) and
    hyper_parameters holding nn.GELU objects, as `save_hyperparameters` stores them."""
    config = reference.config
    state = {
        k.replace("extract_audio.", "extract_audio._orig_mod."): v
        for k, v in reference.state_dict().items()
    }
    default = {
        "transformer_encoder_layers_cfg": _layer_cfg(config.encoder),
        "transformer_encoder_cfg": {"num_layers": config.encoder.depth, "mask_check": True},
        "transformer_decoder_layers_cfg": _layer_cfg(config.predictor),
        "transformer_decoder_cfg": {"num_layers": config.predictor.depth, "mask_check": True},
        "adam_betas": (0.9, 0.98),
        "lr": 4e-4,
        "in_channels": config.in_channels,
        "size": "base",
    }
    blob = {
        "epoch": 3,
        "global_step": 1234,
        "pytorch-lightning_version": "2.5.0",
        "state_dict": state,
        "hyper_parameters": {**default, **(hparams or {})},
        "optimizer_states": [],
        "lr_schedulers": [],
        "callbacks": {},
        "loops": {},
    }
    torch.save(blob, path)
    return path
