"""Checkpoints: safetensors round trip, strict loading, corrupt files, the reference importer."""

from __future__ import annotations

import pytest
import torch
from reference_layout import ReferenceLikeJEPA

from hear_wavjepa import get_timestamp_embeddings, load_model
from hear_wavjepa.checkpoint import (
    CheckpointError,
    load_encoder,
    load_strict,
    read_checkpoint,
    save_checkpoint,
)
from hear_wavjepa.cli import main as cli
from hear_wavjepa.model import WavJEPA, preset
from hear_wavjepa.reference import convert_reference


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return WavJEPA(preset("tiny"))


def test_round_trip_is_bit_exact(tmp_path, tiny):
    path = save_checkpoint(
        tmp_path / "m.safetensors", tiny.state_dict(), tiny.config, step=42, extra={"note": "x"}
    )
    ckpt = read_checkpoint(path)
    assert ckpt.config == tiny.config and ckpt.kind == "wavjepa"
    assert ckpt.metadata["step"] == 42 and ckpt.metadata["extra"] == {"note": "x"}
    state = tiny.state_dict()
    assert set(ckpt.tensors) == set(state)
    for name, value in state.items():
        assert torch.equal(ckpt.tensors[name], value), name
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file


def test_hear_model_from_checkpoint_reads_the_architecture(tmp_path, tiny):
    path = save_checkpoint(tmp_path / "m.safetensors", tiny.state_dict(), tiny.config)
    model = load_model(str(path))
    assert model.timestamp_embedding_size == 192
    audio = torch.rand(2, 20_000) * 2 - 1
    emb, _ = get_timestamp_embeddings(audio, model)
    assert emb.shape == (2, 124, 192)  # (20,000 - 240) // 160 + 1 frames in one window
    wave = audio[:, None]
    wave = (wave - wave.mean(dim=(1, 2), keepdim=True)) / (
        wave.std(dim=(1, 2), keepdim=True) + 1e-5
    )
    window = torch.nn.functional.pad(wave, (0, 32_159 - 20_000))
    padding = torch.arange(200)[None].expand(2, -1) >= 124
    with torch.no_grad():
        expected = tiny.encoder.eval()(window, padding)[:, :124]
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="another architecture"):
        load_model(str(path), preset="base")


def test_truncated_and_foreign_files_are_refused(tmp_path, tiny):
    path = save_checkpoint(tmp_path / "m.safetensors", tiny.state_dict(), tiny.config)
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors.*truncated or corrupt"):
        read_checkpoint(tmp_path / "cut.safetensors")
    damaged = bytearray(data)
    damaged[-100] ^= 0xFF
    (tmp_path / "bad.safetensors").write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        read_checkpoint(tmp_path / "bad.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a hear-wavjepa checkpoint"):
        read_checkpoint(tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "missing.safetensors")


def test_wrong_architecture_lists_every_problem(tmp_path, tiny):
    state = tiny.state_dict()
    state.pop("encoder.frontend.feature_norm.bias")
    state["encoder.extra"] = torch.zeros(1)
    state["encoder.frontend.feature_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError) as info:
        load_strict(WavJEPA(preset("tiny")), state, "file.safetensors")
    message = str(info.value)
    assert "file.safetensors" in message
    assert "missing keys: encoder.frontend.feature_norm.bias" in message
    assert "unexpected keys: encoder.extra" in message
    assert "feature_proj.weight: checkpoint (3, 3)" in message
    nat = WavJEPA(preset("tiny-nat"))
    path = save_checkpoint(tmp_path / "nat.safetensors", nat.state_dict(), tiny.config)
    with pytest.raises(CheckpointError, match="unexpected keys: frontend.stacks.1"):
        load_encoder(path)


def test_cli_init_writes_a_loadable_checkpoint(tmp_path, capsys):
    out = tmp_path / "tiny.safetensors"
    assert cli(["init", "tiny", str(out), "--seed", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    _, ckpt = load_encoder(out)
    assert ckpt.config == preset("tiny") and ckpt.metadata["step"] == 0


@pytest.mark.parametrize("name", ["tiny", "tiny-nat"])
def test_reference_layout_imports_to_identical_outputs(tmp_path, name):
    torch.manual_seed(1)
    config = preset(name)
    reference = ReferenceLikeJEPA(config)
    state = reference.state_dict()
    # torch.compile'd extractors carry an `_orig_mod.` prefix (docs/model.md)
    state = {k.replace("extract_audio.", "extract_audio._orig_mod."): v for k, v in state.items()}
    torch.save({"state_dict": state, "global_step": 375_000}, tmp_path / "ref.ckpt")
    out = convert_reference(tmp_path / "ref.ckpt", tmp_path / "ours.safetensors")
    ckpt = read_checkpoint(out)
    assert ckpt.kind == "wavjepa" and ckpt.config.in_channels == config.in_channels
    assert ckpt.config.encoder == config.encoder and ckpt.config.predictor == config.predictor
    encoder, _ = load_encoder(out)
    wave = torch.randn(2, config.in_channels, 32_159)
    with torch.no_grad():
        torch.testing.assert_close(encoder(wave), reference.encode(wave), atol=1e-5, rtol=1e-5)
    model = WavJEPA(ckpt.config)
    model.load_state_dict(ckpt.tensors)
    for name_, value in reference.teacher_encoder.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[name_], value)
    assert torch.equal(model.predictor.mask_token, reference.mask_token)


class _Opaque:
    """A pickled object that weights_only loading must refuse."""


def test_pickled_objects_are_refused_unless_trusted(tmp_path):
    torch.manual_seed(0)
    state = ReferenceLikeJEPA(preset("tiny")).state_dict()
    torch.save({"state_dict": state, "hyper_parameters": _Opaque()}, tmp_path / "ref.ckpt")
    with pytest.raises(CheckpointError, match="weights_only=True.*trust_pickle=True"):
        convert_reference(tmp_path / "ref.ckpt", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
    convert_reference(tmp_path / "ref.ckpt", tmp_path / "out.safetensors", trust_pickle=True)
    assert read_checkpoint(tmp_path / "out.safetensors").kind == "wavjepa"


def test_broken_reference_files(tmp_path):
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt"):
        convert_reference(tmp_path / "junk.ckpt", tmp_path / "o.safetensors")
    torch.save({"state_dict": {"something.else": torch.zeros(1)}}, tmp_path / "odd.ckpt")
    with pytest.raises(CheckpointError, match="odd.ckpt"):
        convert_reference(tmp_path / "odd.ckpt", tmp_path / "o.safetensors")


def _header_end(data: bytes) -> int:
    return 8 + int.from_bytes(data[:8], "little")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (b'\\"sample_rate\\": 16000', b'\\"sample_rate\\": 44100', "config"),
        (b'"step":"42"', b'"step":"43"', "step"),
        (b'"created_by":"hear-wavjepa', b'"created_by":"hear-wavjepX', "created_by"),
        (b'\\"note\\": \\"x\\"', b'\\"note\\": \\"y\\"', "extra"),
    ],
)
def test_edited_header_fields_are_refused_by_name(tmp_path, tiny, old, new, field):
    """The sweep's reproduction: a header byte edit that keeps the file valid safetensors."""
    path = save_checkpoint(
        tmp_path / "m.safetensors", tiny.state_dict(), tiny.config, step=42, extra={"note": "x"}
    )
    data = path.read_bytes()
    end = _header_end(data)
    assert data[:end].count(old) == 1, data[:end]
    path.write_bytes(data[:end].replace(old, new) + data[end:])
    with pytest.raises(
        CheckpointError, match=rf"m\.safetensors: header field '{field}' was edited"
    ):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match=f"'{field}'"):
        load_model(str(path))


def _rewrite_header(path, change) -> None:
    """Rewrite `path` with its header passed through `change` (tensors kept)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        header = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(tensors, str(path), metadata=change(header))


def test_malformed_and_unsealed_headers(tmp_path, tiny, capsys):
    from hear_wavjepa.checkpoint import SEAL, seal_header

    path = save_checkpoint(tmp_path / "m.safetensors", tiny.state_dict(), tiny.config, step=1)
    _rewrite_header(path, lambda h: seal_header({**h, "format_version": "x"}))
    with pytest.raises(CheckpointError, match=r"m\.safetensors: header field 'format_version'"):
        read_checkpoint(path)
    _rewrite_header(path, lambda h: seal_header({**h, "format_version": "1", "step": "-3"}))
    with pytest.raises(CheckpointError, match="header field 'step' is malformed"):
        read_checkpoint(path)
    _rewrite_header(path, lambda h: {**h, "step": "1", "added": "1"})
    with pytest.raises(CheckpointError, match="header field 'added' was added"):
        read_checkpoint(path)
    # a file written before the seal: loads, with one line on stderr
    _rewrite_header(path, lambda h: {k: v for k, v in h.items() if k not in (SEAL, "added")})
    capsys.readouterr()
    ckpt = read_checkpoint(path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "written before checkpoint headers were sealed" in err[0]
    assert ckpt.metadata["sealed"] is False and ckpt.metadata["step"] == 1
    fresh = save_checkpoint(tmp_path / "n.safetensors", tiny.state_dict(), tiny.config)
    assert read_checkpoint(fresh).metadata["sealed"] is True
