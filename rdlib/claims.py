"""The papers' claims judged on our runs. One function, :func:`judge_claim`, turns "A beats B on a metric" and a long
table of runs (variant, category, seed, metrics) into a row with the measured difference, its 95 % interval and the
verdict of :func:`rdlib.stats.compare_variants`. The paper chapters record their ablation verdicts through a
:class:`ClaimLog` (the sentences they print come from it) and save them; the comparison chapter reads them back
beside the "ours beats RD" claims it extracts from ``paper_numbers.yaml`` with :func:`paper_claims`.

    log = ClaimLog("urd")
    print(log.judge(grid, "E–T–S (RD-E)", "T–S (= RD)", "p_ap", "The expert improves P-AP (Table 5)"))
    log.save(profile="book")                                  # <runs>/claims/book/urd.csv
    claims = paper_claims()                                   # URD / AAND / RD-RE vs RD and RD++, MVTec AD means
    judged = judge_claims(results, claims)                    # results: the comparison's long table
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rdlib.stats import compare_variants

# paper_numbers.yaml method keys -> rdlib method names, and the method each paper that claims to beat RD proposes
PAPER_METHODS = {"rd": "rd", "rdpp": "rdpp", "urd": "urd", "aand": "aand", "rd_re": "rdre"}
OWN_METHOD = {"urd": "urd", "aand": "aand", "rd_re": "rd_re"}
METHOD_LABELS = {"rd": "RD", "rdpp": "RD++", "urd": "URD", "aand": "AAND", "rdre": "RD-RE", "patch_knn": "kNN"}
CLAIM_COLUMNS = ["source", "claim", "a", "b", "metric", "diff", "low", "high", "cells", "verdict", "sentence"]


def judge_claim(results: pd.DataFrame, a: str, b: str, metric: str, claim: str, margin: float = 0.0) -> dict:
    """The claim "``a`` beats ``b`` on ``metric``" judged on ``results`` (paired over category × seed): a row with
    diff, low, high, cells, verdict and the sentence the book prints. A claim that cannot be judged (a variant
    missing, every run of one failed) gets the verdict "not judged" and says why."""
    row = {"claim": claim, "a": a, "b": b, "metric": metric}
    try:
        c = compare_variants(results, a, b, metric, margin)
    except ValueError as e:
        return {**row, "diff": np.nan, "low": np.nan, "high": np.nan, "cells": 0, "verdict": "not judged",
                "sentence": f"{claim}: not judged ({e})."}
    return {**row, "diff": c.diff, "low": c.low, "high": c.high, "cells": c.cells, "verdict": c.verdict,
            "sentence": c.sentence(claim)}


def judge_claims(results: pd.DataFrame, claims: pd.DataFrame) -> pd.DataFrame:
    """:func:`judge_claim` for every row of ``claims`` (columns a, b, metric, claim; others are kept)."""
    out = []
    for _, c in claims.iterrows():
        out.append({**c.to_dict(), **judge_claim(results, c["a"], c["b"], c["metric"], c["claim"])})
    return pd.DataFrame(out)


def claims_file(chapter: str, profile: str, runs_dir: str | Path | None = None) -> Path:
    """Where a chapter's recorded verdicts live: ``<runs>/claims/<profile>/<chapter>.csv``."""
    from rdlib.runs import default_runs_dir

    return Path(runs_dir or default_runs_dir()) / "claims" / profile / f"{chapter}.csv"


class ClaimLog:
    """The verdicts one chapter prints, kept as rows so that another chapter can read them."""

    def __init__(self, chapter: str):
        self.chapter = chapter
        self.rows: list[dict] = []

    def judge(self, results: pd.DataFrame, a: str, b: str, metric: str, claim: str, margin: float = 0.0) -> str:
        """Judge and record the claim; returns its sentence."""
        row = judge_claim(results, a, b, metric, claim, margin)
        self.rows.append({"source": self.chapter, **row})
        return row["sentence"]

    def sentences(self) -> list[str]:
        return [r["sentence"] for r in self.rows]

    def markdown(self, empty: str = "_No claims judged._") -> str:
        """The sentences as a Markdown bullet list, or ``empty`` when none was judged."""
        return "\n".join(f"- {v}" for v in self.sentences()) or empty

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=CLAIM_COLUMNS)

    def save(self, profile: str, runs_dir: str | Path | None = None) -> Path:
        """Write the rows atomically to :func:`claims_file` (replacing the chapter's previous ones)."""
        from rdlib.utils import atomic_write_bytes

        path = claims_file(self.chapter, profile, runs_dir)
        atomic_write_bytes(path, self.table().to_csv(index=False).encode())
        return path


class AblationReport:
    """One chapter's ablation grid (the long table of :func:`rdlib.experiments.run_grid`) shown as the paper's tables
    with our rows beside the paper's, and judged claim by claim into a :class:`ClaimLog`.

        report = AblationReport("urd", grid, ["i_auroc", "p_ap"], paper=load_paper_numbers())
        report.table(["T–S (= RD)", "E–T–S (RD-E)"], "urd_table5", ["urd_base", "urd_expert"], ("p_auroc", "p_ap"))
        report.judge("E–T–S (RD-E)", "T–S (= RD)", "The expert improves P-AP (Table 5)", "p_ap")
        display(Markdown(report.markdown())); report.log.save("book")
    """

    SKIPPED = "_Ablations skipped in this profile._"

    def __init__(self, chapter: str, grid: pd.DataFrame, metrics, paper: pd.DataFrame | None = None):
        self.grid, self.metrics, self.paper = grid, list(metrics), paper
        self.log = ClaimLog(chapter)

    def table(self, rows: list[str], table_id: str, paper_methods: list, paper_metrics, **match) -> None:
        """Display the variants ``rows`` (mean ± 95 % interval) beside the paper's rows of ``table_id``
        (:func:`rdlib.results.ablation_table`); nothing when the grid is empty."""
        if self.grid.empty:
            return
        from IPython.display import display

        from rdlib.results import ablation_table

        display(ablation_table(self.grid, rows, self.metrics, table_id, paper_methods, paper_metrics, df=self.paper,
                               **match))

    def judge(self, a: str, b: str, claim: str, metric: str) -> str | None:
        """Judge and record "``a`` beats ``b`` on ``metric``" (:func:`judge_claim`); None when the grid is empty."""
        return None if self.grid.empty else self.log.judge(self.grid, a, b, metric, claim)

    def markdown(self) -> str:
        """The recorded verdicts as a bullet list (what the chapter prints)."""
        return self.log.markdown(self.SKIPPED)


def read_claims(profile: str, runs_dir: str | Path | None = None) -> pd.DataFrame:
    """Every chapter's saved verdicts for ``profile`` (an empty table when none ran yet)."""
    folder = claims_file("x", profile, runs_dir).parent
    frames = [pd.read_csv(p) for p in sorted(folder.glob("*.csv"))] if folder.is_dir() else []
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CLAIM_COLUMNS)


def _our_metric(metric: str, pro_variant) -> str:
    """The metric of ours a paper's column is judged on: PRO computed as the RD code does where the paper says so,
    the standard pooled AUPRO where it does not say."""
    if metric != "pro":
        return metric
    return "pro_rd" if pro_variant == "rd_per_image" else "aupro"


def paper_claims(df: pd.DataFrame | None = None, datasets=("mvtec_ad",),
                 metrics=("i_auroc", "i_ap", "p_auroc", "p_ap", "pro")) -> pd.DataFrame:
    """Every "our method beats RD" and "... beats RD++" of the URD, AAND and RD-RE result tables on ``datasets``
    (the mean row of each, where the paper's value is higher), as claims to judge: paper, table, a, b (rdlib method names), metric (ours), the paper's
    two values and their difference, and the claim's text."""
    from rdlib.results import load_paper_numbers

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
                ours = _our_metric(metric, t.pro_variant.iloc[0])
                rows.append({"source": f"{t.paper.iloc[0]} {t.table.iloc[0]}", "table_id": table_id, "dataset": dataset,
                             "a": a, "b": b, "metric": ours, "paper_a": float(va.iloc[0]), "paper_b": float(vb.iloc[0]),
                             "paper_diff": float(va.iloc[0] - vb.iloc[0]),
                             "claim": f"{METHOD_LABELS[a]} beats {METHOD_LABELS[b]} on {_label(ours)}"})
    return pd.DataFrame(rows)


def _label(metric: str) -> str:
    from rdlib.results import METRIC_LABELS

    return METRIC_LABELS.get(metric, metric)


__all__ = ["CLAIM_COLUMNS", "ClaimLog", "METHOD_LABELS", "claims_file", "judge_claim", "judge_claims", "paper_claims",
           "read_claims"]
