"""`naturalize`: a reproducible Nat-HEAR (2-channel, reverberant, noisy, 16 kHz) copy of a task.

The output is a HEAR task folder of the same format: `task_metadata.json` (with a `nat` entry
holding the conversion settings), the split JSONs and `labelvocabulary.csv` copied byte for byte
(timing is unchanged, so event labels stay valid), `16000/<split>/<file>.wav` as 2-channel PCM-16,
and `nat_manifest.json`: every random choice of every clip (a `ScenePlan`), so any clip re-renders
alone.

Rooms and noise clips by split: train and valid clips use train rooms and train noise clips, test
clips test ones; k-fold tasks pool both and give fold i every k-th item (a fixed fold-to-bank
assignment), so the rooms of a test fold never appear in its training folds. Each clip draws from
its own seed (hash of seed, split, filename): the output does not depend on worker count or order.
Outputs are written atomically; a rerun skips finished clips; `task_metadata.json` is written last.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
import yaml
from tqdm import tqdm

from hear_wavjepa.atomicio import atomic_write, write_bytes, write_text
from hear_wavjepa.audio import SAMPLE_RATE, resample, to_pcm16_channels_last
from hear_wavjepa.config_io import check_keys
from hear_wavjepa.hear_task import Task, TaskError, load_task
from hear_wavjepa.paths import scenes_dir, suite_file
from hear_wavjepa.scenes.noise import NoiseBank, NoiseBankConfig, load_noise_bank
from hear_wavjepa.scenes.render import SceneConfig, ScenePlan, draw_scene, render_with_banks
from hear_wavjepa.scenes.rooms import RoomBank, RoomBankConfig, load_room_bank

DEFAULT_CONFIG = suite_file("nat.yaml")
MANIFEST = "nat_manifest.json"
STATE = ".naturalize.json"
_FOLD = re.compile(r"fold\d+")


@dataclass(frozen=True)
class NatConfig:
    """The conversion settings: room bank, noise bank, per-clip draws and the clip seed."""

    rooms: RoomBankConfig
    noise: NoiseBankConfig
    scene: SceneConfig
    seed: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "config") -> NatConfig:
        """Build from {rooms: {...}, noise: {...}, scene: {...}, seed}; lists become tuples."""
        parts = {"rooms": RoomBankConfig, "noise": NoiseBankConfig, "scene": SceneConfig}
        check_keys(data, [*parts, "seed"], origin)
        built: dict[str, Any] = {}
        for name, kind in parts.items():
            section = data.get(name) or {}
            if isinstance(section, dict):  # a manifest's settings also carry the bank key
                section = {k: v for k, v in section.items() if k != "key"}
            fields = set(kind.__dataclass_fields__)
            if not isinstance(section, dict):
                raise ValueError(f"{origin}: section {name} must be a mapping of {sorted(fields)}")
            check_keys(section, fields, f"{origin}: {name}")
            try:
                built[name] = kind(**{k: tuple(v) if isinstance(v, list) else v
                                      for k, v in section.items()})  # fmt: skip
            except (TypeError, ValueError) as err:
                raise ValueError(f"{origin}: {name}: {err}") from err
        return cls(**built, seed=int(data.get("seed", 0)))

    def __post_init__(self) -> None:
        if self.scene.noise_sources[0] > self.rooms.positions - 1:
            raise ValueError(
                f"{self.scene.noise_sources[0]} noise sources need at least "
                f"{self.scene.noise_sources[0] + 1} source positions per room, the rooms have "
                f"{self.rooms.positions}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data, with the bank cache keys."""
        return {
            "rooms": {**asdict(self.rooms), "key": self.rooms.key()},
            "noise": {**asdict(self.noise), "key": self.noise.key()},
            "scene": asdict(self.scene),
            "seed": self.seed,
        }


def load_nat_config(
    path: Path | str = DEFAULT_CONFIG,
    seed: int | None = None,
    snr: tuple[float, float] | None = None,
    rt60: tuple[float, float] | None = None,
) -> NatConfig:
    """Read `tasks/nat.yaml` (or `path`) and apply command-line overrides."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: Nat config file is missing")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with rooms, noise and scene sections")
    config = NatConfig.from_dict(data, str(path))
    try:
        if snr is not None:
            config = replace(config, scene=replace(config.scene, snr=tuple(snr)))
        if rt60 is not None:
            config = replace(config, rooms=replace(config.rooms, rt60=tuple(rt60)))
    except ValueError as err:
        raise ValueError(f"command-line override: {err}") from err
    return config if seed is None else replace(config, seed=seed)


def read_manifest(folder: Path | str) -> tuple[NatConfig, dict[str, Any], dict[str, dict]]:
    """(config, settings, plans {split: {filename: plan dict}}) of a naturalized task folder."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{path}: no naturalize manifest")
    data = json.loads(path.read_text())
    settings = data["settings"]
    config = NatConfig.from_dict({k: settings[k] for k in ("rooms", "noise", "scene", "seed")},
                                 str(path))  # fmt: skip
    return config, settings, data["clips"]


def clip_seed(seed: int, split: str, filename: str) -> int:
    """The 64-bit seed of one clip's scene draw."""
    digest = hashlib.sha256(f"{seed}/{split}/{filename}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def split_pool(split: str, splits: tuple[str, ...], train: list, test: list) -> list:
    """The rooms (or noise clips) a split may use: see the module docstring."""
    if split in ("train", "valid"):
        return train
    if split == "test":
        return test
    if not _FOLD.fullmatch(split):
        raise ValueError(f"split {split!r} is neither train/valid/test nor foldNN")
    pool = (train + test)[splits.index(split) :: len(splits)]
    if not pool:
        raise ValueError(f"the banks hold too few items for {len(splits)} folds: enlarge them")
    return pool


def choose_rate(task: Task) -> int:
    """The input audio rate to read: 16 kHz if present, else the lowest multiple of 16 kHz, else
    the highest rate above 16 kHz."""
    rates = task.sample_rates
    usable = [r for r in rates if r >= SAMPLE_RATE]
    if not usable:
        raise TaskError(
            task.path, f"audio folders {rates} Hz: naturalize needs >= {SAMPLE_RATE} Hz"
        )
    multiples = [r for r in usable if r % SAMPLE_RATE == 0]
    return min(multiples) if multiples else max(usable)


def resampled_length(frames: int, rate: int) -> int:
    """Length after `torchaudio.functional.resample` from `rate` to 16 kHz."""
    return -(-frames * SAMPLE_RATE // rate)


def read_mono_16k(path: Path, rate: int) -> torch.Tensor:
    """Read a wav at `rate` Hz, average channels, resample to 16 kHz: (L,) float32."""
    try:
        audio, found = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise TaskError(path, f"unreadable wav ({err})") from err
    if found != rate:
        raise TaskError(path, f"sample rate {found} Hz, expected {rate} Hz")
    mono = torch.from_numpy(audio.mean(axis=1))
    return mono if rate == SAMPLE_RATE else resample(mono, rate)


def render_clip(
    wav: Path, rate: int, plan: ScenePlan, rooms: RoomBank, noise: NoiseBank, scene: SceneConfig
) -> np.ndarray:
    """Render one input wav with its plan: (L, 2) int16, exactly as written to disk.

    Runs torch on one thread: multi-threaded FFTs may differ in the last bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        source = read_mono_16k(wav, rate)
        if source.shape[0] != plan.length:
            raise TaskError(
                wav, f"{source.shape[0]} samples at 16 kHz, the plan says {plan.length}"
            )
        return to_pcm16_channels_last(render_with_banks(source, plan, rooms, noise, scene).mix)
    finally:
        torch.set_num_threads(threads)


def write_wav_atomic(path: Path, pcm: np.ndarray) -> None:
    atomic_write(
        path, lambda f: soundfile.write(f, pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    )


_WORKER: dict[str, Any] = {}


def _init_worker(config: NatConfig, root: Path | None) -> None:
    _WORKER.update(
        rooms=load_room_bank(config.rooms, root=root),
        noise=load_noise_bank(config.noise, root=root),
        scene=config.scene,
    )


def _render_job(job: tuple[Path, int, dict, Path]) -> str:
    wav, rate, plan, out = job
    pcm = render_clip(wav, rate, ScenePlan.from_dict(plan), _WORKER["rooms"], _WORKER["noise"],
                      _WORKER["scene"])  # fmt: skip
    write_wav_atomic(out, pcm)
    return out.name


def default_out(task_dir: Path) -> Path:
    """`<suite>/<task>` -> `<suite>-nat/<task>`."""
    return task_dir.parent.with_name(task_dir.parent.name + "-nat") / task_dir.name


def plan_task(task: Task, rate: int, config: NatConfig, rooms: RoomBank, noise: NoiseBank) -> dict:
    """Every clip's scene plan: {split: {filename: plan dict}} (reads wav headers only)."""
    clips = [(str(i), len(c)) for i, c in zip(noise.ids, noise.clips, strict=True)]
    train_noise = [clips[i] for i in noise.train_clips]
    test_noise = [clips[i] for i in noise.test_clips]
    plans: dict[str, dict[str, dict]] = {}
    for split in task.splits:
        room_pool = split_pool(split, task.splits, rooms.train_rooms, rooms.test_rooms)
        noise_pool = split_pool(split, task.splits, train_noise, test_noise)
        plans[split] = {}
        for clip in task.clips[split]:
            wav = task.wav_path(split, clip, rate)
            try:
                frames = soundfile.info(str(wav)).frames
            except (RuntimeError, soundfile.LibsndfileError) as err:
                raise TaskError(wav, f"unreadable wav ({err})") from err
            plan = draw_scene(clip_seed(config.seed, split, clip.filename),
                              resampled_length(frames, rate), room_pool,
                              config.rooms.positions, noise_pool, config.scene)  # fmt: skip
            plans[split][clip.filename] = plan.to_dict()
    return plans


def _dump(data: Any) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def naturalize(
    task_dir: Path | str,
    out: Path | str | None = None,
    config: NatConfig | None = None,
    workers: int = 0,
    bank_root: Path | None = None,
    progress: bool = True,
) -> Path:
    """Write the Nat version of the HEAR task at `task_dir` to `out`; returns `out`.

    `workers`: processes (0 = all cores, 1 = in this process); `bank_root`: where room and noise
    banks are cached (default `$HEAR_WAVJEPA_HOME/scenes`). Resumes an interrupted run into `out`.
    """
    task_dir = Path(task_dir)
    task = load_task(task_dir, check_audio=False)
    rate = choose_rate(task)
    out = Path(out) if out is not None else default_out(task_dir)
    config = config or load_nat_config()
    if out.resolve() == task_dir.resolve():
        raise ValueError(f"{out}: the output folder must differ from the input task folder")
    bank_root = bank_root or scenes_dir()
    settings = {**config.to_dict(), "source_task": task.name, "source_sample_rate": rate,
                "sample_rate": SAMPLE_RATE, "channels": 2, "subtype": "PCM_16"}  # fmt: skip
    state = out / STATE
    if state.is_file():
        if json.loads(state.read_text()) != json.loads(_dump(settings)):
            raise ValueError(f"{out} holds a naturalize run with other settings ({state}): "
                             "delete it or choose another output folder")  # fmt: skip
    elif out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not a naturalize output folder (no {STATE})")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.tmp"):  # left by an interrupted run
        stale.unlink()
    write_text(state, _dump(settings))

    rooms = load_room_bank(config.rooms, workers=workers, root=bank_root)
    noise = load_noise_bank(config.noise, root=bank_root)
    plans = plan_task(task, rate, config, rooms, noise)
    write_text(out / MANIFEST, _dump({"settings": settings, "clips": plans}))

    jobs = []
    for split in task.splits:
        folder = out / str(SAMPLE_RATE) / split
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".*.tmp"):
            stale.unlink()
        for name, plan in plans[split].items():
            if not (folder / name).is_file():
                jobs.append((task_dir / str(rate) / split / name, rate, plan, folder / name))
    workers = min(workers or os.cpu_count() or 1, max(len(jobs), 1))
    bar = tqdm(total=len(jobs), desc=f"naturalize {task.name}", disable=not progress)
    if workers == 1:
        _init_worker(config, bank_root)
        for job in jobs:
            _render_job(job)
            bar.update()
        _WORKER.clear()
    else:
        with get_context("spawn").Pool(workers, _init_worker, (config, bank_root)) as pool:
            for _ in pool.imap_unordered(_render_job, jobs, chunksize=4):
                bar.update()
    bar.close()

    for name in ["labelvocabulary.csv", *(f"{s}.json" for s in task.splits)]:
        write_bytes(out / name, (task_dir / name).read_bytes())
    metadata = {**task.metadata, "nat": settings}
    write_text(out / "task_metadata.json", _dump(metadata))
    return out
