"""Recipes (merge order, errors, the paper values) and the schedules at their key steps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hear_wavjepa.model.presets import count_parameters
from hear_wavjepa.training.recipe import RecipeError, load_recipe
from hear_wavjepa.training.schedules import learning_rate, schedule, weight_decay

TRAIN = Path(__file__).resolve().parents[1] / "train"


def test_paper_recipes_hold_the_paper_values():
    base = load_recipe(TRAIN / "wavjepa-base.yaml")
    nat = load_recipe(TRAIN / "wavjepa-nat-base.yaml")
    for recipe in (base, nat):
        assert recipe.train.steps == 375_000
        assert recipe.data.clips_per_step * recipe.data.crops_per_clip == 256
        assert (recipe.optim.lr, recipe.optim.betas, recipe.optim.eps) == (4e-4, (0.9, 0.98), 1e-6)
        assert (recipe.optim.weight_decay, recipe.optim.grad_clip) == (0.04, 5.0)
        assert recipe.optim.warmup_steps == recipe.ema.ramp_steps == 100_000
        assert (recipe.ema.start, recipe.ema.end) == (0.999, 0.99999)
        assert recipe.train.precision == "bf16"
    assert base.model_config().in_channels == 1
    config = nat.model_config()
    assert config.in_channels == 2 and config.masking.nat_order == "interleaved"
    assert nat.scenes.enabled and nat.scenes.snr_db == (5.0, 40.0)
    assert nat.scenes.clean_data_ratio == 0.0


def test_merge_order_defaults_recipe_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("optim:\n  lr: 1.0e-3\ntrain:\n  steps: 10\n")
    recipe = load_recipe(path, ["train.steps=20", "optim.betas=[0.8, 0.9]", "optim.eps=1e-8"])
    assert recipe.optim.lr == 1e-3  # from the file
    assert recipe.train.steps == 20  # the override wins
    assert recipe.optim.betas == (0.8, 0.9) and recipe.optim.eps == 1e-8
    assert recipe.optim.weight_decay == 0.04  # the default
    assert load_recipe(path, []).to_dict() == load_recipe(path).to_dict()


@pytest.mark.parametrize(
    ("text", "override", "message"),
    [
        (
            "optim:\n  lrate: 1\n",
            None,
            r"unknown recipe key 'optim.lrate'; did you mean 'optim.lr'",
        ),
        ("", "trian.steps=3", r"unknown recipe key 'trian.steps'; did you mean 'train.steps'"),
        ("", "train.steps=many", r"train.steps must be like 375000 \(int\), got 'many'"),
        ("", "train.steps", r"not of the form key=value"),
        ("", "train.accumulation=0", r"train.accumulation must be >= 1"),
        ("", "optim.frontend_lr_scale=-1", r"optim.frontend_lr_scale must be >= 0, got -1"),
        ("", "model.preset=huge", r"unknown preset 'huge'"),
        ("", "scenes.enabled=true", r"has 1 input channel; use a '-nat' preset"),
        ("- a\n- b\n", None, r"a recipe is a mapping"),
    ],
)
def test_bad_recipes_name_the_problem(tmp_path, text, override, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError, match=message):
        load_recipe(path, [override] if override else [])


def test_missing_recipe_file_names_it(tmp_path):
    with pytest.raises(RecipeError, match=r"nope.yaml: no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")


def test_learning_rate_warmup_then_cosine_to_zero():
    peak, warm, total = 4e-4, 100_000, 375_000
    assert learning_rate(0, peak, warm, total) == 0.0
    assert learning_rate(50_000, peak, warm, total) == pytest.approx(peak / 2)
    assert learning_rate(warm, peak, warm, total) == pytest.approx(peak)
    middle = warm + (total - warm) // 2
    assert learning_rate(middle, peak, warm, total) == pytest.approx(peak / 2)
    assert learning_rate(total, peak, warm, total) == pytest.approx(0.0, abs=1e-15)
    assert learning_rate(total + 10, peak, warm, total) >= 0.0
    assert learning_rate(0, peak, 0, total) == peak  # no warm-up: the peak at step 0


def test_weight_decay_and_ema_schedules():
    assert weight_decay(1234, 0.04, 0.04, 10_000) == 0.04
    assert weight_decay(0, 0.04, 0.4, 100) == pytest.approx(0.04)
    assert weight_decay(50, 0.04, 0.4, 100) == pytest.approx(0.22)
    assert weight_decay(100, 0.04, 0.4, 100) == pytest.approx(0.4)
    recipe = load_recipe(TRAIN / "wavjepa-base.yaml")
    assert schedule(recipe, 0)["ema"] == pytest.approx(0.999)
    assert schedule(recipe, 50_000)["ema"] == pytest.approx((0.999 + 0.99999) / 2)
    assert schedule(recipe, 100_000)["ema"] == 0.99999
    assert schedule(recipe, 300_000) == {
        "lr": pytest.approx(4e-4 * 0.5 * (1 + math.cos(math.pi * 200_000 / 275_000))),
        "weight_decay": 0.04,
        "ema": 0.99999,
    }


def test_the_small_gpu_recipe_loads_and_fits_an_hour():
    recipe = load_recipe(TRAIN / "small-gpu.yaml")
    config = recipe.model_config()
    assert recipe.model.preset == "small" and config.target_norm == "per_feature"
    assert (config.encoder.dim, config.encoder.depth, config.encoder.heads) == (384, 8, 6)
    assert config.conv_layers == load_recipe(TRAIN / "wavjepa-base.yaml").model_config().conv_layers
    assert count_parameters(config)["trainable"] == 20_888_448  # the number in the YAML comment
    assert recipe.data.clips_per_step * recipe.data.crops_per_clip == 256
    assert recipe.optim.frontend_lr_scale == 0.0
    assert (recipe.train.precision, recipe.train.compile) == ("bf16", True)
    assert recipe.train.steps == 40_000
    assert recipe.optim.warmup_steps == recipe.ema.ramp_steps == 10_700  # ~100k of 375k
    assert recipe.monitor.every == 250
