"""Has a method been trained to its plateau? Its learning curves read by one function, :func:`plateau`.

A run evaluated during training (``FitConfig.eval_every``) logs its test metrics at regular steps
(:func:`rdlib.experiments.learning_curves`). One category's curve is noisy (a few points between evaluations on a
test split of 230 images), so the method's curve is the mean over its categories at each evaluated step (≥ 3
categories for a statement about the method). The curve has **settled** from the first evaluated step after which
its running mean over ``smooth`` = 3 evaluations stays within ``tol`` points of its final level (the mean of the last
``tail`` evaluations), and the method is **converged** at its schedule when that settled stretch covers at least ``flat`` of the schedule (and at
least ``tail`` + 1 evaluations): it stopped moving well before training ended, so training longer would not change
what the book reports by more than ``tol``. A flat mean can hide one category still rising while another falls
(AAND's chapter: coffee climbing from 89 to 95 while coins slid from 93 to 89), so the stretch starts only where every
category's own curve is flat too: its least-squares trend across the stretch (the fitted change from the stretch's
first to its last step, :func:`trend`) within ``drift`` points. One category's evaluations scatter by about ±2 points
(230 test images), and the fitted change over n evenly spaced evaluations has a standard error of
σ·√(12(n−1)/(n(n+1))) — 1.3σ at 5 evaluations, 1.0σ at 10 — so the bound, 3 × ``tol`` = 6 points, sits about 2.4
standard errors above that noise at 5 evaluations and catches a category that moves by more than the mean may.
The band is read on the running mean because single evaluations stray: with that scatter (σ = 2 per category, 3
categories; RD-RE's stage-2 curves scatter by about as much from checkpoint to checkpoint), a simulated curve flat
from 30 % of its schedule was called converged in 76 %, 80 % and 57 % of 1,000 draws at 5, 10 and 18 evaluations when
every raw evaluation had to stay inside ±2 (each extra evaluation is one more chance to stray), and in 92 %, 99 % and
93 % on the running mean with no single evaluation further than 2 × ``tol`` (``stray``); a curve still gaining 6 points over its last 40 % was called converged in 0.7 %,
12 % and 0.4 % of draws by the raw rule and 0.6 %, 8 % and 0.9 % by this one — ten evaluations are its weak spot
either way (tests/test_plateau.py). A curve still rising — or falling, as an over-generalising decoder does — at
the end is *not converged*, and :func:`rdlib.claims.judge` does not judge a claim on its runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

TOL, TAIL, FLAT, MIN_CATEGORIES = 2.0, 3, 0.3, 3
DRIFT = 3 * TOL
SMOOTH = 3                    # evaluations in the running mean the band test reads (see the module docstring)
STRAY = 2                     # and no single evaluation further than STRAY × tol from the final level


def smoothed(values, window: int = SMOOTH) -> np.ndarray:
    """The centred running mean of ``values`` over ``window`` evaluations (fewer at the ends): the curve's level at
    each evaluation with the evaluation's own scatter averaged down (by √3 for three)."""
    return pd.Series(np.asarray(values, dtype=float)).rolling(window, center=True, min_periods=1).mean().to_numpy()


def settle_step(steps, values, tol: float = TOL, tail: int = TAIL, smooth: int = SMOOTH,
                stray: float = STRAY) -> int | None:
    """The first evaluated step from which the curve — its running mean over ``smooth`` evaluations
    (:func:`smoothed`; 1 for the raw values) — stays within ``tol`` of the mean of the last ``tail`` values (the level
    the curve settles at) and no single evaluation strays further than ``stray`` × ``tol`` from it (one evaluation
    6 points off a flat curve is not averaged away; a last one that drops by 5 moves the level by a third of that and
    stays inside both bands); ``smooth=1, stray=1`` reads every raw evaluation against
    ``tol``. None with fewer than ``tail`` + 1 evaluations."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=float)
    if steps.size < tail + 1:
        return None
    order = np.argsort(steps)
    steps, values = steps[order], values[order]
    level = values[-tail:].mean()
    inside = (np.abs(smoothed(values, smooth) - level) <= tol) & (np.abs(values - level) <= stray * tol)
    i = len(inside)
    while i > 0 and inside[i - 1]:
        i -= 1
    return int(steps[min(i, len(steps) - 1)])


def trend(steps, values) -> float:
    """The least-squares line's change from the first to the last of ``steps`` (points); NaN with fewer than 2."""
    x, y = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if x.size < 2 or np.ptp(x) == 0:
        return float("nan")
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()   # b = Σ(x−x̄)(y−ȳ) / Σ(x−x̄)²
    return float(slope * np.ptp(x))                                                  # change = b · (x_max − x_min)


def stretch_start(curve: pd.Series, per_category: pd.DataFrame, tol: float = TOL, tail: int = TAIL,
                  drift: float = DRIFT, smooth: int = SMOOTH, stray: float = STRAY) -> int | None:
    """The first evaluated step from which the mean ``curve`` stays within ``tol`` of its final level
    (:func:`settle_step`) and no category's own curve (a column of ``per_category``, indexed by step) trends by more
    than ``drift`` up to the end; None where the mean has not been evaluated ``tail`` + 1 times."""
    start = settle_step(curve.index, curve.values, tol, tail, smooth, stray)
    if start is None:
        return None
    for step in curve.index[curve.index >= start]:
        stretch = per_category.loc[curve.index[curve.index >= step]]
        moves = [trend(c.dropna().index, c.dropna().values) for _, c in stretch.items()]
        if not any(abs(m) > drift for m in moves if not np.isnan(m)):
            return int(step)
    return int(curve.index[-1])


@dataclass(frozen=True, eq=False)
class Plateau:
    """Where ``label``'s mean learning curve settles and whether its schedule (``steps``) trains past it."""

    label: str
    metric: str
    curve: pd.Series                                  # mean over categories, indexed by step
    per_category: pd.DataFrame = field(repr=False)    # step × category
    steps: int                                        # the schedule's last evaluated step
    settled_at: int | None                            # stretch_start: the mean and every category flat from here
    level: float                                      # the mean of the last `tail` evaluations
    tol: float = TOL
    flat: float = FLAT
    tail: int = TAIL
    min_categories: int = MIN_CATEGORIES
    drift: float = DRIFT                              # the most a category's fitted trend may change over the stretch
    last_steps: dict = field(default_factory=dict)    # category -> its last evaluated step
    mean_settled_at: int | None = None                # settle_step of the mean curve alone
    smooth: int = SMOOTH
    stray: float = STRAY

    @property
    def categories(self) -> list[str]:
        return list(self.per_category.columns)

    @property
    def flat_evaluations(self) -> int:
        return 0 if self.settled_at is None else int((self.curve.index >= self.settled_at).sum())

    @property
    def trends(self) -> pd.Series:
        """Each category's fitted change over the flat stretch (:func:`trend`; empty before the curve settles)."""
        if self.settled_at is None or self.per_category.empty:
            return pd.Series(dtype=float)
        stretch = self.per_category.loc[self.curve.index[self.curve.index >= self.settled_at]]
        return pd.Series({cat: trend(c.dropna().index, c.dropna().values) for cat, c in stretch.items()}, dtype=float)

    @property
    def converged(self) -> bool:
        """Settled within the schedule: the flat stretch spans ≥ ``flat`` of it and ≥ ``tail`` + 1 evaluations,
        on ≥ ``min_categories`` categories, none of which trends by more than ``drift`` over it."""
        return bool(self.settled_at is not None and len(self.categories) >= self.min_categories
                    and self.flat_evaluations >= self.tail + 1
                    and self.steps - self.settled_at >= self.flat * self.steps)

    @property
    def status(self) -> str:
        """"converged" or "not converged", as a table cell."""
        return "converged" if self.converged else "not converged"

    @property
    def why(self) -> str:
        """Why the curve is not converged ("" when it is)."""
        if self.converged:
            return ""
        n = len(self.categories)
        if n == 0:
            return "no finished run logged a learning curve"
        if n < self.min_categories:
            return (f"learning curves on {n} categor{'y' if n == 1 else 'ies'}; a statement about the method needs "
                    f"{self.min_categories}")
        curve = f"the mean test {_label(self.metric)} of {n} categories"
        if self.settled_at is None:
            return f"{curve} was evaluated at fewer than {self.tail + 1} steps"
        if self.flat_evaluations >= self.tail + 1:
            later = (f" (the mean alone from step {self.mean_settled_at}, but a category's own curve moved by more "
                     f"than {self.drift:g} points after it)" if self.mean_settled_at not in (None, self.settled_at) else "")
            return (f"{curve} settles only at step {self.settled_at} of {self.steps}{later}, less than {self.flat:.0%} "
                    "of the schedule before its end")
        if self.mean_settled_at is not None and (self.curve.index >= self.mean_settled_at).sum() >= self.tail + 1:
            stretch = self.per_category.loc[self.curve.index[self.curve.index >= self.mean_settled_at]]
            moves = ", ".join(f"{cat} {trend(c.dropna().index, c.dropna().values):+.1f}" for cat, c in stretch.items())
            return (f"{curve} is flat from step {self.mean_settled_at}, but the categories' own curves still move by "
                    f"more than {self.drift:g} points until the last evaluations (fitted change from step "
                    f"{self.mean_settled_at}: {moves}): the mean hides categories still learning or degrading")
        rising = self.curve.iloc[-1] >= self.curve.iloc[-(self.tail + 1)]         # the trend over the last evaluations
        return f"{curve} is still {'rising' if rising else 'falling'} at the last evaluations"

    @property
    def sentence(self) -> str:
        """The plateau as one sentence with its numbers."""
        if self.converged:
            return (f"{self.label}: **converged** — the mean test {_label(self.metric)} of {len(self.categories)} "
                    f"categories settles at {self.level:.1f} (its running mean over {self.smooth} evaluations within "
                    f"{self.tol:g} points from then on) by "
                    f"step {self.settled_at} of its {self.steps}.")
        return f"{self.label}: **not converged** at {self.steps} steps — {self.why}."

    def table(self) -> pd.DataFrame:
        """Per category and for the mean curve alone: the step the curve settles by ("—" where fewer than ``tail``
        + 1 evaluations agree, i.e. it has not settled), the final level, the last value and each category's fitted
        trend over the flat stretch (:attr:`trends`); last, the plateau the sentence states: from the step where the
        mean and every category stay flat (:func:`stretch_start`, later than the mean alone when a category still
        drifts; "—" when not converged)."""
        def settled(c: pd.Series):
            at = settle_step(c.index, c.values, self.tol, self.tail, self.smooth, self.stray)
            return int(at) if at is not None and (c.index >= at).sum() >= self.tail + 1 else "—"   # a step: "125"

        trends = self.trends
        rows = {cat: {"settled at step": settled(c.dropna()), "final level": c.dropna().iloc[-self.tail:].mean(),
                      "at the last step": c.dropna().iloc[-1],
                      "trend over the flat stretch": _or_dash(trends.get(cat, np.nan))}
                for cat, c in self.per_category.items()}
        rows[MEAN_ROW] = {"settled at step": settled(self.curve), "final level": self.level,
                          "at the last step": self.curve.iloc[-1], "trend over the flat stretch": "—"}
        rows[PLATEAU_ROW] = {"settled at step": self.settled_at if self.converged else "—",
                             "final level": self.level, "at the last step": self.curve.iloc[-1],
                             "trend over the flat stretch": "—"}
        return pd.DataFrame.from_dict(rows, orient="index")          # per column: steps stay integers


MEAN_ROW = "mean curve alone"                              # rows of Plateau.table
PLATEAU_ROW = "plateau (mean and every category)"


def plateau(curves: pd.DataFrame, label: str, metric: str = "i_auroc", *, tol: float = TOL, tail: int = TAIL,
            flat: float = FLAT, min_categories: int = MIN_CATEGORIES, drift: float = DRIFT, smooth: int = SMOOTH,
            stray: float = STRAY) -> Plateau:
    """Read the plateau of one method's learning curves (:func:`rdlib.experiments.learning_curves`: rows of
    category, step and the logged metrics); for a method trained in stages, the last stage's evaluations at the step
    count over all stages (``total_step``). Categories evaluated at the same steps are averaged step by step (a step
    some category lacks is left out); categories evaluated as often but at other steps (a reader's categories of
    different sizes with budgets in epochs) at the same fraction of each one's schedule, shown at the median
    category's steps. ``smooth``/``stray``: the band test of :func:`settle_step`."""
    args = (tol, flat, tail, min_categories, drift)
    band = dict(smooth=smooth, stray=stray)
    curves = curves.dropna(subset=[metric]) if metric in curves else curves.iloc[0:0]
    if curves.empty:
        return Plateau(label, metric, pd.Series(dtype=float), pd.DataFrame(), 0, None, float("nan"), *args, **band)
    if "stage" in curves and curves.stage.notna().any():      # a multi-stage method: the stage whose model is scored
        curves = curves[curves.stage == curves.stage.dropna().iloc[-1]]
    step = "total_step" if "total_step" in curves else "step"
    last = curves.groupby("category")[step].max()
    grids = {tuple(sorted(g[step])) for _, g in curves.groupby("category")}
    if len(grids) > 1 and len({len(g) for g in grids}) == 1:  # as many evaluations at other steps: align by fraction
        typical = int(last.median())
        curves = curves.assign(**{step: (curves[step] / curves.category.map(last) * typical).round().astype(int)})
    wide = curves.pivot_table(index=step, columns="category", values=metric).sort_index()
    wide.index.name = "step"
    mean = wide.dropna().mean(axis=1)
    if mean.empty:
        return Plateau(label, metric, mean, wide, int(wide.index.max()), None, float("nan"), *args,
                       last_steps=last.astype(int).to_dict(), **band)
    def step_or_none(at):                                  # steps logged as floats are still steps: "150"
        return None if at is None else int(at)

    start = stretch_start(mean, wide.loc[mean.index], tol, tail, drift, smooth, stray)
    return Plateau(label, metric, mean, wide, int(mean.index.max()), step_or_none(start),
                   float(mean.iloc[-tail:].mean()), *args, last_steps=last.astype(int).to_dict(),
                   mean_settled_at=step_or_none(settle_step(mean.index, mean.values, tol, tail, smooth, stray)), **band)


def mark(table: pd.DataFrame, plateaus: dict[str, Plateau]) -> pd.DataFrame:
    """The long table with a ``converged`` column from each row's variant's plateau (``{variant: Plateau}``): True for
    a run trained at least to where a converged plateau settled (the same fraction of its category's schedule where
    categories differ), False before that or when the plateau is not converged, None (unknown) for a variant without
    a plateau. A run trained past the last evaluation of a converged curve counts as converged: the curve was flat
    over the last part of its schedule. Training-free rows (0 steps) are converged. :func:`rdlib.claims.judge`
    judges only True rows."""
    out = table.copy()

    def status(row):
        steps = row.get("steps")
        steps = None if steps is None or pd.isna(steps) else int(steps)
        if steps == 0:
            return True                                   # training-free: nothing to converge
        p = plateaus.get(row["variant"])
        if p is None:
            return None
        if not p.converged:
            return False
        if steps is None:
            return True
        settled = p.settled_at / p.steps * p.last_steps.get(row.get("category"), p.steps)
        return bool(steps >= settled - 1e-9)

    out["converged"] = pd.Series([status(r) for r in out.to_dict("records")], index=out.index, dtype=object)
    return out


def _or_dash(value: float):
    """A number, or "—" where there is none (fewer than two evaluations in the stretch, or no stretch)."""
    return "—" if value is None or not np.isfinite(value) else value


def _label(metric: str) -> str:
    from rdlib.results import METRIC_LABELS

    return METRIC_LABELS.get(metric, metric)
