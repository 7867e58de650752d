"""The HEAR API contract (hear-validator's checks and the gaps it leaves), on the tiny presets."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hear_contract import SR, check_model, check_scene_output, check_timestamp_output

import hear_wavjepa
from hear_wavjepa import get_scene_embeddings, get_timestamp_embeddings, load_model


@pytest.fixture(scope="module")
def mono():
    return load_model(preset="tiny")


@pytest.fixture(scope="module")
def nat():
    return load_model(preset="tiny-nat")


def _audio(batch: int, samples: int, channels: int | None = None, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, samples) if channels is None else (batch, channels, samples)
    return torch.rand(shape, generator=generator) * 2 - 1


def test_model_attributes(mono, nat):
    for model in (mono, nat):
        check_model(model)
        assert model.scene_embedding_size == model.timestamp_embedding_size == 192


def _check_timestamps(emb: torch.Tensor, ts: torch.Tensor, samples: int, size: int) -> None:
    """The contract, plus the exact 10 ms grid of centred frames (7.5 + 10 i ms)."""
    # the last full frame's centre lies at most hop + RF/2 = 17.5 ms before the end
    check_timestamp_output(emb, ts, emb.shape[0], samples, size, max_gap_ms=17.5)
    if ts.shape[1] > 1:
        t = ts.numpy()
        assert np.allclose(np.diff(t, axis=1), 10.0)
        assert np.allclose(t[0], 7.5 + 10 * np.arange(t.shape[1]))


LENGTHS = [1, 100, 239, 240, 1000, 17_120, 31_680, 32_159, 32_160, 43_840, 64_000, 160_000]


@pytest.mark.parametrize(
    ("samples", "batch"), list(zip(LENGTHS, [1, 16, 2, 3, 5, 2, 2, 4, 1, 4, 2, 2], strict=True))
)
def test_timestamp_embeddings_contract_mono(mono, samples, batch):
    emb, ts = get_timestamp_embeddings(_audio(batch, samples), mono)
    assert emb.shape[0] == batch
    assert emb.shape[1] == max(1, (samples - 240) // 160 + 1)
    _check_timestamps(emb, ts, samples, mono.timestamp_embedding_size)


@pytest.mark.parametrize(("samples", "batch"), [(1, 3), (17_120, 2), (64_000, 1), (160_000, 2)])
def test_timestamp_embeddings_contract_nat(nat, samples, batch):
    for audio in (_audio(batch, samples), _audio(batch, samples, channels=2)):
        emb, ts = get_timestamp_embeddings(audio, nat)
        assert emb.shape[0] == batch
        _check_timestamps(emb, ts, samples, nat.timestamp_embedding_size)


@pytest.mark.parametrize("batch", [1, 4, pytest.param(16, marks=pytest.mark.slow)])
def test_scene_embeddings_contract(mono, nat, batch):
    for model in (mono, nat):
        audio = _audio(batch, 43_840)
        scene = get_scene_embeddings(audio, model)
        check_scene_output(scene, batch, model.scene_embedding_size)
        emb, _ = get_timestamp_embeddings(audio, model)
        torch.testing.assert_close(scene, emb.mean(dim=1))


@pytest.mark.parametrize("samples", [3_000, 64_000, pytest.param(100_001, marks=pytest.mark.slow)])
def test_batched_equals_per_clip(mono, nat, samples):
    for model in (mono, nat):
        audio = _audio(5, samples, seed=samples)
        batched, _ = get_timestamp_embeddings(audio, model)
        for i in range(5):
            single, _ = get_timestamp_embeddings(audio[i : i + 1], model)
            torch.testing.assert_close(batched[i : i + 1], single, atol=1e-5, rtol=1e-5)


def test_window_grouping_does_not_change_results():
    audio = _audio(3, 100_000, seed=1)
    small = load_model(preset="tiny", max_chunks=1)
    large = load_model(preset="tiny", max_chunks=64)
    torch.testing.assert_close(
        get_timestamp_embeddings(audio, small)[0],
        get_timestamp_embeddings(audio, large)[0],
        atol=1e-5,
        rtol=1e-5,
    )


def test_reference_chunking_reproduces_the_reference_frame_counts():
    model = load_model(preset="tiny", chunking="reference")
    for samples, frames in ((160_000, 996), (16_000, 100), (2 * 32_159, 400)):
        emb, ts = get_timestamp_embeddings(_audio(1, samples), model)
        assert emb.shape[1] == frames
        assert torch.isfinite(emb).all()
        assert ts[0, 0] == 0.0  # start-aligned, evenly spread
        assert ts[0, 1] == pytest.approx(1000 * samples / SR / frames)


def test_default_model_is_identical_every_call_and_warns_untrained(monkeypatch):
    monkeypatch.delenv("HEAR_WAVJEPA_WEIGHTS", raising=False)
    monkeypatch.setattr(hear_wavjepa.api, "_warned_untrained", False)
    with pytest.warns(UserWarning, match="UNTRAINED"):
        a = load_model(preset="tiny")
    b = load_model(preset="tiny")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_channel_policies(mono, nat):
    stereo = _audio(2, 20_000, channels=2)
    mixed, _ = get_timestamp_embeddings(stereo, mono)  # mono model averages by default
    averaged, _ = get_timestamp_embeddings(stereo.mean(dim=1), mono)
    torch.testing.assert_close(mixed, averaged, atol=1e-5, rtol=1e-5)
    first = load_model(preset="tiny", channel_policy="first")
    torch.testing.assert_close(
        get_timestamp_embeddings(stereo, first)[0],
        get_timestamp_embeddings(stereo[:, 0], first)[0],
    )
    mono_in = _audio(2, 20_000)
    duplicated, _ = get_timestamp_embeddings(mono_in, nat)  # Nat model duplicates mono
    explicit, _ = get_timestamp_embeddings(mono_in[:, None].expand(-1, 2, -1), nat)
    torch.testing.assert_close(duplicated, explicit)
    native = load_model(preset="tiny-nat", channel_policy="native")
    with pytest.raises(ValueError, match="native.*2-channel"):
        get_timestamp_embeddings(mono_in, native)
    with pytest.raises(ValueError, match="duplicate.*mono"):
        get_timestamp_embeddings(stereo, load_model(preset="tiny", channel_policy="duplicate"))


def test_layer_option_reads_intermediate_layers():
    audio = _audio(1, 40_000)
    last = get_scene_embeddings(audio, load_model(preset="tiny"))
    first = get_scene_embeddings(audio, load_model(preset="tiny", layers=1))
    both = get_scene_embeddings(audio, load_model(preset="tiny", layers=[1, 4]))
    assert not torch.allclose(last, first)
    assert both.shape == last.shape
    with pytest.raises(ValueError, match="layers"):
        load_model(preset="tiny", layers=9)


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros((1, 16_000), dtype=np.float32), "torch.Tensor"),
        (torch.zeros(16_000), "shape"),
        (torch.zeros(1, 1, 1, 16_000), "shape"),
        (torch.zeros(2, 16_000, dtype=torch.int16), "floating point"),
        (torch.zeros(2, 0), "0 samples"),
        (torch.zeros(2, 0, 16_000), "0 channels"),
        (
            torch.tensor([[0.0] * 500, [0.0] * 499 + [float("nan")]]),
            r"NaN or Inf in clip\(s\) \[1\]",
        ),
        (torch.tensor([[float("inf")] * 500]), "NaN or Inf"),
    ],
)
def test_bad_audio_raises_clear_errors(mono, audio, message):
    with pytest.raises(ValueError, match=message):
        get_timestamp_embeddings(audio, mono)


def test_empty_batch_and_silence_have_documented_results(mono):
    emb, ts = get_timestamp_embeddings(torch.zeros(0, 16_000), mono)
    assert emb.shape == (0, 99, 192) and ts.shape == (0, 99)
    silent, _ = get_timestamp_embeddings(torch.zeros(2, 16_000), mono)
    assert torch.isfinite(silent).all()
    assert get_scene_embeddings(torch.zeros(0, 16_000), mono).shape == (0, 192)


def test_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown load_model options"):
        load_model(preset="tiny", hop=10)
    with pytest.raises(ValueError, match="channel_policy"):
        load_model(preset="tiny", channel_policy="left")
    with pytest.raises(ValueError, match="unknown preset"):
        load_model(preset="gigantic")
    for layers in (True, [1, True], "first", []):  # a bool is not a layer index
        with pytest.raises(ValueError, match="layers must be"):
            load_model(preset="tiny", layers=layers)


def test_float64_input_gives_float32_output(mono):
    emb, _ = get_timestamp_embeddings(_audio(1, 5_000).double(), mono)
    assert emb.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_cuda_agree(mono):
    audio = _audio(2, 64_000)
    cpu, _ = get_timestamp_embeddings(audio, mono)
    gpu_model = load_model(preset="tiny").to("cuda")
    gpu, ts = get_timestamp_embeddings(audio.cuda(), gpu_model)
    assert gpu.device.type == "cuda" and ts.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=1e-3)


@pytest.mark.slow
def test_twenty_minute_clip_embeds_in_bounded_memory():
    """Peak RSS growth while embedding 20 min with the tiny preset, in a fresh process."""
    script = textwrap.dedent(
        """
        import resource, torch, warnings
        warnings.simplefilter("ignore")
        from hear_wavjepa import load_model, get_timestamp_embeddings
        torch.set_num_threads(2)
        model = load_model(preset="tiny", max_chunks=16)
        audio = torch.rand(1, 20 * 60 * 16000) * 2 - 1
        get_timestamp_embeddings(audio[:, :64000], model)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        emb, ts = get_timestamp_embeddings(audio, model)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(emb.shape[1], (after - before) / 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    frames, growth_mb = out.stdout.split()
    assert int(frames) == (20 * 60 * 16000 - 240) // 160 + 1
    assert float(growth_mb) < 1024, f"peak RSS grew by {growth_mb} MB"


def _plain_standardise(windows: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The window standardisation written directly (overflows above ~1e17 in float32)."""
    keep = (torch.arange(windows.shape[-1])[None] < valid[:, None])[:, None]
    count = (valid * windows.shape[1]).clamp(min=1).to(windows.dtype)[:, None, None]
    mean = (windows * keep).sum(dim=(1, 2), keepdim=True) / count
    centred = (windows - mean) * keep
    var = centred.pow(2).sum(dim=(1, 2), keepdim=True) / (count - 1).clamp(min=1)
    return centred / (var.sqrt() + 1e-5)


def test_standardisation_is_the_plain_formula_and_cannot_overflow():
    from hear_wavjepa.api import _standardise

    generator = torch.Generator().manual_seed(3)
    windows = (
        torch.randn(4, 2, 32_159, generator=generator)
        * torch.tensor([1e-3, 0.3, 1.0, 7.0])[:, None, None]
    )
    valid = torch.tensor([32_159, 20_000, 500, 1])
    assert torch.equal(_standardise(windows, valid), _plain_standardise(windows, valid))
    huge = windows[:1] / windows[:1].abs().max() * 3e38
    assert not torch.isfinite(_plain_standardise(huge, valid[:1])).all()  # the old failure
    out = _standardise(huge, valid[:1])
    expected = _plain_standardise(huge.double(), valid[:1]).float()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("peak", "dtype"), [(3e38, torch.float32), (1e300, torch.float64), (1e-44, torch.float32)]
)
def test_finite_input_of_any_amplitude_gives_finite_output(mono, nat, peak, dtype):
    audio = _audio(2, 20_000, channels=2).to(dtype)
    scaled = audio / audio.abs().max() * peak
    assert torch.isfinite(scaled).all()
    for model in (mono, nat):  # mono averages the two channels, Nat reads them natively
        emb, _ = get_timestamp_embeddings(scaled, model)
        assert torch.isfinite(emb).all()
        if peak > 1:  # loud input standardises to the same signal (the 1e-5 is negligible)
            reference, _ = get_timestamp_embeddings(audio.float(), model)
            torch.testing.assert_close(emb, reference, atol=2e-4, rtol=1e-3)
