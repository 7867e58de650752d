"""How many intra-op threads the protocols use on CPU (docs/scale.md, CPU threads).

torch's OpenMP threads wait for each other after every operation. When the machine's cores are
busy with other work, a thread that waits for a descheduled sibling burns its time slice, and the
protocols run thousands of small operations per second: on this project's shared 2-core machine,
loaded by other jobs, two threads made the HEAR MLP 3× slower in wall and CPU time than one. The
thread count also changes the last bits of matrix products, so it is never chosen from the
momentary load: the MLP and kNN take `HEAR_WAVJEPA_THREADS` threads if that is set (set it to 1 on
a shared machine), else torch's default; the linear probe always takes one (its batches of 32
rows are far below the size where a second thread pays off).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

ENV = "HEAR_WAVJEPA_THREADS"


def protocol_threads() -> int:
    """`HEAR_WAVJEPA_THREADS`, else torch's thread count."""
    value = os.environ.get(ENV)
    if value:
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ValueError(f"{ENV} must be a positive integer, got {value!r}")
        return threads
    return torch.get_num_threads()


@contextmanager
def cpu_threads(device: torch.device | str, threads: int | None = None) -> Iterator[int]:
    """Run the block with `threads` (default `protocol_threads()`) intra-op threads when
    `device` is the CPU, restoring torch's count afterwards; yields the count in use."""
    before = torch.get_num_threads()
    if torch.device(device).type != "cpu":
        yield before
        return
    threads = threads or protocol_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
