"""Model core: spec numbers (parameters, frames), init, packing, equivalences, learning."""

from __future__ import annotations

import pytest
import torch
from reference_layout import reference_transformer

from hear_wavjepa.model import (
    AudioEncoder,
    TimeInverseMasker,
    WavJEPA,
    WavJEPAConfig,
    count_parameters,
    ema_momentum,
    preset,
)
from hear_wavjepa.model.config import WAVJEPA_CONV_LAYERS, frames_for_samples
from hear_wavjepa.model.packing import pack
from hear_wavjepa.model.positions import binaural, sincos_1d
from hear_wavjepa.model.transformer import Transformer


@pytest.mark.parametrize(
    ("name", "trainable", "inference", "teacher"),
    [
        ("base", 111_012_864, 89_127_168, 85_056_000),
        ("base-nat", 114_689_024, 92_803_328, 85_056_000),
        ("large", 328_596_480, 306_513_920, 302_311_424),
    ],
)
def test_parameter_counts_match_the_reference(name, trainable, inference, teacher):
    counts = count_parameters(name)
    assert counts["trainable"] == trainable
    assert counts["inference"] == inference
    assert counts["teacher"] == teacher


def test_positional_tables_are_frozen_buffers_not_parameters():
    counts = count_parameters("base")
    assert counts["positional"] == 200 * 768 + 200 * 384  # 230,400 (docs/model.md)
    assert count_parameters("base-nat")["positional"] == 2 * 230_400


@pytest.mark.parametrize(
    ("samples", "frames"),
    [
        (32_159, 200),
        (32_000, 199),
        (32_160, 200),
        (16_000, 99),
        (160_000, 999),
        (64_320, 401),
        (240, 1),
        (239, 0),
    ],
)
def test_frame_counts_follow_the_conv_recursion(samples, frames):
    assert frames_for_samples(samples, WAVJEPA_CONV_LAYERS) == frames


def test_front_end_geometry_of_the_base_preset():
    config = preset("base")
    assert config.crop_samples == 32_159
    assert (config.frames_per_crop, config.tokens_per_crop) == (200, 200)
    assert (config.hop_samples, config.receptive_field) == (160, 240)
    assert preset("base-nat").tokens_per_crop == 400


@pytest.mark.parametrize(("name", "tokens"), [("tiny", 200), ("tiny-nat", 400)])
def test_front_end_tokens_per_crop(name, tokens):
    config = preset(name)
    model = WavJEPA(config)
    out = model.encoder.frontend(torch.randn(2, config.in_channels, 32_159))
    assert out.shape == (2, tokens, config.encoder.dim)
    short = model.encoder.frontend(torch.randn(1, config.in_channels, 32_000))
    assert short.shape[1] == config.in_channels * 199


def test_nat_tokens_are_channel_major():
    torch.manual_seed(0)
    frontend = WavJEPA(preset("tiny-nat")).encoder.frontend
    wave = torch.randn(1, 2, 32_159)
    changed = wave.clone()
    changed[:, 1] = torch.randn(32_159)  # only the right ear changes
    a, b = frontend(wave), frontend(changed)
    torch.testing.assert_close(a[:, :200], b[:, :200])  # tokens 0..199: left ear only
    assert not torch.allclose(a[:, 200:], b[:, 200:])


def test_binaural_positional_code():
    table = binaural(768, 200)
    assert table.shape == (400, 768)
    torch.testing.assert_close(table[:200, :384], table[200:, :384])
    assert torch.all(table[:200, 384:] == 0)
    assert torch.all(table[200:, 384:576] == 0) and torch.all(table[200:, 576:] == 1)
    pred = binaural(384, 200)
    assert torch.all(pred[200:, 192:288] == 0) and torch.all(pred[200:, 288:] == 1)
    one_d = sincos_1d(768, 200)
    assert torch.all(one_d[0, :384] == 0) and torch.all(one_d[0, 384:] == 1)


def test_init_matches_the_reference():
    torch.manual_seed(0)
    model = WavJEPA(preset("tiny"))
    qkv = [layer.self_attn.in_proj_weight for layer in model.encoder.transformer.layers]
    assert all(torch.equal(qkv[0], w) for w in qkv[1:])  # deep-copied prototype layer
    linear1 = [layer.linear1.weight for layer in model.encoder.transformer.layers]
    assert not torch.equal(linear1[0], linear1[1])
    assert abs(float(linear1[0].std()) - 0.02) < 0.002
    for name, t in model.teacher.state_dict().items():
        assert torch.equal(t, model.encoder.transformer.state_dict()[name]), name
    assert not any(p.requires_grad for p in model.teacher.parameters())


def test_post_ln_layer_equals_torch_transformer_encoder_layer():
    torch.manual_seed(0)
    config = preset("tiny").encoder
    ours = Transformer(config).eval()
    theirs = reference_transformer(config).train()  # train mode: no fast path
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 50, config.dim)
    padding = torch.rand(3, 50) < 0.4
    padding[:, 0] = False
    torch.testing.assert_close(ours(x, padding), theirs(x, src_key_padding_mask=padding))
    torch.testing.assert_close(ours(x), theirs(x))


def test_packed_context_equals_full_sequence_with_key_padding():
    torch.manual_seed(0)
    config = preset("tiny")
    transformer = Transformer(config.encoder)
    x = torch.randn(4, 200, config.encoder.dim)
    masks = TimeInverseMasker(config.masking, 200, seed=3)(4)
    full = transformer(x, ~masks.context)
    packed = pack(x, masks.context)
    out = transformer(packed.tokens, packed.padding)
    for i in range(4):
        kept = int(masks.context[i].sum())
        torch.testing.assert_close(
            out[i, :kept], full[i, packed.index[i, :kept]], atol=1e-5, rtol=1e-5
        )


def test_ema_schedule():
    assert ema_momentum(0) == pytest.approx(0.999)
    assert ema_momentum(50_000) == pytest.approx(0.999495)
    assert ema_momentum(100_000) == pytest.approx(0.99999)
    assert ema_momentum(200_000) == pytest.approx(0.99999)
    with pytest.raises(ValueError, match="step"):
        ema_momentum(-1)


def test_teacher_update_is_an_ema_of_the_student():
    torch.manual_seed(0)
    model = WavJEPA(preset("tiny"))
    with torch.no_grad():
        for p in model.encoder.transformer.parameters():
            p.add_(1.0)
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    model.update_teacher(0.9)
    student = model.encoder.transformer.state_dict()
    for name, value in model.teacher.state_dict().items():
        torch.testing.assert_close(value, 0.9 * before[name] + 0.1 * student[name])


def _batch(config: WavJEPAConfig, crops: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randn(crops, config.in_channels, config.crop_samples, generator=generator)
    masks = TimeInverseMasker(config.masking, config.frames_per_crop, config.in_channels, seed)
    return audio, masks(crops)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny", "tiny-nat"])
def test_tiny_loss_decreases_on_a_fixed_batch(name):
    torch.manual_seed(0)
    config = preset(name)
    model = WavJEPA(config)
    audio, masks = _batch(config, 4, seed=1)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3, betas=(0.9, 0.98)
    )
    losses = []
    for step in range(6):
        out = model(audio, masks)
        optimizer.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        model.update_teacher(ema_momentum(step))
        optimizer.step()
        losses.append(float(out.loss))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], losses


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("name", ["tiny", "tiny-nat"])
def test_bf16_autocast_forward_and_backward(name, device):
    """The recipe's mixed precision, bf16 autocast (on CUDA, LayerNorm outputs fp32 while the
    Linear layers output bf16): a finite loss close to fp32's and finite gradients for every
    trainable parameter."""
    torch.manual_seed(0)
    config = preset(name)
    model = WavJEPA(config).to(device)
    audio, masks = _batch(config, 2, seed=3)
    audio, masks = audio.to(device), masks.to(device)
    with torch.no_grad():
        fp32 = model(audio, masks).loss
    with torch.autocast(device, dtype=torch.bfloat16):
        out = model(audio, masks)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert abs(out.loss.item() - fp32.item()) < 0.05 * fp32.item()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)


@pytest.mark.slow
def test_batched_forward_equals_per_item_forward():
    torch.manual_seed(0)
    config = preset("tiny")
    model = WavJEPA(config)
    audio, masks = _batch(config, 3, seed=2)
    with torch.no_grad():
        batched = model(audio, masks)
        items = [
            model(audio[i : i + 1], type(masks)(masks.context[i : i + 1], masks.targets[i : i + 1]))
            for i in range(3)
        ]
        torch.testing.assert_close(
            batched.squared_error, sum(o.squared_error for o in items), rtol=1e-5, atol=1e-4
        )
        assert batched.target_count == sum(o.target_count for o in items)
        encoded = model.encoder(audio)
        for i in range(3):
            torch.testing.assert_close(
                encoded[i : i + 1], model.encoder(audio[i : i + 1]), atol=1e-5, rtol=1e-5
            )


@pytest.mark.parametrize("name", ["tiny", "tiny-nat"])
@pytest.mark.parametrize(("batch", "samples"), [(1, 240), (1, 32_159), (3, 1_000), (3, 32_159)])
def test_no_grad_path_equals_the_autograd_path(name, batch, samples):
    """Without autograd the front end and the layers take a faster route (time-major convs on
    CPU, GELU and residual sums in place; docs/model.md, Embedding speed): same outputs, with
    and without a key-padding mask."""
    torch.manual_seed(0)
    encoder = AudioEncoder(preset(name)).eval()
    wave = torch.randn(batch, encoder.config.in_channels, samples)
    tokens = encoder.config.in_channels * encoder.frontend.frames(samples)
    padding = torch.zeros(batch, tokens, dtype=torch.bool)
    padding[0, tokens // 2 :] = tokens > 1
    for mask in (None, padding):
        slow = encoder(wave, mask)
        assert slow.requires_grad
        with torch.no_grad():
            fast = encoder(wave, mask)
            states = encoder.hidden_states(wave, mask)
        torch.testing.assert_close(fast, slow.detach(), atol=1e-5, rtol=1e-5)
        for fast_state, slow_state in zip(states, encoder.hidden_states(wave, mask), strict=True):
            torch.testing.assert_close(fast_state, slow_state.detach(), atol=1e-5, rtol=1e-5)


def test_no_grad_path_keeps_autocast_dtypes():
    """Under bf16 autocast the in-place residual sums keep the autograd path's dtypes."""
    torch.manual_seed(0)
    encoder = AudioEncoder(preset("tiny")).eval()
    wave = torch.randn(2, 1, 32_159)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        slow = encoder.hidden_states(wave)
        with torch.no_grad():
            fast = encoder.hidden_states(wave)
    assert [s.dtype for s in fast] == [s.dtype for s in slow]
    for fast_state, slow_state in zip(fast, slow, strict=True):
        torch.testing.assert_close(
            fast_state.float(), slow_state.detach().float(), atol=0.1, rtol=0.05
        )


def test_same_seed_same_masks_and_outputs():
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        config = preset("tiny")
        model = WavJEPA(config)
        audio, masks = _batch(config, 2, seed=5)
        with torch.no_grad():
            outs.append((masks, model(audio, masks).loss))
    assert torch.equal(outs[0][0].context, outs[1][0].context)
    assert torch.equal(outs[0][0].targets, outs[1][0].targets)
    assert torch.equal(outs[0][1], outs[1][1])


def test_bad_inputs_raise_clear_errors():
    config = preset("tiny")
    model = WavJEPA(config)
    audio, masks = _batch(config, 2, seed=0)
    with pytest.raises(ValueError, match="expected audio"):
        model(audio[:, :, :32_000], masks)
    with pytest.raises(ValueError, match="masks do not fit"):
        model(audio, type(masks)(masks.context[:1], masks.targets[:1]))
    with pytest.raises(ValueError, match="front end expects"):
        model.encoder.frontend(torch.randn(2, 32_159))
    with pytest.raises(ValueError, match="frames"):
        model.encoder.frontend(torch.randn(1, 1, 100))
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")


def test_config_round_trip_and_unknown_keys():
    config = preset("tiny-nat")
    assert WavJEPAConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="WavJEPAConfig: unknown key"):
        WavJEPAConfig.from_dict({**config.to_dict(), "depth": 3})


def test_effective_rank_by_hand():
    from hear_wavjepa.model.jepa import effective_rank

    line = torch.arange(6.0)[:, None] * torch.tensor([[1.0, 2.0, -1.0]])
    assert effective_rank(line).item() == pytest.approx(1.0)
    square = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert effective_rank(square).item() == pytest.approx(2.0)
    assert effective_rank(torch.ones(1, 4)).item() == 1.0


def test_per_feature_target_norm_standardises_each_feature_over_tokens():
    import dataclasses

    from hear_wavjepa.model.jepa import WavJEPA
    from hear_wavjepa.model.presets import tiny

    torch.manual_seed(0)
    model = WavJEPA(dataclasses.replace(tiny(), target_norm="per_feature")).eval()
    local = torch.randn(2, 200, model.config.encoder.dim)
    layers = model.teacher.layer_outputs(local)[-2:]
    by_hand = [
        (x - x.mean(1, keepdim=True)) / (x.var(1, unbiased=False, keepdim=True) + 1e-5).sqrt()
        for x in layers
    ]
    torch.testing.assert_close(model.targets(local), sum(by_hand) / 2)
    with pytest.raises(ValueError, match="target_norm"):
        dataclasses.replace(tiny(), target_norm="batch")
