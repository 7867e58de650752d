"""The HEAR-Naive baseline module passes the same API contract as hear_wavjepa."""

from __future__ import annotations

import pytest
import torch
from hear_contract import check_model, check_scene_output, check_timestamp_output

from hear_wavjepa.baselines import naive


@pytest.fixture(scope="module")
def model():
    return naive.load_model()


def test_attributes(model):
    check_model(model)
    assert model.scene_embedding_size == model.timestamp_embedding_size == 4096


@pytest.mark.parametrize(
    ("samples", "batch"), [(1, 2), (799, 1), (17_120, 2), (31_680, 16), (64_000, 2), (160_000, 3)]
)
def test_timestamp_contract(model, samples, batch):
    audio = torch.rand(batch, samples) * 2 - 1
    emb, ts = naive.get_timestamp_embeddings(audio, model)
    check_timestamp_output(emb, ts, batch, samples, 4096, max_gap_ms=50)
    assert emb.shape[1] == 1 + samples // 800  # centred frames every 50 ms


def test_scene_contract_and_batching(model):
    audio = torch.rand(4, 43_840) * 2 - 1
    scene = naive.get_scene_embeddings(audio, model)
    check_scene_output(scene, 4, 4096)
    for i in range(4):
        torch.testing.assert_close(
            scene[i : i + 1], naive.get_scene_embeddings(audio[i : i + 1], model)
        )
    stereo = torch.stack([audio, audio], dim=1)
    torch.testing.assert_close(naive.get_scene_embeddings(stereo, model), scene)


def test_replicable(model):
    audio = torch.rand(2, 20_000) * 2 - 1
    other = naive.load_model()
    torch.testing.assert_close(
        naive.get_scene_embeddings(audio, model), naive.get_scene_embeddings(audio, other)
    )


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        ([[0.0] * 100], "torch.Tensor"),
        (torch.zeros(2, 100, dtype=torch.int32), "floating point"),
        (torch.zeros(2, 0), "0 samples"),
        (torch.full((1, 100), float("nan")), "NaN"),
    ],
)
def test_bad_input(model, audio, message):
    with pytest.raises(ValueError, match=message):
        naive.get_timestamp_embeddings(audio, model)


def test_takes_no_weights():
    with pytest.raises(ValueError, match="no weights"):
        naive.load_model("weights.pt")
