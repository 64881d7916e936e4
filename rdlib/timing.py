"""Wall-clock timing for cost tables and the inference fast path: ``torch.utils.benchmark.Timer`` (which
synchronises the accelerator around each measurement and disables the garbage collector while it times), the median over repetitions, and for several
candidates the repetitions interleaved, so that load from elsewhere on the machine hits every candidate alike.

    latency_ms(lambda: model(x), repeats=10, device=x.device)          # median ms of one call
    interleaved_latency_ms({"a": fa, "b": fb}, repeats=15)             # {"a": ms, "b": ms}, rounds a b, b a, ...
"""
from __future__ import annotations

import logging
import statistics

import torch


def _timer_class():
    """``torch.utils.benchmark.Timer``, imported without the warning its import logs on a machine without CUDA
    ("No CUDA runtime is found ...", from ``torch.utils.cpp_extension``: noise in every notebook that times)."""
    quiet = logging.getLogger("torch.utils.cpp_extension")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        from torch.utils.benchmark import Timer
    finally:
        quiet.setLevel(level)
    return Timer


def _once(fn, device: torch.device | None = None) -> float:
    """Seconds of one call of ``fn``; the Timer synchronises the accelerator, when there is one, before reading the
    clock (``device`` is kept for callers that name it)."""
    return _timer_class()(stmt="fn()", globals={"fn": fn}).timeit(1).median


def latency_ms(fn, repeats: int = 10, warmup: int = 2, device: torch.device | None = None) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    return 1e3 * statistics.median(_once(fn, device) for _ in range(max(1, repeats)))


def interleaved_latency_ms(fns: dict, repeats: int = 10, warmup: int = 1,
                           device: torch.device | None = None) -> dict[str, float]:
    """Median milliseconds of each of ``fns`` (name → callable), the calls interleaved round by round with the
    order rotated each round, so that a slow spell of the machine does not fall on one candidate only."""
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
