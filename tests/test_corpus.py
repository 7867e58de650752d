"""A 6-clip pretraining corpus: format, byte-identical rebuild, manifest, resume, exclusion rule.

Needs espeak-ng, pyfluidsynth/libfluidsynth3 and musescore-general-soundfont-small; the real
recordings are left out here (their first fetch converts ~3,400 files), so nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from hear_wavjepa.builders import synthetic_corpus as corpus
from hear_wavjepa.builders.mini.recipe import mini_material

CLIPS, SEED = 6, 7


# synthesises a corpus with espeak-ng and FluidSynth: slow
pytestmark = [pytest.mark.requires_synth, pytest.mark.slow]


def _build(out: Path, **kw) -> corpus.CorpusReport:
    kw = {"clips": CLIPS, "seed": SEED, "real_packages": (), "progress": False, **kw}
    return corpus.build_synthetic_corpus(out, **kw)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    report = _build(root / "a")
    _build(root / "b")
    return root / "a", root / "b", report


def _manifest(out: Path) -> dict:
    return json.loads((out / "corpus.json").read_text())


def test_clips_are_10s_16k_mono_flac(built):
    a, _, report = built
    files = sorted((a / "audio").iterdir())
    assert len(files) == CLIPS == report.written == sum(report.kinds.values())
    for path in files:
        info = soundfile.info(str(path))
        assert (info.format, info.samplerate, info.channels, info.frames) == (
            "FLAC",
            16000,
            1,
            160000,
        ), path
        audio, _ = soundfile.read(str(path), dtype="float32")
        assert np.sqrt(np.mean(audio**2)) > 1e-3, f"{path} is silent"
    assert report.bytes == sum(p.stat().st_size for p in files)


def test_same_seed_gives_byte_identical_corpus(tree_digest, built):
    a, b, _ = built
    assert tree_digest(a) == tree_digest(b)


def test_manifest_matches_the_files(built):
    a, _, report = built
    manifest = _manifest(a)
    clips = manifest["clips"]
    assert [c["index"] for c in clips] == list(range(CLIPS))
    assert {c["file"] for c in clips} == {f"audio/{p.name}" for p in (a / "audio").iterdir()}
    assert manifest["counts"] == report.kinds
    assert sum(manifest["counts"].values()) == CLIPS
    assert {c["kind"] for c in clips} <= set(corpus.WEIGHTS) - {"real"}
    assert manifest["settings"]["seed"] == SEED
    assert "MuseScore" in (a / "SOURCES.md").read_text()


def test_no_mini_suite_material(built):
    a, _, _ = built
    mini = mini_material()
    assert {"FluidR3_GM", "TimGM6mb"} <= mini["soundfonts"]  # the rule reads the real recipe
    assert "yes" in mini["words"] and "bucklespring-data" in mini["packages"]
    corpus.check_exclusion(mini)  # corpus soundfont and packages are not mini material
    layers = [layer for c in _manifest(a)["clips"] for layer in c["layers"]]
    synth = [x for x in layers if x["kind"] in ("music", "drums")]
    speech = [x for x in layers if x["kind"] == "speech"]
    assert synth and speech, "the test seed should plan GM and speech layers"
    assert all(x["soundfont"] == corpus.SOUNDFONT.stem for x in synth)
    assert not {x["soundfont"] for x in synth} & mini["soundfonts"]
    for layer in speech:
        for turn in layer["turns"]:
            words = {w.strip(",.?!").lower() for w in turn["text"].split()}
            assert not words & mini["words"], turn["text"]


def test_resume_renders_only_missing_clips(tree_digest, built, tmp_path):
    a, _, _ = built
    out = tmp_path / "resume"
    shutil.copytree(a, out)
    clips = _manifest(out)["clips"]
    victim = next(c for c in clips if c["kind"] == "speech")["file"]
    before = {p.name: p.stat().st_mtime_ns for p in (out / "audio").iterdir()}
    (out / victim).unlink()
    (out / "audio" / "c00000-junk.flac.part").write_bytes(b"half")  # left by a killed build
    report = _build(out)
    assert report.written == 1
    assert tree_digest(out) == tree_digest(a)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "audio").iterdir()}
    assert {k: v for k, v in after.items() if k != Path(victim).name} == {
        k: v for k, v in before.items() if k != Path(victim).name
    }


def test_other_settings_or_fewer_clips_are_refused(built, tmp_path):
    a, _, _ = built
    with pytest.raises(ValueError, match="corpus.json"):
        _build(a, seed=SEED + 1)
    with pytest.raises(ValueError, match="beyond --clips"):
        _build(a, clips=2)
    with pytest.raises(ValueError, match="unknown real packages"):
        _build(tmp_path / "x", real_packages=("hydrogen-data",))
