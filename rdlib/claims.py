"""The papers' claims judged on runs: one function, :func:`judge`, and what it rests on.

:func:`judge` takes a long table of runs (variant, category, seed, the metrics, and where known ``image_size`` and
``steps``: what :mod:`rdlib.experiments` returns), two variants, a metric and the claim "A beats B", and returns a
:class:`Verdict`: the mean paired difference Δ, its 95 % interval with the unit the claim is about
(:mod:`rdlib.stats`: categories when there are several, the seeds of one category otherwise, and then the verdict is
about that category only), the verdict, the design it rests on (categories × seeds, image size, optimizer steps of
each variant) and the smallest effect that design could have detected. Every verdict sentence in the book is
:attr:`Verdict.sentence`; a claim of a paper judged at the book's CPU budget says so ("at this budget"): it is a
statement about these runs, never a verdict on the paper.

    v = judge(grid, "E–T–S (RD-E)", "T–S (= RD)", "p_ap", "The expert improves P-AP (Table 5)", paper_claim=True)
    print(v.sentence)
    log = ClaimLog("urd"); log.add(v); log.save(profile="book")    # <runs>/claims/book/urd.csv, read by 06
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rdlib.stats import detectable_effect, interval

VERDICTS = ("supported", "contradicted", "inconclusive", "not judged")
BOOK_DESIGN = (3, 3)    # the smallest design (categories, seeds each) a chapter judges a claim on (issue #30)
# paper_reported.yaml method keys -> rdlib method names, and the method each paper that claims to beat RD proposes
PAPER_METHODS = {"rd": "rd", "rdpp": "rdpp", "urd": "urd", "aand": "aand", "rd_re": "rdre"}
OWN_METHOD = {"urd": "urd", "aand": "aand", "rd_re": "rd_re"}
METHOD_LABELS = {"rd": "RD", "rdpp": "RD++", "urd": "URD", "aand": "AAND", "rdre": "RD-RE", "patch_knn": "kNN"}
CLAIM_COLUMNS = ["source", "claim", "a", "b", "metric", "diff", "low", "high", "verdict", "design", "categories",
                 "seeds", "unit", "image_size", "steps_a", "steps_b", "detectable", "paper_diff", "paper_claim",
                 "sentence"]


def _num(v: float) -> str:
    return f"{v:+.2f}" if 0 < abs(v) < 0.05 else f"{v:+.1f}"          # no "+0.0" beside "supported"


def _budget(values: pd.Series) -> str:
    """One variant's value of a design column (image size, steps) over its runs: "64", "5000–10000" or ""."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return ""
    lo, hi = int(v.min()), int(v.max())
    return str(lo) if lo == hi else f"{lo}–{hi}"


@dataclass(frozen=True)
class Verdict:
    """The claim "``a`` beats ``b`` on ``metric``" judged on a table of runs, and what the judgement rests on."""

    claim: str
    a: str
    b: str
    metric: str
    verdict: str                    # one of VERDICTS
    diff: float = np.nan            # mean paired difference A − B (points)
    low: float = np.nan             # its 95 % interval
    high: float = np.nan
    unit: str = ""                  # "category" (several categories) or "seed" (one category: about it only)
    categories: tuple = ()          # the categories with paired runs
    seeds: str = ""                 # seeds per category ("3", or "1–3" when some failed)
    image_size: str = ""            # per variant: "64" or "64 vs 128"
    steps_a: str = ""               # optimizer steps of each variant ("" when the table does not say)
    steps_b: str = ""
    detectable: float = np.nan      # smallest true |Δ| this design detects with 80 % power, at its observed spread
    margin: float = 0.0
    paper_diff: float = np.nan      # the effect the paper reports, when known
    paper_claim: bool = False       # a paper's claim judged at the book's budget: "at this budget"
    reason: str = ""                # why a claim was not judged

    @property
    def design(self) -> str:
        """What the verdict rests on: "brick only × 3 seeds, 64², 100 vs 40 steps"."""
        if not self.categories:
            return ""
        n = len(self.categories)
        where = f"{self.categories[0]} only" if n == 1 else f"{n} categories"
        parts = [f"{where} × {self.seeds} seed{'' if self.seeds == '1' else 's'}"]
        if self.image_size:
            parts.append(" vs ".join(f"{s}²" for s in self.image_size.split(" vs ")))
        if self.steps_a and self.steps_b:
            steps = lambda v: "training-free" if v == "0" else f"{v} steps"          # noqa: E731
            if self.steps_a == self.steps_b:
                parts.append(f"{steps(self.steps_a)} each")
            elif "0" in (self.steps_a, self.steps_b):
                parts.append(f"{steps(self.steps_a)} vs {steps(self.steps_b)}")
            else:
                parts.append(f"{self.steps_a} vs {self.steps_b} steps")
        return ", ".join(parts)

    @property
    def unequal_budgets(self) -> bool:
        """Both variants trained, for different numbers of optimizer steps."""
        return bool(self.steps_a and self.steps_b and "0" not in (self.steps_a, self.steps_b)
                    and self.steps_a != self.steps_b)

    @property
    def undetectable(self) -> bool:
        """True when the paper's effect is below what this design could detect."""
        return bool(np.isfinite(self.paper_diff) and np.isfinite(self.detectable)
                    and abs(self.paper_diff) < self.detectable)

    @property
    def label(self) -> str:
        """The verdict with its scope, as a table cell: "inconclusive (brick only, at this budget)"."""
        if self.verdict == "not judged":
            return self.verdict + (" (not converged)" if "plateau" in self.reason else "")
        scope = [f"{self.categories[0]} only"] if self.unit == "seed" else []
        scope += ["at this budget"] if self.paper_claim else []
        scope += ["below detectable"] if self.verdict == "inconclusive" and self.undetectable else []
        return self.verdict + (f" ({', '.join(scope)})" if scope else "")

    @property
    def sentence(self) -> str:
        """The verdict as a sentence with the numbers and the design it rests on."""
        if self.verdict == "not judged":
            return f"{self.claim}: not judged ({self.reason})."
        scope = f" for {self.categories[0]} only" if self.unit == "seed" else ""
        budget = ", at this budget" if self.paper_claim else ""
        s = (f"{self.claim}: **{self.verdict}**{scope}{budget} (Δ = {_num(self.diff)} points, 95 % interval "
             f"[{_num(self.low)}, {_num(self.high)}]; {self.design}"
             + (f"; margin ±{self.margin:g}" if self.margin else "") + ").")
        if self.unequal_budgets:
            s += f" The two variants trained for different numbers of optimizer steps ({self.steps_a} vs {self.steps_b})."
        if self.verdict == "inconclusive" and np.isfinite(self.detectable):
            if self.detectable >= 100:
                s += (f" This design is too small to detect any effect on a 0–100 scale (its smallest detectable "
                      f"effect is about {self.detectable:.0f} points).")
            elif self.undetectable:
                s += (f" This design detects effects of about {self.detectable:.1f} points or more; the paper's "
                      f"Δ = {_num(self.paper_diff)} is smaller, so these runs could not have confirmed it.")
            else:
                s += f" The smallest effect this design detects is about {self.detectable:.1f} points."
        return s

    def row(self) -> dict:
        """The verdict as a row of a claims table (:data:`CLAIM_COLUMNS` but ``source``)."""
        d = asdict(self)
        d["categories"] = ", ".join(self.categories)
        return {**d, "design": self.design, "label": self.label, "sentence": self.sentence}


def judge(results: pd.DataFrame, a: str, b: str, metric: str, claim: str, *, margin: float = 0.0,
          paper_diff: float | None = None, paper_claim: bool = False, min_design: tuple[int, int] = (0, 0)) -> Verdict:
    """Judge the claim "``a`` beats ``b`` on ``metric`` by more than ``margin`` points" on a long table.

    Pairs A and B within each (category, seed) cell (cells where either failed are left out), takes the 95 %
    interval of the mean difference with the claim's unit (:func:`rdlib.stats.interval`) and says *supported* when
    it lies above ``+margin``, *contradicted* when below ``−margin``, *inconclusive* otherwise, and *not judged*
    (with the reason) when a variant is missing, fewer than two units were paired or — where the table has a
    ``converged`` column (:func:`rdlib.plateau.mark`) — a paired run is not marked converged. ``paper_diff``: the paper's
    reported effect, to say whether this design could have detected it; ``paper_claim``: the claim is a paper's,
    judged at the book's budget; ``min_design`` = (categories, seeds): not judged unless at least that many
    categories each have that many paired seeds (the book's chapters ask for :data:`BOOK_DESIGN`)."""
    base = dict(claim=claim, a=a, b=b, metric=metric, margin=margin, paper_claim=paper_claim,
                paper_diff=np.nan if paper_diff is None else float(paper_diff))
    need = {"variant", "category", "seed", metric}
    if not need <= set(results.columns):
        return Verdict(verdict="not judged", reason=f"the table lacks columns {sorted(need - set(results.columns))}",
                       **base)
    have = set(results.variant)
    absent = [v for v in (a, b) if v not in have]
    if absent:
        return Verdict(verdict="not judged", reason=f"no runs of {', '.join(map(repr, absent))} in the table",
                       **base)
    sub = results[results.variant.isin([a, b])]
    wide = sub.groupby(["category", "seed", "variant"], sort=False, dropna=False)[metric].mean().unstack("variant")
    wide = wide.reindex(columns=[a, b]).astype(float).dropna()
    if wide.empty:
        return Verdict(verdict="not judged", reason=f"no (category, seed) cell has {metric} for both {a!r} and {b!r}",
                       **base)
    d = wide[a] - wide[b]
    iv = interval(d)
    cats = tuple(dict.fromkeys(d.index.get_level_values("category")))
    per_cat = d.groupby(level="category", sort=False).size()
    seeds = str(per_cat.iloc[0]) if per_cat.nunique() == 1 else f"{per_cat.min()}–{per_cat.max()}"
    keep = sub.set_index(["category", "seed"]).index.isin(wide.index)
    paired = sub[keep]
    col = lambda name, v: _budget(paired.loc[paired.variant == v, name]) if name in paired else ""   # noqa: E731
    sizes = dict.fromkeys(s for s in (col("image_size", a), col("image_size", b)) if s)
    design = dict(diff=iv.mean, unit=iv.unit, categories=cats, seeds=seeds, image_size=" vs ".join(sizes),
                  steps_a=col("steps", a), steps_b=col("steps", b))
    if "converged" in paired:
        short = [v for v in (a, b) if not paired.loc[paired.variant == v, "converged"].eq(True).all()]
        if short:
            return Verdict(verdict="not judged", reason=" and ".join(map(repr, short)) + " not trained to "
                           f"{'its plateau' if len(short) == 1 else 'their plateaus'} at this budget (rdlib.plateau); "
                           "a claim is judged on converged runs only",
                           **design, **base)
    need_cats, need_seeds = min_design
    if (per_cat >= need_seeds).sum() < need_cats:
        return Verdict(verdict="not judged", reason=f"{need_cats} categories × {need_seeds} seeds is the smallest "
                       "design a claim is judged on here", **design, **base)
    if iv.n < 2:
        return Verdict(verdict="not judged", reason=f"one {iv.unit} paired ({cats[0]}, one seed): no spread to judge "
                       "by", **design, **base)
    verdict = "supported" if iv.low > margin else "contradicted" if iv.high < -margin else "inconclusive"
    return Verdict(verdict=verdict, low=iv.low, high=iv.high, detectable=detectable_effect(iv) + margin,
                   **design, **base)


def claims_file(chapter: str, profile: str, runs_dir: str | Path | None = None) -> Path:
    """Where a chapter's recorded verdicts live: ``<runs>/claims/<profile>/<chapter>.csv``."""
    from rdlib.runs import default_runs_dir

    return Path(runs_dir or default_runs_dir()) / "claims" / profile / f"{chapter}.csv"


class ClaimLog:
    """The verdicts one chapter prints (each from :func:`judge`), kept as rows so that another chapter can read
    them."""

    def __init__(self, chapter: str):
        self.chapter = chapter
        self.verdicts: list[Verdict] = []

    def add(self, verdict: Verdict) -> str:
        """Record a verdict; returns its sentence."""
        self.verdicts.append(verdict)
        return verdict.sentence

    def sentences(self) -> list[str]:
        return [v.sentence for v in self.verdicts]

    def markdown(self, empty: str = "_No claims judged._") -> str:
        """The sentences as a Markdown bullet list, or ``empty`` when none was judged."""
        return "\n".join(f"- {s}" for s in self.sentences()) or empty

    def summary(self, empty: str = "no claim was judged in this profile") -> str:
        """One sentence: how many claims came out each way, and the designs they rest on."""
        if not self.verdicts:
            return empty
        counts = pd.Series([v.verdict for v in self.verdicts]).value_counts()
        order = [k for k in ("supported", "contradicted", "inconclusive", "not judged") if k in counts]
        designs = sorted({v.design for v in self.verdicts if v.verdict != "not judged"})
        return (f"of {len(self.verdicts)} claims, " + ", ".join(f"{counts[k]} {k}" for k in order)
                + (f" (designs: {'; '.join(designs)})" if designs else ""))

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"source": self.chapter, **v.row()} for v in self.verdicts],
                            columns=[*CLAIM_COLUMNS, "label"])

    def save(self, profile: str, runs_dir: str | Path | None = None) -> Path:
        """Write the rows atomically to :func:`claims_file` (replacing the chapter's previous ones)."""
        from rdlib.utils import atomic_write_bytes

        path = claims_file(self.chapter, profile, runs_dir)
        atomic_write_bytes(path, self.table().to_csv(index=False).encode())
        return path


class AblationReport:
    """One chapter's ablation grid (the long table of :func:`rdlib.experiments.run_grid`) shown as the paper's tables
    with our rows beside the paper's, and its claims judged (:func:`judge`, as paper claims at this budget) into a
    :class:`ClaimLog`.

        report = AblationReport("urd", grid, ["i_auroc", "p_ap"], paper=load_paper_numbers())
        report.table(["T–S (= RD)", "E–T–S (RD-E)"], "urd_table5", ["urd_base", "urd_expert"], ("p_auroc", "p_ap"))
        report.judge("E–T–S (RD-E)", "T–S (= RD)", "The expert improves P-AP (Table 5)", "p_ap")
        report.log.save("book")           # each verdict is shown below its table as it is judged
    """

    SKIPPED = "_Ablations skipped in this profile._"
    NOT_RUN = "not run in this profile (the line above the tables says why; the `full` profile runs them)"

    def __init__(self, chapter: str, grid: pd.DataFrame, metrics, paper: pd.DataFrame | None = None,
                 log: ClaimLog | None = None, plateaus: dict | None = None, min_design: tuple[int, int] = (0, 0)):
        self.grid, self.metrics, self.paper, self.min_design = grid, list(metrics), paper, tuple(min_design)
        self.plateaus = dict(plateaus or {})     # variant → rdlib.plateau.Plateau the grid's `converged` came from
        self.log = log if log is not None else ClaimLog(chapter)      # a chapter with several grids shares one log
        self.paper_rows: dict[str, tuple] = {}      # variant → (table_id, paper method, match) of the last table shown

    def table(self, rows: list[str], table_id: str, paper_methods: list, paper_metrics, **match) -> None:
        """Display the variants ``rows`` (mean ± 95 % interval) beside the paper's rows of ``table_id``
        (:func:`rdlib.results.ablation_table`); when the grid is empty, the paper's rows alone, saying so."""
        self.paper_rows.update({v: (table_id, m, match) for v, m in zip(rows, paper_methods) if m})
        from IPython.display import Markdown, display

        from rdlib.results import ablation_table, missing_notes

        table = ablation_table(self.grid, rows, self.metrics, table_id, paper_methods, paper_metrics, df=self.paper,
                               **match)
        display(table)
        notes = [missing_notes(table, self.grid), self.convergence(rows) if not self.grid.empty
                 else f"_The paper's rows alone: ours are {self.NOT_RUN}._"]
        display(Markdown("\n\n".join(filter(None, notes))))

    def figure(self, what: str, draw) -> None:
        """Call ``draw()`` to show a figure of the grid's runs, or say that ``what`` is not drawn when the grid is
        empty (the prose above it describes a figure the profile did not make)."""
        if not self.grid.empty:
            draw()
            return
        from IPython.display import Markdown, display

        display(Markdown(f"_{what}: not drawn; the runs behind it are {self.NOT_RUN}._"))

    def convergence(self, rows: list[str]) -> str:
        """Whether each variant of ``rows`` is trained to its plateau, as one line under its table."""
        if not self.plateaus:
            return ("_No learning curves were logged for these variants, so none is shown to be converged and no "
                    "claim on them is judged._")
        parts = []
        for v in rows:
            p = self.plateaus.get(v)
            ran = self.grid[self.grid.variant == v] if "variant" in self.grid else self.grid.iloc[0:0]
            if len(ran) and "status" in ran and (ran.status == "failed").all():
                parts.append(f"{v}: failed (no run finished, see the note above)")
            elif p is None:
                parts.append(f"{v}: no learning curve")
            elif p.label != v:
                parts.append(f"{v}: {p.label}'s runs re-scored, {'converged' if p.converged else 'not converged'}")
            elif p.converged:
                parts.append(f"{v}: converged (settles by step {p.settled_at} of {p.steps})")
            else:
                parts.append(f"{v}: **not converged** ({p.why})")
        return "_Plateau (the first seed's learning curves, `rdlib.plateau`):_ " + "; ".join(parts) + "."

    def paper_effect(self, a: str, b: str, metric: str) -> float | None:
        """The paper's A − B on ``metric`` in the table last shown with both variants' paper rows (PRO for our
        ``pro_rd`` / ``aupro``), or None when the paper has no such pair."""
        from rdlib.results import load_paper_numbers, paper_row

        if a not in self.paper_rows or b not in self.paper_rows or self.paper_rows[a][0] != self.paper_rows[b][0]:
            return None
        df = load_paper_numbers() if self.paper is None else self.paper
        col = "pro" if metric in ("pro_rd", "aupro") else metric
        try:
            va, vb = (float(paper_row(df, t, m, **match)[col]) for t, m, match in (self.paper_rows[a], self.paper_rows[b]))
        except (KeyError, TypeError, ValueError):
            return None
        return va - vb if np.isfinite(va) and np.isfinite(vb) else None

    def judge(self, a: str, b: str, claim: str, metric: str, paper_diff: float | None = None,
              paper_claim: bool = True) -> None:
        """Record :func:`judge` of the paper's claim "``a`` beats ``b`` on ``metric``" on the grid, with the paper's
        own effect (given, or read from the table last shown) to say whether the design could detect it, and show
        its sentence below the table (nothing when the grid is empty; ``log`` keeps every verdict). ``paper_claim``
        False: a claim of this book's own (e.g. about its teacher), not the paper's."""
        if self.grid.empty:
            return
        from IPython.display import Markdown, display

        effect = paper_diff if paper_diff is not None else self.paper_effect(a, b, metric)
        display(Markdown(self.log.add(judge(self.grid, a, b, metric, claim, paper_diff=effect, paper_claim=paper_claim,
                                                   min_design=self.min_design))))

    def run(self, variant: str, category: str, seed: int):
        """The trained run of one cell of the grid (:class:`rdlib.runs.Run`; for a re-scored variant, the run it
        re-scores); KeyError naming the cell when it is not in the grid or failed."""
        from pathlib import Path

        from rdlib.runs import load_run

        g = self.grid
        cell = g[(g.variant == variant) & (g.category == category) & (g.seed == seed) & (g.status != "failed")] \
            if not g.empty else g
        if cell.empty:
            raise KeyError(f"no finished run of {variant!r} on {category!r} with seed {seed} in the grid")
        return load_run(Path(cell.run_dir.iloc[0]))

    def markdown(self) -> str:
        """The recorded verdicts as a bullet list (what the chapter prints)."""
        return self.log.markdown(self.SKIPPED)


def read_claims(profile: str, runs_dir: str | Path | None = None) -> pd.DataFrame:
    """Every chapter's saved verdicts for ``profile`` (an empty table when none ran yet)."""
    folder = claims_file("x", profile, runs_dir).parent
    frames = [pd.read_csv(p) for p in sorted(folder.glob("*.csv"))] if folder.is_dir() else []
    frames = [f for f in frames if len(f)]
    return (pd.concat(frames, ignore_index=True) if frames
            else pd.DataFrame(columns=[*CLAIM_COLUMNS, "label"]))


def paper_claims(df: pd.DataFrame | None = None, datasets=("mvtec_ad",),
                 metrics=("i_auroc", "i_ap", "p_auroc", "p_ap", "pro")) -> pd.DataFrame:
    """Every "our method beats RD" and "... beats RD++" of the URD, AAND and RD-RE result tables on ``datasets``
    (the mean row of each, where the paper's value is higher), as claims to judge: paper, table, a, b (rdlib method names), metric (ours), the paper's
    two values and their difference, and the claim's text."""
    from rdlib.results import load_paper_numbers, our_pro_metrics

    df = load_paper_numbers() if df is None else df
    rows = []
    means = df[(df.category == "mean") & df.dataset.isin(datasets) & df.method.isin(list(PAPER_METHODS))]
    for (table_id, dataset), t in means.groupby(["table_id", "dataset"], sort=False):
        own = OWN_METHOD.get(t.paper.iloc[0])
        if own is None or own not in set(t.method):
            continue
        for other in ("rd", "rdpp"):
            if other not in set(t.method):
                continue
            for metric in metrics:
                if metric not in t.columns:
                    continue
                va = t.loc[t.method == own, metric].dropna()
                vb = t.loc[t.method == other, metric].dropna()
                if va.empty or vb.empty or va.iloc[0] <= vb.iloc[0]:     # a tie or a loss is not a claim
                    continue
                a, b = PAPER_METHODS[own], PAPER_METHODS[other]
                for ours in (our_pro_metrics(t.pro_variant.iloc[0]) if metric == "pro" else (metric,)):
                    rows.append({"source": f"{t.paper.iloc[0]} {t.table.iloc[0]}", "table_id": table_id, "dataset": dataset,
                                 "a": a, "b": b, "metric": ours, "paper_a": float(va.iloc[0]),
                                 "paper_b": float(vb.iloc[0]), "paper_diff": float(va.iloc[0] - vb.iloc[0]),
                                 "claim": f"{METHOD_LABELS[a]} beats {METHOD_LABELS[b]} on {_label(ours)}"})
    return pd.DataFrame(rows)


def _label(metric: str) -> str:
    from rdlib.results import METRIC_LABELS

    return METRIC_LABELS.get(metric, metric)


__all__ = ["AblationReport", "CLAIM_COLUMNS", "ClaimLog", "METHOD_LABELS", "VERDICTS", "Verdict", "claims_file",
           "judge", "paper_claims", "read_claims"]
