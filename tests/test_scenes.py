"""Room banks (binaural, cached, deterministic), noise banks and scene rendering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hear_wavjepa.scenes.noise import coloured_noise, load_noise_bank
from hear_wavjepa.scenes.render import SceneConfig, ScenePlan, draw_scene, render_scene
from hear_wavjepa.scenes.rooms import (
    RoomBankConfig,
    binaural_coherence,
    check_hrtf,
    load_room_bank,
    simulate_room,
)


@pytest.fixture(scope="session")
def bank_root(scene_home):
    return scene_home / "scenes"


@pytest.fixture(scope="session")
def rooms(bank_root, tiny_nat):
    return load_room_bank(tiny_nat.rooms, workers=1, root=bank_root)


@pytest.fixture(scope="session")
def noise(bank_root, tiny_nat):
    return load_noise_bank(tiny_nat.noise, root=bank_root)


def test_room_bank_is_deterministic_cached_and_split(tiny_nat, rooms, bank_root):
    assert rooms.rirs.shape == (4, 3, 2, tiny_nat.rooms.taps) and rooms.rirs.dtype == np.float32
    assert rooms.train_rooms == [0, 1] and rooms.test_rooms == [2, 3]
    assert np.all((rooms.rt60 >= 0.15) & (rooms.rt60 <= 0.25))
    assert np.all(np.abs(rooms.rirs).sum(-1) > 0)  # every response carries energy
    again = simulate_room(tiny_nat.rooms, 3)
    np.testing.assert_array_equal(again["rirs"], rooms.rirs[3])
    cached = load_room_bank(tiny_nat.rooms, root=bank_root)  # from disk, no rebuild
    np.testing.assert_array_equal(cached.rirs, rooms.rirs)
    other = RoomBankConfig(**{**tiny_nat.rooms.__dict__, "rt60": (0.2, 0.3)})
    assert other.key() != tiny_nat.rooms.key()


def test_binaural_level_difference_follows_source_side(rooms):
    """A source on the listener's left is louder in the left ear (early part), and vice versa."""
    checked = 0
    for r in range(len(rooms.rirs)):
        az = np.deg2rad(rooms.azimuth[r])
        left = np.array([-np.sin(az), np.cos(az)])
        for p in range(rooms.sources.shape[1]):
            d = rooms.sources[r, p, :2] - rooms.head[r, :2]
            side = float(d @ left / np.linalg.norm(d))
            if abs(side) < 0.7:
                continue
            early = rooms.rirs[r, p, :, :80]  # 5 ms: the direct sound
            ild = 10 * np.log10((early[0] ** 2).sum() / (early[1] ** 2).sum())
            assert np.sign(ild) == np.sign(side), (r, p, side, ild)
            checked += 1
    assert checked >= 1


def test_late_tails_get_diffuse_field_coherence():
    """Uncorrelated tails become coherent at low frequencies and stay uncorrelated at high ones."""
    rng = np.random.default_rng(0)
    rir = rng.standard_normal((2, 16000)) * np.exp(-np.arange(16000) / 2000)
    rir[:, 0] = 50.0  # the direct sound
    out = binaural_coherence(rir, 16000)
    start = 880  # 50 ms mixing time + 5 ms crossfade
    np.testing.assert_array_equal(out[:, :800], rir[:, :800])  # early part untouched
    energy = (out[:, start:] ** 2).sum(1) / (rir[:, start:] ** 2).sum(1)
    np.testing.assert_allclose(energy, 1.0, atol=0.05)

    def band_corr(x, lo, hi):
        spec = np.fft.rfft(x[:, start:], axis=-1)
        f = np.fft.rfftfreq(x.shape[1] - start, 1 / 16000)
        spec[:, (f < lo) | (f >= hi)] = 0
        return np.corrcoef(np.fft.irfft(spec, axis=-1))[0, 1]

    assert abs(band_corr(rir, 20, 200)) < 0.2 and band_corr(out, 20, 200) > 0.85
    assert abs(band_corr(out, 2000, 8000)) < 0.2


def test_bad_hrtf_and_ranges(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        check_hrtf(tmp_path / "missing.sofa")
    fake = tmp_path / "fake.sofa"
    fake.write_text("not a sofa file")
    with pytest.raises(ValueError, match="fake.sofa"):
        RoomBankConfig(hrtf=str(fake)).key()
    with pytest.raises(ValueError, match="empty"):
        RoomBankConfig(rt60=(0.9, 0.3))
    with pytest.raises(ValueError, match="absurd"):
        RoomBankConfig(rt60=(0.0, 30.0))
    with pytest.raises(ValueError, match="empty"):
        SceneConfig(snr=(40, 5))
    with pytest.raises(ValueError, match="absurd"):
        SceneConfig(snr=(5, 400))


def test_noise_bank(tiny_nat, noise, bank_root):
    assert noise.clips.shape == (8, 32000)
    np.testing.assert_allclose(np.sqrt((noise.clips.astype(np.float64) ** 2).mean(1)), 1, rtol=1e-4)
    assert set(noise.train_clips).isdisjoint(noise.test_clips)
    assert {i.split("-")[0] for i in noise.ids} == {"white", "pink", "brown", "babble"}
    rebuilt = load_noise_bank(tiny_nat.noise, root=bank_root / "rebuild")
    np.testing.assert_array_equal(rebuilt.clips, noise.clips)  # espeak-ng babble included


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_coloured_noise_slope(beta):
    x = coloured_noise(np.random.default_rng(0), 2**16, beta)
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.arange(len(power))
    bands = [power[(f >= lo) & (f < 2 * lo)].mean() for lo in (64, 128, 256, 512, 1024, 2048)]
    slope = np.polyfit(np.log2([64, 128, 256, 512, 1024, 2048]), np.log2(bands), 1)[0]
    assert abs(slope + beta) < 0.15


def _plan(rooms, noise, length, seed=0):
    clips = [(str(i), noise.clips.shape[1]) for i in noise.ids]
    return draw_scene(seed, length, rooms.train_rooms, 3, clips, SceneConfig())


def test_draw_scene_is_a_function_of_its_seed(rooms, noise):
    a, b = _plan(rooms, noise, 24000, seed=5), _plan(rooms, noise, 24000, seed=5)
    assert a == b and a != _plan(rooms, noise, 24000, seed=6)
    assert ScenePlan.from_dict(a.to_dict()) == a
    for seed in range(20):
        plan = _plan(rooms, noise, 40000, seed=seed)  # clip longer than the 2 s noise clips
        positions = [plan.source_position] + [n.position for n in plan.noises]
        assert len(set(positions)) == len(positions) and 1 <= len(plan.noises) <= 2
        assert len({n.clip_id for n in plan.noises}) == len(plan.noises)
        assert all(n.offset + n.length <= 40000 and n.length == 32000 for n in plan.noises)


def test_render_scene_snr_ild_loudness_fades(rooms, noise):
    length = 16000
    source = torch.from_numpy(np.random.default_rng(1).standard_normal(length).astype(np.float32))
    plan = _plan(rooms, noise, length, seed=3)
    rirs = torch.from_numpy(rooms.rirs[plan.room])
    clips = [torch.from_numpy(noise.clips[noise.index(n.clip_id)]) for n in plan.noises]
    noise_rirs = rirs[[n.position for n in plan.noises]]
    config = SceneConfig()
    out = render_scene(source, rirs[plan.source_position], clips, noise_rirs, plan, config, 16000)
    assert out.mix.shape == (2, length) and torch.isfinite(out.mix).all()
    snr = 10 * torch.log10(out.source.double().pow(2).sum() / out.noise.double().pow(2).sum())
    assert abs(float(snr) - plan.snr_db) < 0.01
    rms_db = 20 * torch.log10(out.mix.double().pow(2).mean().sqrt())
    assert float(out.mix.abs().max()) <= config.peak + 1e-6
    assert float(rms_db) <= -14 + 1e-3
    # The SNR gain is one number for both ears: the noise ILD equals the unscaled image's.
    single = ScenePlan(**{**plan.__dict__, "noises": plan.noises[:1]})
    one = render_scene(source, rirs[plan.source_position], clips[:1], noise_rirs[:1], single,
                       config, 16000)  # fmt: skip
    place = single.noises[0]
    seg = clips[0][place.start : place.start + place.length]
    assert place.offset == 0 and place.length == length
    raw = torch.stack([torch.from_numpy(np.convolve(seg.numpy(), r.numpy())[:length])
                       for r in noise_rirs[0]])  # fmt: skip
    ild = lambda x: float(10 * torch.log10(x[0].double().pow(2).sum() / x[1].double().pow(2).sum()))  # noqa: E731
    assert abs(ild(one.noise) - ild(raw)) < 0.1  # fades change both ears alike
    delta = torch.zeros(1, 2, 100)
    delta[..., 0] = 1.0  # a dry response shows the 200 ms linear fades directly
    dry = render_scene(source, rirs[0], clips[:1], delta, single, config, 16000).noise[0].abs()
    assert float(dry[:160].max()) < 0.2 * float(dry[3200:6400].max())
    assert float(dry[-160:].max()) < 0.2 * float(dry[3200:6400].max())
    silent = render_scene(torch.zeros(length), rirs[0], clips, noise_rirs, plan, config, 16000)
    assert torch.isfinite(silent.mix).all() and float(silent.mix.abs().max()) > 0
