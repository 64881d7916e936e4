"""Wall-clock timing for cost tables and the inference fast path: one call timed at a time between CUDA
synchronisations (when the device is a CUDA one) with the garbage collector off, on one CPU thread unless told
otherwise, the median over repetitions, and for several candidates the repetitions interleaved, so that load from
elsewhere on the machine hits every candidate alike.

    latency_ms(lambda: model(x), repeats=10, device=x.device)          # median ms of one call
    interleaved_latency_ms({"a": fa, "b": fb}, repeats=15)             # {"a": ms, "b": ms}, rounds a b, b a, ...

One thread is also ``torch.utils.benchmark.Timer``'s default; its ``timeit(1)``, though, calls the statement twice
more before each measurement as its own warm-up (three calls per timed call), which these functions do not.
"""
from __future__ import annotations

import contextlib
import gc
import statistics
import time

import torch


def _fence(device: torch.device | str | None):
    """A function that waits for the CUDA work queued on ``device`` (``None``: the current CUDA device, where
    CUDA is in use), or does nothing on a CPU."""
    if device is not None and torch.device(device).type != "cuda":
        return lambda: None
    target = None if device is None else torch.device(device)

    def fence():
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize(target)
    return fence


@contextlib.contextmanager
def _threads(n: int | None):
    """``torch``'s CPU thread count set to ``n`` meanwhile (``None``: left as it is)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _once(fn, fence) -> float:
    """Seconds of exactly one call of ``fn``, ``fence`` (:func:`_fence`) before and after it, the garbage
    collector off meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        fence()
        start = time.perf_counter()
        fn()
        fence()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


def latency_ms(fn, repeats: int = 10, warmup: int = 2, device: torch.device | None = None,
               threads: int | None = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` calls after ``warmup`` calls (one call and
    none in a smoke run, :func:`rdlib.smoke.timing_calls`), on ``threads`` CPU threads (``None``: the process's)."""
    return interleaved_latency_ms({"fn": fn}, repeats, warmup, device, threads)["fn"]


def interleaved_latency_ms(fns: dict, repeats: int = 10, warmup: int = 1, device: torch.device | None = None,
                           threads: int | None = 1) -> dict[str, float]:
    """Median milliseconds of each of ``fns`` (name → callable), the calls interleaved round by round with the
    order rotated each round, so that a slow spell of the machine does not fall on one candidate only (one round
    and no warm-up in a smoke run, :func:`rdlib.smoke.timing_calls`), on ``threads`` CPU threads as
    :func:`latency_ms`."""
    from rdlib.smoke import timing_calls

    repeats, warmup = timing_calls(repeats, warmup)
    names, fence = list(fns), _fence(device)
    times = {n: [] for n in names}
    with _threads(threads):
        for _ in range(warmup):
            for n in names:
                fns[n]()
        for r in range(max(1, repeats)):
            for n in names[r % len(names):] + names[:r % len(names)]:
                times[n].append(_once(fns[n], fence))
    return {n: 1e3 * statistics.median(t) for n, t in times.items()}


__all__ = ["interleaved_latency_ms", "latency_ms"]
