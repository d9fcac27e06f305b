"""Timing for the benchmark scripts: median CPU and wall seconds of repeated calls."""
from __future__ import annotations

import statistics
import time


def timed(func, repeat: int, warmup: bool | None = None) -> tuple:
    """Median CPU and wall seconds of ``repeat`` calls of ``func``, the minimum wall time and the last
    result.  ``warmup``: one untimed call first (default: when ``repeat`` > 1)."""
    out = func() if (repeat > 1 if warmup is None else warmup) else None
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        out = func()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(cpu), statistics.median(wall), min(wall), out
