"""A small-scale build of every mini task: valid HEAR folders, structure, byte-identical rebuild.

Needs espeak-ng, libfluidsynth3 and the GM soundfonts (tasks/apt-packages.txt) and fetches the
small real-sound tier (~14 MB of .debs, cached under $HEAR_WAVJEPA_HOME/sources).
"""

from __future__ import annotations

import pytest

from hear_wavjepa.builders.mini.recipe import load_recipes
from hear_wavjepa.hear_task import load_task

SCALE = 0.02


# builds the suite (Debian downloads on a first run): slow
pytestmark = [pytest.mark.requires_synth(corpus_soundfont=False), pytest.mark.slow]


@pytest.fixture(scope="module")
def suites(tmp_path_factory):
    from hear_wavjepa.builders.mini.build import build_mini

    root = tmp_path_factory.mktemp("mini")
    first = build_mini(root / "a", scale=SCALE, seed=3, sounds="small", progress=False)
    build_mini(root / "b", scale=SCALE, seed=3, sounds="small", progress=False)
    return root / "a", root / "b", first


def test_every_task_is_built_and_valid(suites):
    out, _, reports = suites
    recipes = load_recipes()
    assert [r.folder for r in reports] == [r.folder for r in recipes]
    assert sorted(p.name for p in out.iterdir()) == sorted(r.folder for r in recipes)
    for recipe in recipes:
        task = load_task(out / recipe.folder, sample_rate=16000)
        assert task.evaluation == recipe.evaluation
        assert task.embedding_type == recipe.embedding
        assert task.splits == recipe.splits
        for split in task.splits:
            assert task.clips[split], f"{recipe.folder}: split {split} is empty"
        assert (out / recipe.folder / "SOURCES.md").read_text().count("| ") > 5


def test_every_test_class_is_in_its_training_folds(suites):
    """k-fold multiclass tasks: each rotation's test labels occur in its training folds."""
    out = suites[0]
    for folder in sorted(out.iterdir()):
        task = load_task(folder, check_audio=False)
        if task.split_mode == "trainvaltest" or task.prediction_type != "multiclass":
            continue
        for train, _, test in task.protocol_splits():
            seen = {label for split in train for clip in task.clips[split] for label in clip.labels}
            missing = {lbl for clip in task.clips[test] for lbl in clip.labels} - seen
            assert not missing, f"{folder.name}: {sorted(missing)} in {test} but not in {train}"


def test_both_split_modes_and_folds(suites):
    out = suites[0]
    modes = {load_task(p, check_audio=False).split_mode for p in out.iterdir()}
    assert modes == {"trainvaltest", "new_split_kfold"}
    drums = load_task(out / "mini_drums-v1-full", check_audio=False)
    assert drums.splits == tuple(f"fold{i:02d}" for i in range(5))
    # kits never span two folds
    kit_fold = {}
    for fold in drums.splits:
        for clip in drums.clips[fold]:
            kit = clip.filename.split("-n")[0]
            assert kit_fold.setdefault(kit, fold) == fold


def test_pitch_and_family(suites):
    out = suites[0]
    pitch = load_task(out / "mini_pitch-v1-full", check_audio=False)
    assert pitch.labels == tuple(str(k) for k in range(21, 109))
    assert pitch.evaluation[:2] == ("pitch_acc", "chroma_acc")

    def instruments(split):
        return {c.filename.split("-n")[0] for c in pitch.clips[split]}

    assert not instruments("test") & instruments("train"), "test instruments seen in training"
    family = load_task(out / "mini_family-v1-full", check_audio=False)
    assert len(family.labels) == 14
    clip = family.clips["train"][0]
    assert (
        family.wav_path("train", clip).stat().st_ino == pitch.wav_path("train", clip).stat().st_ino
    )


def test_speech_tasks(suites):
    out = suites[0]
    kws = load_task(out / "mini_keywords-v1-full", check_audio=False)
    assert len(kws.labels) == 12 and {"_silence_", "_unknown_", "yes"} <= set(kws.labels)
    speakers = {s: {c.filename.split("_")[0] for c in kws.clips[s]} for s in kws.splits}
    assert not speakers["train"] & speakers["test"] and not speakers["train"] & speakers["valid"]
    lid = load_task(out / "mini_langid-v1-full", check_audio=False)
    assert len(lid.labels) >= 10 and "zh" not in lid.labels
    count = load_task(out / "mini_count-v1-full", check_audio=False)
    assert count.labels == tuple(str(c) for c in range(6))


def test_sounds_mixtures_and_events(suites):
    out = suites[0]
    sounds = load_task(out / "mini_sounds-v1-full", check_audio=False)
    assert len(sounds.labels) >= 4  # classes spanning < 3 folds are left out (small tier)
    mix = load_task(out / "mini_mixtures-v1-full", check_audio=False)
    assert mix.prediction_type == "multilabel" and mix.primary_metric == "mAP"
    assert any(len(c.labels) > 2 for c in mix.clips["train"])
    events = load_task(out / "mini_events-v1-full", check_audio=False)
    assert events.embedding_type == "event" and events.sample_duration >= 20
    assert events.evaluation == ("event_onset_200ms_fms", "segment_1s_er")
    per_scene = [len(c.events) for s in events.splits for c in events.clips[s]]
    assert min(per_scene) >= 5


def test_same_seed_gives_byte_identical_folders(tree_digest, suites):
    first, second, _ = suites
    a, b = tree_digest(first), tree_digest(second)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
