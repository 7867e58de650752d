"""Pretraining recipes: frozen dataclasses merged as defaults -> YAML -> `key=value` overrides.

Every key is dotted (`optim.lr`, `data.path`); an unknown key is an error that names the closest
valid one. The resolved recipe is written into the run folder, and a run resumes from it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hear_wavjepa.config_io import unknown_key_error
from hear_wavjepa.model.config import WavJEPAConfig
from hear_wavjepa.model.presets import preset


class RecipeError(ValueError):
    """A recipe file or override that cannot be used; the message names the key and the source."""


@dataclass(frozen=True)
class ModelSection:
    """Architecture: a preset, plus the masking choices a recipe may change."""

    preset: str = "tiny"
    #: None keeps the preset's "aligned" Nat masks; "interleaved" reproduces the paper model.
    nat_order: str | None = None
    #: None keeps the reference's "joint" target standardisation; or "per_feature".
    target_norm: str | None = None


@dataclass(frozen=True)
class DataSection:
    """Corpus and batch: `clips_per_step` 10 s clips per optimiser step (all ranks together)."""

    #: a folder (searched recursively), a glob, .tar shards (a brace pattern such as
    #: "shard-{000..869}.tar"; several joined with "::"), or a .tsv manifest of audio paths.
    path: str = ""
    #: "auto" (shards and manifests stream, folders and globs of audio files are decoded once),
    #: "stream" or "memmap" (docs/pretraining.md, Data).
    format: str = "auto"
    #: DataLoader worker processes per rank that decode (and render) while streaming; 0: in-process.
    workers: int = 4
    #: streamed clips held (still encoded) in each worker's shuffle buffer; 1: no shuffling.
    shuffle_buffer: int = 256
    #: streaming: draw shards with replacement, endlessly (webdataset's resampled=True); false:
    #: epochs, each a fresh shuffle of the shards split disjointly across ranks and workers.
    resampled: bool = False
    clips_per_step: int = 32
    crops_per_clip: int = 8
    clip_seconds: float = 10.0
    loudness_dbfs: float = -14.0
    #: where decoded corpora are cached; "" -> $HEAR_WAVJEPA_HOME/corpora.
    cache_dir: str = ""
    #: skip (with a warning) files that cannot be decoded instead of stopping.
    skip_unreadable: bool = False


@dataclass(frozen=True)
class ScenesSection:
    """WavJEPA-Nat online scene rendering (docs/nat-scenes.md): binaural RIRs + noise at SNR
    U(lo, hi) dB."""

    enabled: bool = False
    snr_db: tuple[float, float] = (5.0, 40.0)
    #: probability that a whole batch stays clean (mono repeated to both ears).
    clean_data_ratio: float = 0.0


@dataclass(frozen=True)
class OptimSection:
    """AdamW over every trainable parameter in one group (docs/pretraining.md)."""

    lr: float = 4e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.04
    #: weight decay at the last step (cosine from `weight_decay`); equal -> constant (faithful).
    weight_decay_end: float = 0.04
    warmup_steps: int = 100_000
    grad_clip: float = 5.0
    #: multiplies the learning rate of the conv stacks (wav2vec2's `feature_grad_mult` for Adam);
    #: 1.0 is the reference's single group. Small runs need it: the shared front end feeds the
    #: teacher, and at full rate it collapses onto one direction (docs/learning-check.md).
    frontend_lr_scale: float = 1.0


@dataclass(frozen=True)
class EMASection:
    """Teacher momentum: linear from `start` to `end` over `ramp_steps`, then constant
    (docs/model.md)."""

    start: float = 0.999
    end: float = 0.99999
    ramp_steps: int = 100_000


@dataclass(frozen=True)
class MonitorSection:
    """Online probes while pretraining (docs/pretraining.md, Online probes): every `every` steps
    and at step 0, kNN and a linear probe on a fixed subset of held-out scene tasks, for the
    student (context encoder) and the EMA teacher."""

    #: steps between probes; 0: no probes.
    every: int = 0
    #: HEAR task folders joined with "::"; "" -> the mini suite's multiclass scene tasks under
    #: $HEAR_WAVJEPA_HOME/tasks/mini (built by `hear-wavjepa tasks build-mini`).
    tasks: str = ""
    #: clips per task, a fixed subset stratified by split and label (the cost of one probe).
    max_clips: int = 192
    #: seconds embedded per clip, from its start (one 2.01 s window by default).
    clip_seconds: float = 2.0


@dataclass(frozen=True)
class TrainSection:
    """Length, precision, checkpoints and logging of a run."""

    steps: int = 375_000
    #: micro-batches per optimiser step (per rank); clips_per_step must divide evenly.
    accumulation: int = 1
    #: "bf16" autocasts on CUDA (CPU always runs fp32); "fp32" never autocasts.
    precision: str = "bf16"
    compile: bool = False
    checkpoint_every: int = 25_000
    keep_checkpoints: int = 3
    log_every: int = 1
    seed: int = 42
    #: torch CPU threads per process; 0 keeps torch's default.
    threads: int = 0
    #: "auto" -> cuda:LOCAL_RANK when CUDA is available, else cpu.
    device: str = "auto"
    #: run folder name under $HEAR_WAVJEPA_HOME/runs; "" -> <recipe name>-<UTC time>.
    name: str = ""


@dataclass(frozen=True)
class Recipe:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    scenes: ScenesSection = field(default_factory=ScenesSection)
    optim: OptimSection = field(default_factory=OptimSection)
    ema: EMASection = field(default_factory=EMASection)
    train: TrainSection = field(default_factory=TrainSection)
    monitor: MonitorSection = field(default_factory=MonitorSection)

    def __post_init__(self) -> None:
        check(self)

    def model_config(self) -> WavJEPAConfig:
        """The architecture this recipe trains."""
        config = preset(self.model.preset)
        if self.model.nat_order is not None:
            masking = dataclasses.replace(config.masking, nat_order=self.model.nat_order)
            config = dataclasses.replace(config, masking=masking)
        if self.model.target_norm is not None:
            config = dataclasses.replace(config, target_norm=self.model.target_norm)
        return config

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def check(recipe: Recipe) -> None:
    """Cross-field checks; a RecipeError names the offending keys."""
    data, train, optim = recipe.data, recipe.train, recipe.optim
    positive = {
        "data.clips_per_step": data.clips_per_step,
        "data.crops_per_clip": data.crops_per_clip,
        "train.steps": train.steps,
        "train.accumulation": train.accumulation,
        "train.checkpoint_every": train.checkpoint_every,
        "train.keep_checkpoints": train.keep_checkpoints,
        "train.log_every": train.log_every,
    }
    for key, value in positive.items():
        if value < 1:
            raise RecipeError(f"{key} must be >= 1, got {value}")
    if data.format not in ("auto", "stream", "memmap"):
        raise RecipeError(f"data.format must be auto, stream or memmap, got {data.format!r}")
    if data.workers < 0 or data.shuffle_buffer < 1:
        raise RecipeError("data.workers must be >= 0 and data.shuffle_buffer >= 1")
    if data.clip_seconds <= 0:
        raise RecipeError(f"data.clip_seconds must be > 0, got {data.clip_seconds}")
    if train.precision not in ("bf16", "fp32"):
        raise RecipeError(f"train.precision must be 'bf16' or 'fp32', got {train.precision!r}")
    if optim.warmup_steps < 0 or recipe.ema.ramp_steps < 0:
        raise RecipeError("optim.warmup_steps and ema.ramp_steps must be >= 0")
    monitor = recipe.monitor
    if monitor.every < 0 or monitor.max_clips < 2 or monitor.clip_seconds <= 0:
        raise RecipeError(
            "monitor.every must be >= 0, monitor.max_clips >= 2 and monitor.clip_seconds > 0"
        )
    if optim.frontend_lr_scale < 0:
        raise RecipeError(f"optim.frontend_lr_scale must be >= 0, got {optim.frontend_lr_scale}")
    lo, hi = recipe.scenes.snr_db
    if lo > hi:
        raise RecipeError(f"scenes.snr_db must be (low, high), got {recipe.scenes.snr_db}")
    if not 0.0 <= recipe.scenes.clean_data_ratio <= 1.0:
        raise RecipeError(
            f"scenes.clean_data_ratio must be in [0, 1], got {recipe.scenes.clean_data_ratio}"
        )
    try:
        config = recipe.model_config()
    except ValueError as exc:
        raise RecipeError(f"model: {exc}") from exc
    if recipe.scenes.enabled and config.in_channels != 2:
        raise RecipeError(
            f"scenes.enabled renders binaural scenes, but model.preset {recipe.model.preset!r} "
            "has 1 input channel; use a '-nat' preset"
        )


def load_recipe(path: str | os.PathLike | None = None, overrides: list[str] = ()) -> Recipe:
    """defaults -> YAML file `path` -> `key=value` overrides (values parsed as YAML scalars)."""
    values = _flatten(Recipe().to_dict())
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"{path}: no such recipe file")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise RecipeError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise RecipeError(
                f"{path}: a recipe is a mapping of sections, got {type(loaded).__name__}"
            )
        _merge(values, _flatten(loaded), str(path))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"override {item!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as exc:
            raise RecipeError(f"override {item!r}: value is not valid YAML: {exc}") from exc
        _merge(values, {key.strip(): value}, "command line")
    return _build(values)


def _merge(values: dict[str, Any], new: dict[str, Any], source: str) -> None:
    for key, value in new.items():
        if key not in values:
            raise RecipeError(str(unknown_key_error(source, key, values, "recipe key")))
        values[key] = _coerce(key, values[key], value, source)


def _coerce(key: str, default: Any, value: Any, source: str) -> Any:
    """Check `value` against the type of the default (ints and "1e-4" pass as floats)."""
    bad = RecipeError(
        f"{source}: {key} must be like {default!r} ({type(default).__name__}), got {value!r}"
    )
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad
        return value
    if isinstance(default, float):
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if isinstance(default, list):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise bad
        return [_coerce(key, d, v, source) for d, v in zip(default, value, strict=True)]
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad
        return value
    raise bad


def _build(values: dict[str, Any]) -> Recipe:
    sections: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, name = key.split(".", 1)
        sections.setdefault(section, {})[name] = tuple(value) if isinstance(value, list) else value
    classes = {f.name: f.default_factory for f in dataclasses.fields(Recipe)}
    return Recipe(**{name: classes[name](**kwargs) for name, kwargs in sections.items()})


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
