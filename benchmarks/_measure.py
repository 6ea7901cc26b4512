"""Timing and agreement measures shared by the benchmarks that compare a kernel with a peer library's."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np


def median_seconds(fn: Callable[[], object], repeats: int, warmup: bool = True) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``fn``; ``warmup`` first makes one untimed call (caches,
    thread pools), for callers that have not already run ``fn`` on the same input."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """Largest entrywise difference from ``ref`` over ``ref``'s largest magnitude, in float64 (any float ``ours``)."""
    return float(np.max(np.abs(ours.astype(np.float64) - ref)) / np.max(np.abs(ref)))
