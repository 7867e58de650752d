"""A HEAR module that breaks the contract on purpose (HEAR-Naive with one defect), for tests.

`load_model(defect=...)`: "size" (wrong embedding width), "dtype" (float64), "nan" (NaN output),
"timestamps" (one timestamp too few); "" behaves like HEAR-Naive.
"""

from __future__ import annotations

import torch

from hear_wavjepa.baselines import naive


def load_model(model_file_path: str = "", defect: str = ""):
    model = naive.load_model()
    model.defect = defect
    return model


def get_timestamp_embeddings(audio: torch.Tensor, model):
    emb, ts = naive.get_timestamp_embeddings(audio, model)
    if model.defect == "timestamps":
        ts = ts[:, :-1]
    return _damage(emb, model.defect), ts


def get_scene_embeddings(audio: torch.Tensor, model):
    return _damage(naive.get_scene_embeddings(audio, model), model.defect)


def _damage(emb: torch.Tensor, defect: str) -> torch.Tensor:
    if defect == "size":
        return emb[..., :-1]
    if defect == "dtype":
        return emb.double()
    if defect == "nan":
        return emb * float("nan")
    return emb
