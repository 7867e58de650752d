"""Where a result came from: the git commit of the checkout this package runs from."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_commit() -> str | None:
    """HEAD of the source checkout this package is imported from, with "+dirty" if it has
    uncommitted changes; None for an installed wheel (a package folder that is not the top of a
    git work tree's `hear_wavjepa/`)."""
    package = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(package), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return out.stdout.strip()

    try:
        top = git("rev-parse", "--show-toplevel")
        if Path(top).resolve() / package.name != package:
            return None
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None
