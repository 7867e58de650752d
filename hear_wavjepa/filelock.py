"""Lock files: one process at a time works on an embedding cache or a task's results.

A lock is an exclusive `flock` on a file that names its owner (pid, host, start time). The kernel
drops the lock when the owner exits, however it exits, so a killed run never leaves a stale lock;
the file is removed on release. A second process either waits (with a message naming the owner)
or, with `wait=False`, is told the lock is busy and can move on. POSIX only (`fcntl`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def owner(path: str | os.PathLike) -> str:
    """Who holds the lock at `path`, as its file says ("unknown" while it is being written)."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return "unknown"
    return text or "unknown"


class FileLock:
    """An exclusive lock on `path` (created on demand, removed on release); not reentrant."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait: bool = True, notify: Callable[[str], None] | None = _stderr) -> bool:
        """Take the lock; True once held. If another process holds it: with `wait`, say so via
        `notify` and block until it is free; without, return False at once."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: lock already held by this object")
        told = False
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    os.close(fd)
                    return False
                if not told and notify is not None:
                    notify(f"waiting for {self.path}: held by {owner(self.path)}")
                    told = True
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
            if self._is_current(fd):
                break
            os.close(fd)  # the owner released (and removed) this file meanwhile: lock anew
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {now}\n".encode())
        self._fd = fd
        return True

    def _is_current(self, fd: int) -> bool:
        """True if `fd` is still the file at `path` (not one a releasing owner unlinked)."""
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the lock file and drop the lock (a no-op when not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
