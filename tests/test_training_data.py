"""The pretraining corpus (decoding, errors, tar shards, cache) and the batch maker."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hear_wavjepa.model.presets import preset
from hear_wavjepa.scenes.noise import NoiseBank, NoiseBankConfig, coloured_noise
from hear_wavjepa.scenes.render import SceneConfig
from hear_wavjepa.scenes.rooms import RoomBank, RoomBankConfig
from hear_wavjepa.training.batches import BatchMaker, standardise
from hear_wavjepa.training.decoded_corpus import (
    Corpus,
    CorpusError,
    condition,
    decode_corpus,
    find_sources,
)
from hear_wavjepa.training.scenes import BankRenderer

SETTINGS = dict(clip_seconds=10.0, loudness_dbfs=-14.0, progress=False)


def tone(rate: int, seconds: float, freq: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = 0.2 * np.sin(2 * np.pi * freq * t)
    return np.stack([x * (c + 1) for c in range(channels)], axis=1) if channels > 1 else x


@pytest.fixture
def folder(tmp_path) -> Path:
    out = tmp_path / "audio"
    (out / "sub").mkdir(parents=True)
    sf.write(out / "a.wav", tone(16_000, 3.0, 440), 16_000)
    sf.write(out / "sub" / "b.flac", tone(44_100, 12.0, 330, channels=2), 44_100)
    sf.write(out / "c.ogg", tone(22_050, 2.5, 550), 22_050)
    (out / "notes.txt").write_text("not audio")
    return out


def test_condition_resamples_picks_channel_0_sets_loudness_and_length():
    stereo = np.stack([tone(44_100, 3.0, 440), np.zeros(3 * 44_100)])
    clip = condition(stereo.astype(np.float32), 44_100, 1, 160_000, -14.0)
    assert clip.shape == (1, 160_000) and clip.dtype == np.float32
    rms = np.sqrt(np.mean(clip[0, : 3 * 16_000] ** 2))
    assert 20 * np.log10(rms) == pytest.approx(-14.0, abs=0.05)
    assert np.all(clip[0, 3 * 16_000 + 100 :] == 0)  # zero-padded to 10 s
    both = condition(stereo.astype(np.float32), 44_100, 2, 160_000, -14.0)
    assert both.shape == (2, 160_000) and np.all(both[1] == 0)  # 2-channel corpus keeps both ears
    mono = condition(tone(16_000, 1.0, 100)[None].astype(np.float32), 16_000, 2, 16_000, -14.0)
    np.testing.assert_array_equal(mono[0], mono[1])  # mono repeated to both ears
    assert np.all(condition(np.zeros((1, 100), np.float32), 16_000, 1, 50, -14.0) == 0)


def test_corpus_from_folder_decodes_every_audio_file_once(folder, tmp_path):
    path = decode_corpus(str(folder), tmp_path / "cache", channels=1, **SETTINGS)
    corpus = Corpus(path)
    assert len(corpus) == 3 and corpus.clips.shape == (3, 1, 160_000)
    assert [Path(n).name for n in corpus.names] == ["a.wav", "c.ogg", "b.flac"]
    for i in range(3):
        assert np.isfinite(corpus.clip(i)).all() and np.abs(corpus.clip(i)).max() > 0.1
    stamp = (path / "clips.f16").stat().st_mtime_ns
    assert decode_corpus(str(folder), tmp_path / "cache", channels=1, **SETTINGS) == path
    assert (path / "clips.f16").stat().st_mtime_ns == stamp  # reused, not rebuilt
    glob_path = decode_corpus(str(folder / "*.wav"), tmp_path / "cache", channels=1, **SETTINGS)
    assert Corpus(glob_path).names == [str(folder / "a.wav")]


def test_tar_shards_give_the_same_clips_as_the_files(folder, tmp_path):
    shard = tmp_path / "shards" / "shard-000000.tar"
    shard.parent.mkdir()
    with tarfile.open(shard, "w") as tar:
        tar.add(folder / "a.wav", arcname="0001.wav")
        tar.add(folder / "sub" / "b.flac", arcname="0002.flac")
        tar.add(folder / "notes.txt", arcname="0002.json")
    sources = find_sources(str(tmp_path / "shards"))
    assert [s.member for s in sources] == ["0001.wav", "0002.flac"]
    from_tar = Corpus(decode_corpus(str(shard), tmp_path / "cache", channels=1, **SETTINGS))
    from_files = Corpus(decode_corpus(str(folder), tmp_path / "cache", channels=1, **SETTINGS))
    np.testing.assert_array_equal(from_tar.clip(0), from_files.clip(0))  # a.wav
    np.testing.assert_array_equal(from_tar.clip(1), from_files.clip(2))  # b.flac


def test_corpus_errors_name_the_path(folder, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match=rf"{empty}: no audio files"):
        decode_corpus(str(empty), tmp_path / "cache", channels=1, **SETTINGS)
    with pytest.raises(CorpusError, match=r"no such file or folder"):
        decode_corpus(str(tmp_path / "missing"), tmp_path / "cache", channels=1, **SETTINGS)
    broken = folder / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00not really a wave file")
    with pytest.raises(CorpusError, match=rf"{broken}: cannot decode audio"):
        decode_corpus(str(folder), tmp_path / "cache", channels=1, **SETTINGS)
    with pytest.warns(UserWarning, match="skipping .*broken.wav"):
        path = decode_corpus(
            str(folder),
            tmp_path / "cache",
            channels=1,
            skip_unreadable=True,
            clip_seconds=10.0,
            loudness_dbfs=-14.0,
            progress=False,
        )
    assert len(Corpus(path)) == 3
    broken.unlink()
    nan = folder / "nan.wav"
    sf.write(nan, np.full(1000, np.nan, dtype=np.float32), 16_000, subtype="FLOAT")
    with pytest.raises(CorpusError, match=rf"{nan}: the audio holds NaN"):
        decode_corpus(str(folder), tmp_path / "cache", channels=1, **SETTINGS)


def test_standardise_is_joint_over_channels_and_time():
    crops = torch.randn(3, 2, 1000) * torch.tensor([1.0, 5.0])[None, :, None] + 7.0
    out = standardise(crops)
    flat = out.reshape(3, -1)
    torch.testing.assert_close(flat.mean(dim=1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(dim=1), torch.ones(3), atol=1e-4, rtol=0)
    ratio = out[:, 1].std(dim=1) / out[:, 0].std(dim=1)
    assert torch.all(ratio > 4)  # the level difference between channels survives


def test_batches_are_a_pure_function_of_step_and_slot(folder, tmp_path):
    corpus = Corpus(decode_corpus(str(folder), tmp_path / "cache", channels=1, **SETTINGS))
    config = preset("tiny")
    maker = BatchMaker(corpus, config, clips_per_step=2, crops_per_clip=3, seed=7)
    whole = maker(5, 0, 2)
    assert whole.audio.shape == (6, 1, config.crop_samples)
    assert whole.masks.context.shape == (6, config.tokens_per_crop)
    assert whole.masks.targets.shape == (6, config.masking.groups, config.tokens_per_crop)
    halves = [maker(5, 0, 1), maker(5, 1, 2)]
    torch.testing.assert_close(torch.cat([h.audio for h in halves]), whole.audio, rtol=0, atol=0)
    for field in ("context", "targets"):
        joined = torch.cat([getattr(h.masks, field) for h in halves])
        assert torch.equal(joined, getattr(whole.masks, field))
    again = BatchMaker(corpus, config, clips_per_step=2, crops_per_clip=3, seed=7)(5, 0, 2)
    assert torch.equal(again.audio, whole.audio)
    assert not torch.equal(maker(6, 0, 2).audio, whole.audio)
    # every epoch visits every clip once: 3 clips, 2 per step
    seen = [maker.clip_index(step, slot) for step in range(3) for slot in range(2)]
    assert sorted(seen[:3]) == sorted(seen[3:]) == [0, 1, 2]
    with pytest.raises(ValueError, match="clip slots"):
        maker(0, 1, 3)
    with pytest.raises(ValueError, match="1 channel"):
        BatchMaker(corpus, preset("tiny-nat"), clips_per_step=2, crops_per_clip=3, seed=7)


def small_banks() -> tuple[RoomBank, NoiseBank]:
    """Banks built from decaying-noise responses and coloured noise, without simulating rooms."""
    rng = np.random.default_rng(3)
    rooms_config = RoomBankConfig(n_train=2, n_test=1, positions=3, rir_seconds=0.05)
    taps = rooms_config.taps
    rirs = rng.standard_normal((3, 3, 2, taps)) * np.exp(-np.arange(taps) / 100)
    rirs[..., 0] += 1.0
    zeros3 = np.zeros((3, 3))
    rooms = RoomBank(
        rooms_config,
        rirs.astype(np.float32),
        zeros3,
        np.zeros(3),
        zeros3,
        np.zeros(3),
        np.zeros((3, 3, 3)),
    )
    noise_config = NoiseBankConfig(seconds=2.0, coloured=4, babble=0)
    clips = np.stack([coloured_noise(rng, noise_config.samples, b) for b in (0, 1, 2, 0)])
    ids = np.array([f"n-{i}" for i in range(4)])
    noise = NoiseBank(noise_config, clips, ids, np.array([False, False, False, True]))
    return rooms, noise


def test_nat_batches_render_binaural_scenes_per_batch(folder, tmp_path):
    rooms, noise = small_banks()
    renderer = BankRenderer(rooms, noise, SceneConfig(snr=(5.0, 40.0)))
    source = torch.from_numpy(tone(16_000, 3.0, 440).astype(np.float32))
    scene = renderer(source, np.random.default_rng(0))
    assert scene.shape == (2, source.shape[0]) and torch.isfinite(scene).all()
    assert not torch.equal(scene[0], scene[1])
    torch.testing.assert_close(renderer(source, np.random.default_rng(0)), scene)

    corpus = Corpus(decode_corpus(str(folder), tmp_path / "cache", channels=1, **SETTINGS))
    config = preset("tiny-nat")
    kwargs = dict(clips_per_step=2, crops_per_clip=2, seed=1, renderer=renderer)
    rendered = BatchMaker(corpus, config, clean_data_ratio=0.0, **kwargs)
    clean = BatchMaker(corpus, config, clean_data_ratio=1.0, **kwargs)
    batch = rendered(0, 0, 2)
    assert batch.audio.shape == (4, 2, config.crop_samples)
    assert batch.masks.context.shape == (4, config.tokens_per_crop)
    assert not torch.equal(batch.audio[:, 0], batch.audio[:, 1])  # two different ears
    dry = clean(0, 0, 2).audio
    torch.testing.assert_close(dry[:, 0], dry[:, 1], rtol=0, atol=0)  # mono repeated
    torch.testing.assert_close(rendered(0, 1, 2).audio, batch.audio[2:], rtol=0, atol=0)
