"""Timing helpers for benchmarks: medians of repeated runs, ratios, a plain table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> tuple[float, object]:
    """Median wall time of ``fn()`` over ``repeats`` runs (after ``warmup``), and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def interleaved(fns: dict[str, Callable[[], object]], repeats: int = 5) -> dict[str, tuple[float, object]]:
    """Time several contenders in alternation (A B A B ...) so that load on a shared machine
    hits them alike; returns name -> (median seconds, last result)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    results: dict[str, object] = {}
    for fn_name, fn in fns.items():  # warm-up
        results[fn_name] = fn()
    for _ in range(repeats):
        for fn_name, fn in fns.items():
            start = time.perf_counter()
            results[fn_name] = fn()
            times[fn_name].append(time.perf_counter() - start)
    return {k: (statistics.median(v), results[k]) for k, v in times.items()}
