"""Real recordings from Debian packages: fetch (`apt-get download`, no install), verify md5, cache.

The curated list (`tasks/mini_real_sounds.csv`: label, package, path, md5) names every file;
nothing is matched by pattern. A file whose md5 differs from the list (another package version) is
skipped and counted, never guessed. Verified files are cached as 16 kHz mono FLAC under
`<sources>/real/<md5>.flac`, with one `<package>.json` index per package; the .deb and its
unpacked tree are deleted.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from hear_wavjepa.audio import to_mono_16k, to_pcm16, write_flac
from hear_wavjepa.builders.debian import read_index, unpacked_package, write_index


@dataclass(frozen=True)
class Recording:
    """One listed file: its class label, Debian package, path inside the package and md5."""

    label: str
    package: str
    path: str
    md5: str


def read_list(path: Path) -> list[Recording]:
    """Read the curated list; raises ValueError naming the file on a malformed row."""
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != ["label", "package", "path", "md5"]:
            raise ValueError(f"{path}: header must be label,package,path,md5")
        rows = [Recording(r["label"], r["package"], r["path"], r["md5"]) for r in reader]
    if len({r.md5 for r in rows}) != len(rows):
        raise ValueError(f"{path}: duplicate md5 (the list must be deduplicated)")
    return rows


class SoundCache:
    """Converted recordings under `root/real/`, fetched package by package on demand."""

    def __init__(self, root: Path):
        self.dir = Path(root) / "real"

    def index(self, package: str) -> dict | None:
        return read_index(self.dir / f"{package}.json")

    def fetch(self, package: str, wanted: list[Recording]) -> dict:
        """Make sure every verifiable file of `package` is cached; returns the package index."""
        known = self.index(package)
        if known is not None:
            return known
        with unpacked_package(package, self.dir) as (version, tree):
            ok, mismatch, missing = [], [], []
            for rec in wanted:
                src = tree / rec.path.lstrip("/")
                if not src.is_file():
                    missing.append(rec.path)
                    continue
                if hashlib.md5(src.read_bytes()).hexdigest() != rec.md5:
                    mismatch.append(rec.path)
                    continue
                audio, rate = soundfile.read(str(src), dtype="float32", always_2d=True)
                write_flac(self.dir / f"{rec.md5}.flac", to_pcm16(to_mono_16k(audio, rate)))
                ok.append(rec.md5)
        index = {"package": package, "version": version, "ok": sorted(ok),
                 "md5_mismatch": sorted(mismatch), "missing": sorted(missing)}  # fmt: skip
        write_index(self.dir / f"{package}.json", index)
        return index

    def load(self, md5: str) -> np.ndarray:
        """A cached recording as float32 (samples,) at 16 kHz."""
        audio, _ = soundfile.read(str(self.dir / f"{md5}.flac"), dtype="float32")
        return audio


def fetch_recordings(
    cache: SoundCache, recordings: list[Recording], packages: list[str]
) -> tuple[list[Recording], dict[str, dict]]:
    """Fetch `packages`; returns the verified recordings among them and each package's index."""
    indexes, verified = {}, []
    for package in packages:
        wanted = [r for r in recordings if r.package == package]
        indexes[package] = cache.fetch(package, wanted)
        good = set(indexes[package]["ok"])
        verified += [r for r in wanted if r.md5 in good]
    return verified, indexes
