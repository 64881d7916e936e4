"""Timing helper shared by the benchmark scripts: the median wall time of ``fn`` after warm-up calls, in seconds
(``rdlib.timing``: single calls between CUDA synchronisations, on one CPU thread, the garbage collector off)."""
from __future__ import annotations

from rdlib.timing import latency_ms


def median_seconds(fn, warmup: int = 1, reps: int = 3) -> float:
    return latency_ms(fn, repeats=reps, warmup=warmup) / 1e3
