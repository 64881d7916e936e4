"""Smoke runs: a profile's whole code path with its budgets cut to one unit — one switch, ``RDLIB_SMOKE=1``.

The `paper` and `full` profiles are meant for a GPU with the papers' ImageNet teachers; nobody can afford to find
their broken cell there. With ``RDLIB_SMOKE=1`` in the environment, :func:`rdlib.methods.method_profile` returns
every profile with

* every budget option (:data:`rdlib.methods.base.BUDGET_OPTIONS`, in the profile's options and in its per-category options) set to
  :data:`SMOKE_BUDGET`, so a run is one epoch or one optimizer step per stage, and
* the teacher's ``weights`` set to ``"random"``: the same architecture, feature sizes and memory, no download,

and everything else as the profile says: image size, teacher, batch size, data configuration, per-category options,
checkpoint and selection rules. Options are part of a run's key, so a smoke run is never reused as a real one.
``make test`` executes the chapters this way on generated trees in each dataset layout (``tests/test_smoke.py``);
a reader can do the same before paying for a GPU: ``RDLIB_SMOKE=1 python notebooks/_run.py --profile paper
-p DATA_ROOT=...``.

Outside the profiles, every wall-clock measurement (:mod:`rdlib.timing`: cost tables, throughput columns, the
compile probe) is one timed call without warm-up in a smoke run (:func:`timing_calls`): its timings measure
nothing, only the code that takes them runs.
"""
from __future__ import annotations

import os

from rdlib.methods.base import BUDGET_OPTIONS

ENV = "RDLIB_SMOKE"
SMOKE_BUDGET = 1


def active() -> bool:
    """Whether ``RDLIB_SMOKE=1`` is set (any other value, or none, is off)."""
    return os.environ.get(ENV, "0") == "1"


def timing_calls(repeats: int, warmup: int) -> tuple[int, int]:
    """``(repeats, warmup)`` for a wall-clock measurement: as given, or ``(1, 0)`` in a smoke run."""
    return (1, 0) if active() else (repeats, warmup)


def scaled(options: dict) -> dict:
    """``options`` with every budget option present set to :data:`SMOKE_BUDGET` (never raised: a budget of 0 stays
    0, e.g. RD-RE without its segmentation stage) and the teacher's weights random; a copy."""
    out = {k: (min(v, SMOKE_BUDGET) if k in BUDGET_OPTIONS and isinstance(v, int) else v) for k, v in options.items()}
    out["weights"] = "random"
    return out


def scaled_profile(profile: dict) -> dict:
    """A method profile (``{"options", "fit"[, "category_options"]}``) scaled for a smoke run: its options by
    :func:`scaled`, its per-category options' budgets likewise, its loop settings as they are."""
    out = {**profile, "options": scaled(profile.get("options", {}))}
    if "category_options" in profile:
        out["category_options"] = {cat: {k: (min(v, SMOKE_BUDGET) if k in BUDGET_OPTIONS and isinstance(v, int) else v)
                                         for k, v in opts.items()}
                                   for cat, opts in profile["category_options"].items()}
    return out


__all__ = ["BUDGET_OPTIONS", "ENV", "SMOKE_BUDGET", "active", "scaled", "scaled_profile", "timing_calls"]
