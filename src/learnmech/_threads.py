"""Thread control for small tensor work.

Small ops on a machine whose cores are busy (2 cores, several processes: the runner's pool, CI) spend most of
their time with torch's intra-op threads spinning on each other: measured 10-100x slower with 2 threads than with
one on a loaded 2-core machine. So code that does small linear algebra pins one thread, scoped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch ops inside the block on one intra-op thread, restoring the previous setting afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
