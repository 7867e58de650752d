"""Debian packages as a source of recordings: download one (`apt-get download`, nothing is
installed), read its version, unpack it into a temporary folder that is deleted afterwards; the
converted recordings and each package's JSON index are written atomically.

Used by the mini suite's real recordings (`builders/mini/sources.py`) and the synthetic
pretraining corpus (`builders/synthetic_corpus.py`).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hear_wavjepa.atomicio import write_json


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


@contextmanager
def unpacked_package(package: str, cache: Path) -> Iterator[tuple[str, Path]]:
    """(version, folder of the unpacked package tree), in a temporary folder under `cache`."""
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".fetch-{package}-") as tmp:
        work = Path(tmp)
        deb = download_package(package, work)
        version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                                 text=True, check=True).stdout.strip()  # fmt: skip
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "x")], check=True)
        yield version, work / "x"


def read_index(path: Path) -> dict[str, Any] | None:
    """A package's index, or None before it was fetched."""
    return json.loads(path.read_text()) if path.is_file() else None


def write_index(path: Path, index: dict[str, Any]) -> None:
    """The package index (sorted keys, one-space indent), written last: it marks the fetch done."""
    write_json(path, index)
