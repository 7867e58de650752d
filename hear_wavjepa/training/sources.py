"""`data.path` resolved for streaming: tar shards, a TSV manifest of audio files, or a folder.

* shards: a brace pattern (`/data/audioset/unbal_train{000..869}.tar`), several patterns joined
  with "::" (webdataset's convention), a glob, or a folder holding .tar files; every named shard
  must exist;
* a manifest (`.tsv`, fairseq's convention): the first line is the root folder, every further line
  `relative/path<TAB>num_samples` (the count is not needed and may be absent);
* a folder or glob of audio files, streamed file by file with `data.format: stream`.

`data.format: auto` streams shards and manifests and decodes folders and globs of audio files once
into the memory-mapped corpus (`decoded_corpus.py`).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from webdataset.shardlists import expand_urls

from hear_wavjepa.training.decoded_corpus import AUDIO_SUFFIXES, CorpusError


@dataclass(frozen=True)
class StreamSource:
    """What a stream reads: `units` are tar shards (kind "shards", many clips each) or audio
    files (kind "files", one clip each)."""

    spec: str
    kind: str
    units: tuple[str, ...]


def _is_manifest(spec: str) -> bool:
    return spec.lower().endswith(".tsv") and Path(spec).expanduser().is_file()


def _is_pattern(spec: str) -> bool:
    return "{" in spec or "::" in spec or spec.lower().endswith(".tar")


def stream_format(spec: str, fmt: str) -> str:
    """The data format, "stream" or "memmap", for `data.path` `spec` under `data.format` `fmt`."""
    if fmt != "auto":
        if fmt == "memmap" and (_is_manifest(spec) or "{" in spec or "::" in spec):
            raise CorpusError(
                f"{spec}: brace patterns and manifests are streamed; set data.format=stream"
            )
        return fmt
    if _is_manifest(spec) or _is_pattern(spec):
        return "stream"
    path = Path(spec).expanduser()
    if path.is_dir() and next(path.rglob("*.tar"), None) is not None:
        return "stream"
    return "memmap"


def read_manifest(path: Path) -> tuple[str, ...]:
    """Audio paths of a fairseq-style TSV manifest (root line, then `relative<TAB>samples`)."""
    lines = path.read_text().splitlines()
    if not lines or not lines[0].strip():
        raise CorpusError(f"{path}: an empty manifest (the first line names the root folder)")
    root = Path(lines[0].strip()).expanduser()
    files = tuple(str(root / line.split("\t")[0]) for line in lines[1:] if line.strip())
    if not files:
        raise CorpusError(f"{path}: the manifest lists no audio files")
    return files


def find_stream(spec: str) -> StreamSource:
    """The shards or files of `spec`; a missing shard is a CorpusError naming it."""
    if not spec:
        raise CorpusError("data.path is empty: give .tar shards, a .tsv manifest or a folder")
    if _is_manifest(spec):
        return StreamSource(spec, "files", read_manifest(Path(spec).expanduser()))
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.is_file())
    elif _is_pattern(spec):
        files = []
        for name in expand_urls(spec):
            found = sorted(glob.glob(str(Path(name).expanduser())))
            if not found:
                raise CorpusError(f"{name}: no such shard (data.path {spec})")
            files.extend(found)
    else:
        files = sorted(glob.glob(str(path), recursive=True))
    shards = tuple(f for f in files if f.lower().endswith(".tar"))
    if shards:
        return StreamSource(spec, "shards", shards)
    audio = tuple(f for f in files if f.lower().endswith(AUDIO_SUFFIXES))
    if not audio:
        raise CorpusError(f"{spec}: no .tar shards or audio files ({', '.join(AUDIO_SUFFIXES)})")
    return StreamSource(spec, "files", audio)
