"""Timing helpers shared by the benchmarks and `lathe demo`: wall-clock warm-up, medians, ratios.

These VMs are shared and noisy, and the first second of a 2-thread burst can
run 3x slower, so every timer warms up by wall time and reports medians of
interleaved runs; only ratios measured in one process are meaningful.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def warm(fn: Callable[[], object], seconds: float = 1.0) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        fn()


def interleaved_medians(
    fns: dict[str, Callable[[], object]],
    repeat: int = 50,
    warmup: float = 1.0,
    block: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median seconds per call of each fn. Contenders alternate in blocks of `block`
    calls (the first call of each block untimed), so machine drift hits all alike
    while each block runs with its own data in cache, as a model's steady state does.
    `clock=time.thread_time` times one-thread contenders by the caller's CPU time, which
    other processes on the same cores do not inflate as they do wall time."""
    for fn in fns.values():
        warm(fn, warmup)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(max(1, repeat // block)):
        for name, fn in fns.items():
            time.sleep(0.2)  # let the other contender's spinning worker threads go idle
            fn()
            for _ in range(block):
                t0 = clock()
                fn()
                times[name].append(clock() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def fmt(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:8.3f} ms"
