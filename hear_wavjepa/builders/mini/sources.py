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
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from hear_wavjepa.builders.mini.signal import SAMPLE_RATE, to_mono_16k, to_pcm16


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


def download_package(package: str, workdir: Path) -> Path:
    result = subprocess.run(["apt-get", "download", package], cwd=workdir,
                            capture_output=True, text=True, check=False)  # fmt: skip
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        raise RuntimeError(
            f"apt-get download {package} failed ({result.stderr.strip()[-300:]}); "
            "run `apt-get update` (and check network access to the Debian mirror)"
        )
    return debs[0]


class SoundCache:
    """Converted recordings under `root/real/`, fetched package by package on demand."""

    def __init__(self, root: Path):
        self.dir = Path(root) / "real"

    def index(self, package: str) -> dict | None:
        path = self.dir / f"{package}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def fetch(self, package: str, wanted: list[Recording]) -> dict:
        """Make sure every verifiable file of `package` is cached; returns the package index."""
        known = self.index(package)
        if known is not None:
            return known
        self.dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.dir, prefix=f".fetch-{package}-") as tmp:
            work = Path(tmp)
            deb = download_package(package, work)
            version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                                     text=True, check=True).stdout.strip()  # fmt: skip
            subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "x")], check=True)
            ok, mismatch, missing = [], [], []
            for rec in wanted:
                src = work / "x" / rec.path.lstrip("/")
                if not src.is_file():
                    missing.append(rec.path)
                    continue
                if hashlib.md5(src.read_bytes()).hexdigest() != rec.md5:
                    mismatch.append(rec.path)
                    continue
                audio, rate = soundfile.read(str(src), dtype="float32", always_2d=True)
                target = self.dir / f"{rec.md5}.flac"
                part = target.with_suffix(".flac.part")
                soundfile.write(part, to_pcm16(to_mono_16k(audio, rate)), SAMPLE_RATE,
                                subtype="PCM_16", format="FLAC")  # fmt: skip
                part.replace(target)
                ok.append(rec.md5)
        index = {"package": package, "version": version, "ok": sorted(ok),
                 "md5_mismatch": sorted(mismatch), "missing": sorted(missing)}  # fmt: skip
        part = self.dir / f"{package}.json.part"
        part.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
        part.replace(self.dir / f"{package}.json")
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
