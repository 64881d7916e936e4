"""Wall-clock timing for cost tables and the inference fast path: one call timed at a time between accelerator
synchronisations with the garbage collector off, the median over repetitions, and for several candidates the
repetitions interleaved, so that load from elsewhere on the machine hits every candidate alike.

    latency_ms(lambda: model(x), repeats=10, device=x.device)          # median ms of one call
    interleaved_latency_ms({"a": fa, "b": fb}, repeats=15)             # {"a": ms, "b": ms}, rounds a b, b a, ...

(``torch.utils.benchmark.Timer.timeit(1)`` would do the same but call the statement twice more before each
measurement as its own warm-up: three calls per timed call.)
"""
from __future__ import annotations

import gc
import statistics
import time

import torch


def _sync(device: torch.device | None) -> None:
    """Wait for queued accelerator work (CUDA) before the clock is read."""
    if (device is None or torch.device(device).type == "cuda") and torch.cuda.is_available() \
            and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _once(fn, device: torch.device | None = None) -> float:
    """Seconds of exactly one call of ``fn``, the accelerator synchronised before and after, the garbage
    collector off meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


def latency_ms(fn, repeats: int = 10, warmup: int = 2, device: torch.device | None = None) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` calls after ``warmup`` calls (one call and
    none in a smoke run, :func:`rdlib.smoke.timing_calls`)."""
    from rdlib.smoke import timing_calls

    repeats, warmup = timing_calls(repeats, warmup)
    for _ in range(warmup):
        fn()
    return 1e3 * statistics.median(_once(fn, device) for _ in range(max(1, repeats)))


def interleaved_latency_ms(fns: dict, repeats: int = 10, warmup: int = 1,
                           device: torch.device | None = None) -> dict[str, float]:
    """Median milliseconds of each of ``fns`` (name → callable), the calls interleaved round by round with the
    order rotated each round, so that a slow spell of the machine does not fall on one candidate only (one round
    and no warm-up in a smoke run, :func:`rdlib.smoke.timing_calls`)."""
    from rdlib.smoke import timing_calls

    repeats, warmup = timing_calls(repeats, warmup)
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    times = {n: [] for n in names}
    for r in range(max(1, repeats)):
        for n in names[r % len(names):] + names[:r % len(names)]:
            times[n].append(_once(fns[n], device))
    return {n: 1e3 * statistics.median(t) for n, t in times.items()}


__all__ = ["interleaved_latency_ms", "latency_ms"]
