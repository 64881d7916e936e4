"""Intervals for results over categories × seeds, with the unit of analysis a claim is about.

A result is a long table (variant, category, seed, metric). Seeds of one category are not independent evidence
about another category: categories differ in how much a change helps them. So the interval of a mean (or of a
paired difference) takes as its unit

* **the category**, when there are two or more: each category's mean over its seeds is one observation, and the
  95 % interval is the t-interval over categories (df = categories − 1). The statement is about categories like
  these; seeds only make each category's value less noisy.
* **the seed**, when there is one category: the seeds are the observations (df = seeds − 1) and the statement is
  about *that category only*.

This is calibrated at the small designs the book uses (1 × 3, 3 × 3, 5 × 1, 5 × 3): ``tests/test_stats.py``
simulates zero effects, also with effects that differ by category, and checks the false-verdict rate (≤ 5 %) and
the coverage of a known effect. A percentile bootstrap is not: over three seeds it returns [min, max] of three
values, which excludes zero a quarter of the time when nothing differs.

:func:`detectable_effect` gives the smallest true effect a design detects with 80 % power at its observed spread.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _st

LEVEL = 0.95
POWER = 0.80


@dataclass(frozen=True)
class Interval:
    """The mean of ``n`` unit values (categories or seeds) and its t-interval."""

    mean: float
    low: float
    high: float
    se: float                   # standard error of the mean (NaN with one unit)
    n: int                      # units
    unit: str                   # "category" or "seed"

    @property
    def df(self) -> int:
        return self.n - 1

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2


def t_interval(values, unit: str = "unit", level: float = LEVEL) -> Interval:
    """Mean of ``values`` (NaN dropped) and its ``level`` t-interval; low = high = NaN with fewer than two values."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    n = len(v)
    if n == 0:
        return Interval(np.nan, np.nan, np.nan, np.nan, 0, unit)
    mean = float(v.mean())
    if n == 1:
        return Interval(mean, np.nan, np.nan, np.nan, 1, unit)
    se = float(v.std(ddof=1) / math.sqrt(n))
    half = float(_st.t.ppf(0.5 + level / 2, n - 1)) * se
    return Interval(mean, mean - half, mean + half, se, n, unit)


def unit_values(cells: pd.Series) -> tuple[np.ndarray, str]:
    """Values indexed by (category, seed) → the observations of the unit of analysis: per-category means over seeds
    when there are two or more categories, else the seeds' values."""
    cells = cells.dropna()
    per_cat = cells.groupby(level="category", sort=False)
    if per_cat.ngroups >= 2:
        return per_cat.mean().to_numpy(float), "category"
    return cells.to_numpy(float), "seed"


def interval(cells: pd.Series, level: float = LEVEL) -> Interval:
    """The interval of the mean of values indexed by (category, seed), with the unit of :func:`unit_values`."""
    values, unit = unit_values(cells)
    return t_interval(values, unit, level)


def detectable_effect(iv: Interval, power: float = POWER, level: float = LEVEL) -> float:
    """The smallest true effect this design detects (two-sided ``level``) with probability ``power``, at the spread
    it observed: (t_{1−α/2} + t_{power}) × se with df = units − 1. NaN with fewer than two units."""
    if iv.n < 2 or not np.isfinite(iv.se):
        return np.nan
    df = iv.n - 1
    return float((_st.t.ppf(0.5 + level / 2, df) + _st.t.ppf(power, df)) * iv.se)


def mean_intervals(results: pd.DataFrame, metrics) -> pd.DataFrame:
    """Per (variant, metric): the mean over categories and seeds and its 95 % interval (:func:`interval`) —
    columns variant, metric, mean, low, high, unit, runs, of (NaN where every run failed)."""
    rows = []
    for variant, g in results.groupby("variant", sort=False):
        for m in metrics:
            iv = interval(g.set_index(["category", "seed"])[m].astype(float))
            rows.append({"variant": variant, "metric": m, "mean": iv.mean, "low": iv.low, "high": iv.high,
                         "unit": iv.unit, "runs": int(g[m].notna().sum()), "of": len(g)})
    return pd.DataFrame(rows)


def mean_interval_table(results: pd.DataFrame, metrics) -> pd.DataFrame:
    """Per variant: "mean ± half-width of the 95 % interval" for each metric ("mean" alone from one run, "failed"
    when every run failed) and the runs that finished."""
    values = mean_intervals(results, metrics)
    rows = {}
    for variant, g in values.groupby("variant", sort=False):
        row = {}
        for _, r in g.iterrows():
            if np.isnan(r["mean"]):
                row[r.metric] = "failed"
            elif np.isnan(r.low):
                row[r.metric] = f"{r['mean']:.1f}"
            else:
                row[r.metric] = f"{r['mean']:.1f} ± {(r.high - r.low) / 2:.1f}"
        first = g.iloc[0]
        row["runs"] = f"{first.runs}/{first['of']}"
        rows[variant] = row
    return pd.DataFrame(rows).T


def mean_ranks(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rank the variants within every (category, seed) cell on ``metric`` (1 = best, ties share the mean rank; cells
    where a variant failed are left out): per variant the mean rank, its spread over cells (sd) and the number of
    cells it won."""
    wide = results.pivot_table(index=["category", "seed"], columns="variant", values=metric, aggfunc="mean").dropna()
    if wide.empty:
        raise ValueError(f"no (category, seed) cell has {metric} for every variant")
    ranks = wide.rank(axis=1, ascending=False, method="average")
    return pd.DataFrame({"mean rank": ranks.mean(), "sd": ranks.std(ddof=1), "cells won": (ranks == 1).sum(),
                         "cells": len(ranks)}).sort_values("mean rank")


__all__ = ["Interval", "LEVEL", "POWER", "detectable_effect", "interval", "mean_interval_table", "mean_intervals",
           "mean_ranks", "t_interval", "unit_values"]
