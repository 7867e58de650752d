"""Embed a HEAR task folder with any HEAR module into heareval's on-disk cache, resumably.

The cache of (module, weights, options, channel policy, task) lives under
`$HEAR_WAVJEPA_HOME/embeddings/<module key>/<task folder name>/`. Finished clips are skipped, every
file is written atomically, and under `torchrun` the clips are sharded across processes (one GPU
each where there are GPUs); rank 0 consolidates.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from hear_wavjepa.atomicio import write_json
from hear_wavjepa.audio import resample
from hear_wavjepa.evaluation.cache import DONE_MARKER, CacheWriter, content_digest
from hear_wavjepa.filelock import FileLock
from hear_wavjepa.hear_task import Clip, Task, TaskError, check_samples, load_task
from hear_wavjepa.paths import embeddings_dir

#: what the harness does to a task's channels BEFORE the module sees the audio
#: (`ModuleSpec.channels`); not the HEAR API's own `channel_policy` inside hear_wavjepa
INPUT_CHANNEL_MODES = ("auto", "native", "mean", "first")
#: seconds of audio per module call, as heareval's batch rule: max(1, int(0.7 * 120 / duration))
BATCH_SECONDS = 84.0


class ContractError(ValueError):
    """A HEAR module broke the API contract; the message names module, clips and check."""


@dataclass(frozen=True)
class ModuleSpec:
    """An importable HEAR module, its weights file ("" = the module's default) and load options."""

    module: str
    model_path: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    #: how multi-channel task audio reaches the module: "native" passes (B, C, T) through,
    #: "mean" / "first" give it mono; "auto" is native for hear_wavjepa, mean for other modules.
    channels: str = "auto"

    def __post_init__(self) -> None:
        if self.channels not in INPUT_CHANNEL_MODES:
            raise ValueError(
                f"channels must be one of {INPUT_CHANNEL_MODES}, got {self.channels!r}"
            )

    @property
    def channel_policy(self) -> str:
        if self.channels != "auto":
            return self.channels
        return "native" if self.module == "hear_wavjepa" else "mean"

    def key(self) -> str:
        """A readable, stable cache key: module, weights digest, options digest, channel policy."""
        parts = [self.module]
        if self.model_path:
            stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(self.model_path).stem)[:40]
            parts.append(f"{stem}-{file_digest(weights_file(self.model_path))[:12]}")
        if self.options:
            blob = json.dumps(self.options, sort_keys=True)
            readable = ",".join(f"{k}-{v}" for k, v in sorted(self.options.items()))
            readable = re.sub(r"[^A-Za-z0-9_.,-]", "", readable)[:40]
            parts.append(f"{readable}.{hashlib.sha256(blob.encode()).hexdigest()[:8]}")
        parts.append(self.channel_policy)
        return "__".join(parts)

    def describe(self) -> dict[str, Any]:
        digest = file_digest(weights_file(self.model_path)) if self.model_path else None
        return {
            "module": self.module,
            "model_path": self.model_path,
            "weights_sha256": digest,
            "options": self.options,
            "channels": self.channel_policy,
        }


def weights_file(path: str | os.PathLike) -> Path:
    """The file holding the weights: `path`, or the weights file of a hub snapshot folder."""
    if Path(path).is_dir():
        from hear_wavjepa.hub import snapshot_weights

        return snapshot_weights(Path(path))
    return Path(path)


_DIGESTS: dict[tuple[str, float, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (memoised per path, mtime and size)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: weights file not found")
    stat = p.stat()
    key = (str(p.resolve()), stat.st_mtime, stat.st_size)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def import_hear_module(name: str) -> ModuleType:
    """Import `name` and check it offers the three HEAR functions."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ContractError(f"HEAR module {name!r} cannot be imported: {exc}") from exc
    missing = [
        fn
        for fn in ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")
        if not callable(getattr(module, fn, None))
    ]
    if missing:
        raise ContractError(f"HEAR module {name!r} lacks {missing}")
    return module


def load_hear_model(spec: ModuleSpec, module: ModuleType, device: torch.device) -> torch.nn.Module:
    args = (spec.model_path,) if spec.model_path else ()
    model = module.load_model(*args, **spec.options)
    if not isinstance(model, torch.nn.Module):
        raise ContractError(
            f"{spec.module}.load_model returned {type(model).__name__}, not a torch.nn.Module"
        )
    for attr in ("scene_embedding_size", "timestamp_embedding_size"):
        if type(getattr(model, attr, None)) is not int:
            raise ContractError(f"{spec.module}: model.{attr} must be a Python int")
    if getattr(model, "sample_rate", None) not in (16000, 22050, 32000, 44100, 48000):
        raise ContractError(
            f"{spec.module}: model.sample_rate {getattr(model, 'sample_rate', None)!r} "
            "is not a HEAR rate"
        )
    return model.to(device)


def cache_dir(spec: ModuleSpec, task: Task, root: Path | None = None) -> Path:
    """`<root>/<module key>/<task folder>-<task digest>`: a rebuilt task gets a fresh cache."""
    return (root or embeddings_dir()) / spec.key() / f"{task.name}-{task_digest(task)}"


def task_digest(task: Task) -> str:
    """12 hex digits of sha256 over the task's metadata, vocabulary and split files."""
    return content_digest(task.path, task.splits)


@dataclass(frozen=True)
class EmbedResult:
    out_dir: Path
    clips: int  # clips embedded by this call (0 if the cache was complete)
    seconds: float  # wall time of this call

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else 0.0


def read_clip(task: Task, split: str, clip: Clip, sample_rate: int) -> np.ndarray:
    """(channels, samples) float32 at `sample_rate`, from the nearest rate folder of the task."""
    have = sample_rate if sample_rate in task.sample_rates else max(task.sample_rates)
    path = task.wav_path(split, clip, have)
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as exc:
        raise TaskError(path, f"unreadable audio: {exc}") from exc
    check_samples(path, audio)  # NaN / Inf: an error naming this file, not a batch index
    audio = audio.T
    if rate != sample_rate:
        audio = resample(torch.from_numpy(audio), rate, sample_rate).numpy()
    return np.ascontiguousarray(audio)


def _batches(lengths: dict[str, int], sample_rate: int) -> list[list[str]]:
    """Clips grouped by equal length (a HEAR call takes one length), ~BATCH_SECONDS per call."""
    groups: dict[int, list[str]] = defaultdict(list)
    for name, length in lengths.items():
        groups[length].append(name)
    out = []
    for length, names in sorted(groups.items()):
        size = max(1, int(BATCH_SECONDS * sample_rate / max(length, 1)))
        out.extend(names[i : i + size] for i in range(0, len(names), size))
    return out


def _as_input(audio: list[np.ndarray], policy: str) -> torch.Tensor:
    batch = np.stack(audio)  # (B, C, T)
    if batch.shape[1] == 1:
        return torch.from_numpy(batch[:, 0])
    if policy == "mean":
        return torch.from_numpy(batch.mean(axis=1))
    if policy == "first":
        return torch.from_numpy(batch[:, 0])
    return torch.from_numpy(batch)


def _check_output(spec: ModuleSpec, model, names: list[str], emb, ts, samples: int) -> None:
    where = f"module {spec.module!r} on clip(s) {names[:3]}{'...' if len(names) > 3 else ''}"
    event = ts is not None
    size = model.timestamp_embedding_size if event else model.scene_embedding_size
    ndim = 3 if event else 2
    if not isinstance(emb, torch.Tensor) or emb.dtype != torch.float32 or emb.ndim != ndim:
        got = f"{type(emb).__name__} {getattr(emb, 'dtype', '')} {tuple(getattr(emb, 'shape', ()))}"
        raise ContractError(
            f"{where}: embeddings must be a float32 tensor with {ndim} dims, got {got}"
        )
    if emb.shape[0] != len(names) or emb.shape[-1] != size:
        raise ContractError(
            f"{where}: embeddings of shape {tuple(emb.shape)}, expected ({len(names)}, ..., {size})"
        )
    if not bool(torch.isfinite(emb).all()):
        raise ContractError(f"{where}: NaN or Inf in the embeddings")
    if event:
        if not isinstance(ts, torch.Tensor) or tuple(ts.shape) != tuple(emb.shape[:2]):
            raise ContractError(
                f"{where}: timestamps of shape {tuple(getattr(ts, 'shape', ()))} disagree with "
                f"the {tuple(emb.shape[:2])} frames"
            )
        duration_ms = 1000.0 * samples / model.sample_rate
        t = ts.double()
        if bool((t.diff(dim=1) < 0).any()) or float(t.max()) > duration_ms + 1e-6:
            raise ContractError(
                f"{where}: timestamps decrease or pass the clip end ({duration_ms} ms)"
            )


def lock_path(out_dir: Path) -> Path:
    """The lock file of a cache dir, beside it: `<cache dir>.lock`."""
    return out_dir.with_name(out_dir.name + ".lock")


@contextmanager
def _cache_lock(out: Path, rank: int, world: int) -> Iterator[None]:
    """Hold the cache dir's lock (rank 0 takes it for all ranks; a second run waits)."""
    lock = FileLock(lock_path(out)) if rank == 0 else None
    if lock is not None:
        lock.acquire(notify=lambda m: tqdm.write(f"{m}, which embeds this task"))
    try:
        if world > 1:
            torch.distributed.barrier()
        yield
    finally:
        if lock is not None:
            lock.release()


def embed_task(
    spec: ModuleSpec,
    task_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool = True,
) -> EmbedResult:
    """Embed every clip of `task_dir` not yet cached, then consolidate the cache.

    The module is imported and loaded before anything is written; the cache dir is locked while
    clips are embedded, so a second process waits and then finds the cache complete.
    """
    start = time.perf_counter()
    task = load_task(task_dir)
    out = Path(out_dir) if out_dir else cache_dir(spec, task)
    if (out / DONE_MARKER).exists():
        return EmbedResult(out, 0, time.perf_counter() - start)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    module = import_hear_module(spec.module)
    local = int(os.environ.get("LOCAL_RANK", 0))
    dev = torch.device(device or (f"cuda:{local}" if torch.cuda.is_available() else "cpu"))
    model = load_hear_model(spec, module, dev)
    with _cache_lock(out, rank, world):
        writer = CacheWriter(task.path, out)
        if writer.done:  # another process finished it while this one waited
            return EmbedResult(out, 0, time.perf_counter() - start)
        if rank == 0:
            write_json(out / "embedding-source.json", spec.describe())
        done = sum(
            _embed_split(spec, module, model, dev, task, writer, split, progress)
            for split in task.splits
        )
        if world > 1:
            torch.distributed.barrier()
        if rank == 0:
            writer.finalise()
        if world > 1:
            torch.distributed.barrier()
    return EmbedResult(out, done, time.perf_counter() - start)


def _embed_split(spec, module, model, dev, task, writer, split, progress) -> int:
    """Embed this rank's unfinished clips of `split`; returns how many."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    rate = int(model.sample_rate)
    event = task.embedding_type == "event"
    by_name = {c.filename: c for c in task.clips[split]}
    # Shard the full, stable clip list (not the pending one, which other ranks change).
    unfinished = set(writer.pending(split))
    pending = [c.filename for c in task.clips[split][rank::world] if c.filename in unfinished]
    lengths = {}
    for name in pending:
        info = sf.info(task.wav_path(split, by_name[name], max(task.sample_rates)))
        lengths[name] = round(info.frames * rate / info.samplerate)
    bar = tqdm(
        total=len(pending),
        desc=f"{task.name} {split}",
        unit="clip",
        disable=not progress or rank != 0,
        leave=False,
    )
    done = 0
    for names in _batches(lengths, rate):
        audio = [read_clip(task, split, by_name[n], rate) for n in names]
        length = min(a.shape[-1] for a in audio)
        batch = _as_input([a[..., :length] for a in audio], spec.channel_policy).to(dev)
        with torch.no_grad():
            if event:
                emb, ts = module.get_timestamp_embeddings(batch, model)
            else:
                emb, ts = module.get_scene_embeddings(batch, model), None
        _check_output(spec, model, names, emb, ts, length)
        for i, name in enumerate(names):
            if event:
                writer.write_event(split, name, emb[i].cpu().numpy(), ts[i].cpu().numpy())
            else:
                writer.write_scene(split, name, emb[i].cpu().numpy())
        done += len(names)
        bar.update(len(names))
    bar.close()
    return done
