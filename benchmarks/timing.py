"""Timing helper shared by the benchmark scripts (run by hand, never in the test suite)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], repeat: int, *, warmup: bool = True) -> float:
    """Median wall time in seconds of ``repeat`` calls of ``fn``, after one uncounted warm-up call.

    The warm-up gives every contender warm OS file caches and initialised libraries, so the
    comparison measures the steady state a user reading a sequence of files sees.
    """
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
