"""Claims judged with seeds and intervals: one function turns per-(category, seed) results of two variants into a
paired difference with a 95 % interval and a verdict. Every verdict sentence in the book comes from here.

The unit of pairing is a (category, seed) cell: variant A and variant B trained on the same category with the same
seed. The interval is a percentile bootstrap over categories, then seeds within each drawn category (a two-level
bootstrap: categories are the population a claim is about, seeds the noise of training), with a fixed generator
so the book is reproducible.

Verdict for the claim "A is better than B by more than ``margin`` points":

* *supported* — the whole interval lies above ``+margin``;
* *contradicted* — the whole interval lies below ``−margin`` (B is better);
* *inconclusive* — otherwise (the data cannot tell, or the difference is within ±margin), and always when fewer
  than ``MIN_CELLS`` paired cells back it (one or two runs per variant have no interval worth the name).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

VERDICTS = ("supported", "contradicted", "inconclusive")
MIN_CELLS = 3                   # paired (category, seed) cells below which no claim is supported or contradicted


@dataclass(frozen=True)
class Comparison:
    """A − B on one metric, paired over (category, seed)."""

    metric: str
    a: str
    b: str
    mean_a: float
    mean_b: float
    diff: float                 # mean over cells of (A − B)
    low: float                  # 95 % interval of the mean difference
    high: float
    cells: int                  # paired (category, seed) cells used
    categories: int
    seeds: int
    verdict: str
    margin: float = 0.0

    def sentence(self, claim: str | None = None) -> str:
        """The verdict as a sentence, with the numbers it rests on."""
        claim = claim or f"{self.a} beats {self.b} on {self.metric}"
        f = lambda v: f"{v:+.2f}" if 0 < abs(v) < 0.05 else f"{v:+.1f}"     # noqa: E731 - no "+0.0" beside "supported"
        return (f"{claim}: **{self.verdict}** (Δ = {f(self.diff)} points, 95 % interval [{f(self.low)}, "
                f"{f(self.high)}], {self.categories} categor{'y' if self.categories == 1 else 'ies'} × "
                f"{self.seeds} seed{'' if self.seeds == 1 else 's'}"
                + (f", margin ±{self.margin:g}" if self.margin else "")
                + (f"; fewer than {MIN_CELLS} paired runs: no verdict" if self.cells < MIN_CELLS else "") + ").")


def bootstrap_interval(diffs: np.ndarray, reps: int = 4000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean of a categories × seeds array of paired differences (NaN = missing),
    resampling categories, then seeds within each category."""
    diffs = np.asarray(diffs, dtype=np.float64)
    if diffs.ndim == 1:
        diffs = diffs[:, None]
    rng = np.random.default_rng(seed)
    n_cat, n_seed = diffs.shape
    cat_idx = rng.integers(0, n_cat, (reps, n_cat))
    seed_idx = rng.integers(0, n_seed, (reps, n_cat, n_seed))
    sample = diffs[cat_idx[..., None], seed_idx]                    # reps × n_cat × n_seed
    means = np.nanmean(sample.reshape(reps, -1), axis=1)
    lo, hi = np.nanpercentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def verdict(low: float, high: float, margin: float = 0.0) -> str:
    if low > margin:
        return "supported"
    if high < -margin:
        return "contradicted"
    return "inconclusive"


def compare_variants(results: pd.DataFrame, a: str, b: str, metric: str, margin: float = 0.0,
                     reps: int = 4000, seed: int = 0) -> Comparison:
    """Paired comparison of variants ``a`` and ``b`` in a long table with columns variant, category, seed, metric
    (as :func:`rdlib.experiments.run_grid` returns). Cells where either variant failed (NaN) are left out."""
    need = {"variant", "category", "seed", metric}
    if not need <= set(results.columns):
        raise ValueError(f"results need columns {sorted(need)}, got {sorted(results.columns)}")
    wide = results[results.variant.isin([a, b])].pivot_table(index=["category", "seed"], columns="variant",
                                                               values=metric, aggfunc="mean", dropna=False)
    for v in (a, b):
        if v not in wide.columns:
            raise ValueError(f"variant {v!r} not in the results (have {sorted(results.variant.unique())})")
    wide = wide.dropna(subset=[a, b])
    if wide.empty:
        raise ValueError(f"no (category, seed) cell has results for both {a!r} and {b!r}")
    d = (wide[a] - wide[b]).unstack("seed")                            # categories × seeds
    low, high = bootstrap_interval(d.to_numpy(), reps, seed)
    judged = verdict(low, high, margin) if len(wide) >= MIN_CELLS else "inconclusive"
    return Comparison(metric, a, b, float(wide[a].mean()), float(wide[b].mean()), float((wide[a] - wide[b]).mean()),
                      low, high, len(wide), d.shape[0], d.shape[1], judged, margin)


def claim_sentence(results: pd.DataFrame, a: str, b: str, metric: str, claim: str, margin: float = 0.0) -> str:
    """The verdict sentence on the claim "``a`` beats ``b`` on ``metric``", or, when it cannot be judged (a variant
    missing, every run of one failed), a sentence that says so and why: a chapter never drops a claim silently."""
    try:
        return compare_variants(results, a, b, metric, margin).sentence(claim)
    except ValueError as e:
        return f"{claim}: not judged ({e})."


def mean_intervals(results: pd.DataFrame, metrics, reps: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Per (variant, metric): the mean over categories and seeds and its bootstrap 95 % interval (categories, then
    seeds), as numbers — columns variant, metric, mean, low, high, runs, of (NaN where every run failed)."""
    rows = []
    for variant, g in results.groupby("variant", sort=False):
        for m in metrics:
            grid = g.pivot_table(index="category", columns="seed", values=m, aggfunc="mean", dropna=False)
            grid = grid.dropna(how="all")                              # a category whose every run failed
            lo, hi = bootstrap_interval(grid.to_numpy(), reps, seed) if not grid.empty else (np.nan, np.nan)
            rows.append({"variant": variant, "metric": m, "mean": np.nanmean(grid.to_numpy()) if not grid.empty else np.nan,
                         "low": lo, "high": hi, "runs": int(g[m].notna().sum()), "of": len(g)})
    return pd.DataFrame(rows)


def mean_interval_table(results: pd.DataFrame, metrics, reps: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Per variant: mean ± half-width of the bootstrap 95 % interval (categories, then seeds) for each metric."""
    values = mean_intervals(results, metrics, reps, seed)
    rows = {}
    for variant, g in values.groupby("variant", sort=False):
        row = {r.metric: "failed" if np.isnan(r["mean"]) else f"{r['mean']:.1f} ± {(r.high - r.low) / 2:.1f}"
               for _, r in g.iterrows()}
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


__all__ = ["Comparison", "MIN_CELLS", "VERDICTS", "bootstrap_interval", "claim_sentence", "compare_variants",
           "mean_interval_table", "mean_intervals", "mean_ranks", "verdict"]
