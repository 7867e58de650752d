"""A pretraining corpus decoded once into a memory-mapped float16 array of 10 s clips.

Sources are audio files (wav/flac/ogg, any rate and channel count) found under a folder, by a
glob, or as members of WebDataset-style .tar shards. Each source becomes one clip
(docs/pretraining.md):
channel 0 (or the first two channels for a 2-channel corpus; mono is repeated), resampled to
16 kHz with the "kaiser_best" sinc, scaled to an RMS of -14 dBFS, zero-padded or cut to 10 s.
The decoded array lives under a key of the source list and the decoding settings, so a second
run (or every rank of a distributed run) reuses it, and training reads clips by random access.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from hear_wavjepa.audio import SAMPLE_RATE, resample

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class CorpusError(ValueError):
    """A corpus that cannot be built; the message names the path and the problem."""


@dataclass(frozen=True)
class Source:
    """One clip's origin: a file, or a member of a tar shard (`member` set)."""

    path: str
    member: str = ""

    @property
    def name(self) -> str:
        return f"{self.path}::{self.member}" if self.member else self.path


def find_sources(spec: str) -> list[Source]:
    """Sources of `spec`: a folder (recursive), a glob, an audio file or a .tar shard, sorted."""
    if not spec:
        raise CorpusError("data.path is empty: give a folder, a glob or .tar shards of audio")
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    elif path.is_file():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files and not any(ch in spec for ch in "*?["):
            raise CorpusError(f"{spec}: no such file or folder")
    sources: list[Source] = []
    for file in files:
        suffix = file.suffix.lower()
        if suffix in AUDIO_SUFFIXES:
            sources.append(Source(str(file)))
        elif suffix == ".tar":
            sources.extend(_tar_sources(file))
    if not sources:
        raise CorpusError(
            f"{spec}: no audio files ({', '.join(AUDIO_SUFFIXES)}) or .tar shards of them found"
        )
    return sources


def _tar_sources(shard: Path) -> list[Source]:
    try:
        with tarfile.open(shard) as tar:
            members = [m.name for m in tar.getmembers() if m.isfile()]
    except (tarfile.TarError, OSError) as exc:
        raise CorpusError(f"{shard}: not a readable tar shard: {exc}") from exc
    return [Source(str(shard), m) for m in sorted(members) if m.lower().endswith(AUDIO_SUFFIXES)]


def read_source(source: Source) -> tuple[np.ndarray, int]:
    """(samples (channels, frames) float32, sample rate); CorpusError names the source."""
    try:
        if source.member:
            with tarfile.open(source.path) as tar:
                handle = tar.extractfile(source.member)
                if handle is None:
                    raise OSError("member is not a regular file")
                return decode_audio(handle.read(), source.name)
        return decode_audio(source.path, source.name)
    except (OSError, tarfile.TarError, KeyError) as exc:
        raise CorpusError(f"{source.name}: cannot decode audio: {exc}") from exc


def decode_audio(data: bytes | str, name: str) -> tuple[np.ndarray, int]:
    """Encoded audio bytes (or a file path) -> ((channels, frames) float32, rate); CorpusError
    names `name`."""
    try:
        if isinstance(data, bytes):
            data = io.BytesIO(data)
        samples, rate = sf.read(data, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise CorpusError(f"{name}: cannot decode audio: {exc}") from exc
    if samples.shape[0] == 0:
        raise CorpusError(f"{name}: the file holds no samples")
    if not np.isfinite(samples).all():
        raise CorpusError(f"{name}: the audio holds NaN or infinite samples")
    return np.ascontiguousarray(samples.T), int(rate)


def condition(
    samples: np.ndarray, rate: int, channels: int, clip_samples: int, loudness_dbfs: float
) -> np.ndarray:
    """(C_in, frames) at `rate` -> (channels, clip_samples) float32 at 16 kHz (see
    docs/pretraining.md)."""
    if channels == 1 or samples.shape[0] == 1:
        picked = np.repeat(samples[:1], channels, axis=0)
    else:
        picked = samples[:channels]
    wave = torch.from_numpy(np.ascontiguousarray(picked))
    if rate != SAMPLE_RATE:
        wave = resample(wave, rate, quality="kaiser_best")
    rms = float(wave.pow(2).mean().sqrt())
    if rms > 0:
        wave = wave * 10 ** ((loudness_dbfs - 20 * np.log10(rms)) / 20)
    out = np.zeros((channels, clip_samples), dtype=np.float32)
    length = min(clip_samples, wave.shape[-1])
    out[:, :length] = wave[:, :length].numpy()
    return out


class Corpus:
    """Decoded clips (len, channels, clip_samples) float16, memory-mapped read-only."""

    def __init__(self, folder: Path) -> None:
        meta = json.loads((folder / "corpus.json").read_text())
        self.folder = folder
        self.names: list[str] = meta["sources"]
        self.channels: int = meta["channels"]
        self.clip_samples: int = meta["clip_samples"]
        shape = (len(self.names), self.channels, self.clip_samples)
        self.clips = np.memmap(folder / "clips.f16", dtype=np.float16, mode="r", shape=shape)

    def __len__(self) -> int:
        return len(self.names)

    def clip(self, index: int) -> np.ndarray:
        """(channels, clip_samples) float32."""
        return np.asarray(self.clips[index], dtype=np.float32)


def corpus_key(sources: list[Source], settings: dict) -> str:
    """sha256 over the settings and every source's name, size and modification time."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for source in sources:
        stat = os.stat(source.path)
        digest.update(f"{source.name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def decode_corpus(
    spec: str,
    cache_dir: Path,
    *,
    channels: int,
    clip_seconds: float,
    loudness_dbfs: float,
    skip_unreadable: bool = False,
    progress: bool = True,
) -> Path:
    """Decode the sources of `spec` into `cache_dir/<key>/` (once) and return that folder."""
    sources = find_sources(spec)
    clip_samples = round(clip_seconds * SAMPLE_RATE)
    settings = {
        "channels": channels,
        "clip_samples": clip_samples,
        "loudness_dbfs": loudness_dbfs,
        "sample_rate": SAMPLE_RATE,
        "skip_unreadable": skip_unreadable,
        "version": 1,
    }
    folder = Path(cache_dir) / corpus_key(sources, settings)
    if (folder / "corpus.json").is_file():
        return folder
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        # Rows left by skipped sources stay unused at the end; readers map only the kept rows.
        clips = np.memmap(
            tmp / "clips.f16",
            dtype=np.float16,
            mode="w+",
            shape=(len(sources), channels, clip_samples),
        )
        kept: list[str] = []
        for source in tqdm(sources, desc=f"decoding corpus {spec}", disable=not progress):
            try:
                clip = condition(*read_source(source), channels, clip_samples, loudness_dbfs)
            except CorpusError as exc:
                if not skip_unreadable:
                    raise
                warnings.warn(f"skipping {exc}", stacklevel=2)
                continue
            clips[len(kept)] = clip
            kept.append(source.name)
        if not kept:
            raise CorpusError(f"{spec}: none of the {len(sources)} audio files could be decoded")
        clips.flush()
        del clips
        meta = {**settings, "spec": spec, "sources": kept}
        (tmp / "corpus.json").write_text(json.dumps(meta, indent=1))
        try:
            tmp.rename(folder)
        except OSError:  # another process finished the same corpus first
            if not (folder / "corpus.json").is_file():
                raise
    finally:
        if tmp.exists():
            for child in tmp.iterdir():
                child.unlink()
            tmp.rmdir()
    return folder
