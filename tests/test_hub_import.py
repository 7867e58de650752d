"""Reference weights as users hold them (hub snapshot, Lightning checkpoint, plain file) import
to bit-identical embeddings; every unusable file is refused in one line naming it."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest
import torch
from reference_layout import ReferenceLikeJEPA, write_hub_snapshot, write_lightning
from safetensors.torch import save_file

from hear_wavjepa import get_timestamp_embeddings, load_model
from hear_wavjepa.checkpoint import CheckpointError, read_checkpoint
from hear_wavjepa.cli.model import convert
from hear_wavjepa.model import preset
from hear_wavjepa.model.config import TransformerConfig
from hear_wavjepa.reference import convert_reference, import_reference

LAYOUTS = ["hub-folder", "hub-file", "lightning", "plain-pt", "plain-safetensors"]


def _reference(name: str, seed: int = 1, config=None) -> ReferenceLikeJEPA:
    torch.manual_seed(seed)
    return ReferenceLikeJEPA(config or preset(name))


def _write(layout: str, reference: ReferenceLikeJEPA, folder):
    """The file (or folder) of `layout` holding `reference`'s weights."""
    state = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    if layout == "hub-folder":
        write_hub_snapshot(reference, folder / "snapshot")
        return folder / "snapshot"
    if layout == "hub-file":
        return write_hub_snapshot(reference, folder / "snapshot")
    if layout == "lightning":
        return write_lightning(reference, folder / "epoch=3-step=1234.ckpt")
    if layout == "plain-pt":
        torch.save(state, folder / "weights.pt")
        return folder / "weights.pt"
    save_file(state, str(folder / "weights.safetensors"))
    return folder / "weights.safetensors"


def _convert_args(ckpt, out, nat_order: str) -> argparse.Namespace:
    """The arguments `hear-wavjepa convert CKPT OUT --nat-order NAT_ORDER` parses to."""
    return argparse.Namespace(
        ckpt=str(ckpt), out=str(out), preset=None, trust_pickle=False, nat_order=nat_order
    )


def _audio(channels: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    return torch.rand(2, channels, 40_000, generator=generator) * 2 - 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny", "tiny-nat"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_imports_to_bit_identical_embeddings(tmp_path, capsys, name, layout):
    reference = _reference(name)
    path = _write(layout, reference, tmp_path)
    own = convert_reference(_write("plain-pt", reference, tmp_path), tmp_path / "own.safetensors")
    audio = _audio(reference.config.in_channels)
    expected, _ = get_timestamp_embeddings(audio, load_model(str(own)))
    capsys.readouterr()
    model = load_model(str(path))  # imported in memory
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and "imported a reference checkpoint" in notice[0]
    assert str(path) in notice[0]
    got, _ = get_timestamp_embeddings(audio, model)
    assert torch.equal(got, expected)
    # and the weights are the reference's: its own forward agrees with ours
    wave = torch.randn(2, reference.config.in_channels, 32_159)
    with torch.no_grad():
        torch.testing.assert_close(
            model.encoder(wave), reference.encode(wave), atol=1e-5, rtol=1e-5
        )
    converted = read_checkpoint(convert_reference(path, tmp_path / "c.safetensors"))
    assert converted.metadata["sealed"] and converted.kind == "wavjepa"
    assert converted.metadata["extra"]["layout"] == layout.split("-")[0]
    assert converted.metadata["step"] == (1234 if layout == "lightning" else None)
    order = "interleaved" if name == "tiny-nat" else "aligned"
    assert converted.config.masking.nat_order == order


def test_nat_order_can_be_chosen_on_convert(tmp_path):
    folder = tmp_path / "snapshot"
    write_hub_snapshot(_reference("tiny-nat"), folder)
    assert convert(_convert_args(folder, tmp_path / "aligned.safetensors", "aligned")) == 0
    assert read_checkpoint(tmp_path / "aligned.safetensors").config.masking.nat_order == "aligned"


def _six_heads():
    """tiny with 6 encoder heads: the shapes alone would suggest 192 // 64 = 3."""
    return dataclasses.replace(
        preset("tiny"), encoder=TransformerConfig(dim=192, depth=4, heads=6, mlp_dim=768)
    )


@pytest.mark.parametrize("layout", ["hub-file", "lightning"])
def test_heads_come_from_config_json_and_hyper_parameters(tmp_path, layout):
    reference = _reference("tiny", config=_six_heads())
    imported = import_reference(_write(layout, reference, tmp_path))
    assert imported.config.encoder.heads == 6
    plain = import_reference(_write("plain-pt", reference, tmp_path))
    assert plain.config.encoder.heads == 3  # no description: the width decides


def test_config_json_that_contradicts_the_weights_is_refused(tmp_path):
    weights = write_hub_snapshot(_reference("tiny"), tmp_path / "snapshot")
    config_json = tmp_path / "snapshot" / "config.json"
    data = json.loads(config_json.read_text())
    data["encoder_cfg"]["num_layers"] = 12
    config_json.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"encoder depth is 4 in the weights but 12 in .*"):
        import_reference(weights)
    config_json.write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: not a readable WavJEPA config"):
        import_reference(weights)


def _one_line(info: pytest.ExceptionInfo, path) -> str:
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_foreign_class_in_hyper_parameters_is_refused_unless_trusted(tmp_path):
    path = write_lightning(
        _reference("tiny"), tmp_path / "ref.ckpt", {"loss_fn": torch.nn.MSELoss()}
    )
    with pytest.raises(CheckpointError) as info:
        load_model(str(path))
    message = _one_line(info, path)
    assert "torch.nn.modules.loss.MSELoss" in message and "--trust-pickle" in message
    args = _convert_args(path, tmp_path / "o.safetensors", "interleaved")
    with pytest.raises(CheckpointError):
        convert(args)
    assert not (tmp_path / "o.safetensors").exists()
    convert(argparse.Namespace(**{**vars(args), "trust_pickle": True}))
    assert read_checkpoint(tmp_path / "o.safetensors").kind == "wavjepa"


@pytest.mark.parametrize("layout", ["hub-file", "lightning", "plain-pt"])
def test_truncated_files_are_refused_in_one_line(tmp_path, layout):
    path = _write(layout, _reference("tiny"), tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        load_model(str(path))
    _one_line(info, path)


def test_safetensors_of_another_model_is_refused_naming_its_keys(tmp_path):
    other = {
        "model.embeddings.word_embeddings.weight": torch.zeros(10, 4),
        "model.pooler.dense.weight": torch.zeros(4, 4),
    }
    save_file(other, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a WavJEPA checkpoint") as info:
        load_model(str(tmp_path / "model.safetensors"))
    assert "embeddings.word_embeddings.weight" in _one_line(info, tmp_path / "model.safetensors")


def test_unknown_and_missing_keys_are_listed_by_name(tmp_path):
    reference = _reference("tiny")
    state = {f"model.{k}": v.detach().clone() for k, v in reference.state_dict().items()}
    state["model.encoder.extra_scale"] = torch.ones(1)
    save_file(state, str(tmp_path / "extra.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected keys: encoder.transformer.extra_scale"):
        import_reference(tmp_path / "extra.safetensors")
    state.pop("model.encoder.extra_scale")
    state["model.something_else"] = torch.ones(1)
    state.pop("model.feature_norms.bias")
    save_file(state, str(tmp_path / "odd.safetensors"))
    with pytest.raises(CheckpointError, match=r"not in the reference layout: something_else"):
        import_reference(tmp_path / "odd.safetensors")
    state.pop("model.something_else")
    save_file(state, str(tmp_path / "short.safetensors"))
    with pytest.raises(CheckpointError, match="missing keys: encoder.frontend.feature_norm.bias"):
        import_reference(tmp_path / "short.safetensors")


def test_a_folder_without_weights_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="a folder without model.safetensors"):
        load_model(str(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["hub-folder", "hub-file", "lightning"])
def test_eval_takes_reference_weights_as_models(tmp_path, monkeypatch, layout):
    """`eval --models NAME=<hub folder | model.safetensors | .ckpt>` checks, keys and embeds
    them through hear_wavjepa, like this project's own checkpoints."""
    import hashlib

    from conftest import write_noise_task as write_task

    from hear_wavjepa.cli.embed import check_spec
    from hear_wavjepa.evaluation.embed import embed_task
    from hear_wavjepa.evaluation.models import parse_model
    from hear_wavjepa.hub import snapshot_weights

    monkeypatch.setenv("HEAR_WAVJEPA_HOME", str(tmp_path / "home"))
    path = _write(layout, _reference("tiny"), tmp_path)
    entry = parse_model(f"ref={path}")
    check_spec(entry.spec)
    weights = snapshot_weights(path) if path.is_dir() else path
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (entry.name, entry.spec.module) == ("ref", "hear_wavjepa")
    assert entry.spec.describe()["weights_sha256"] == digest
    task = write_task(tmp_path / "toy-v0-full")
    embedded = embed_task(entry.spec, task, progress=False)
    assert embedded.clips == 6
