"""HEAR-Naive with a pause in every embedding call, so that two processes overlap (tests).

`load_model(pause=SECONDS)`; each call also appends a line to `$SLOW_HEAR_LOG` when it is set, so
a test can count the embedding calls of all processes.
"""

from __future__ import annotations

import os
import time

import torch

from hear_wavjepa.baselines import naive


def load_model(model_file_path: str = "", pause: float = 1.0):
    model = naive.load_model()
    model.pause = float(pause)
    return model


def _called(model, audio: torch.Tensor) -> None:
    log = os.environ.get("SLOW_HEAR_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {tuple(audio.shape)}\n")
    time.sleep(model.pause)


def get_timestamp_embeddings(audio: torch.Tensor, model):
    _called(model, audio)
    return naive.get_timestamp_embeddings(audio, model)


def get_scene_embeddings(audio: torch.Tensor, model):
    _called(model, audio)
    return naive.get_scene_embeddings(audio, model)
