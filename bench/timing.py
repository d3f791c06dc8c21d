"""The benchmarks' timing loop. It imports nothing from the project, so bench/ab.py can time another revision's
code without putting this tree's modules ahead of it."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def timeit(fn: Callable[[], object], reps: int, warmup: int = 2) -> tuple[float, float, float]:
    """(median, min, max) seconds of `reps` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), float(np.min(ts)), float(np.max(ts))
