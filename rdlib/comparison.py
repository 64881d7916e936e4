"""The comparison chapter's pieces: every method on one protocol (one image size, the same data, seeds and teacher),
read from the sweep's long table (:func:`rdlib.sweep.run_sweep`, one row per method × category × seed).

    size = protocol_size(["rd", "urd"], "book")               # one size for every method, or a clear error
    swept = sweep_to_plateau(METHODS, CATEGORIES, SEEDS, "book", root, {"rd": 5, "urd": 10})   # curves, then seeds
    ok = rdlib.plateau.mark(swept.rows, swept.plateaus)          # each run converged or not
    results = method_results(ok, METRICS, LABELS)               # mean ± 95 % interval per method
    versus_reference(ok, ["rd", "urd"], "patch_knn", LABELS)     # verdicts against the training-free reference
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rdlib.claims import BOOK_DESIGN, judge
from rdlib.results import METRIC_LABELS


def protocol_size(methods, profile: str) -> int:
    """The image size every method's ``profile`` trains at; ValueError when they differ (one protocol, one size)."""
    from rdlib.methods import method_profile

    sizes = {m: method_profile(m, profile)["options"]["image_size"] for m in methods}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"METHOD_PROFILE={profile!r} gives the methods different image sizes {sizes}: one protocol "
                         "needs one size; override it in the profiles or pick another profile")
    return int(next(iter(sizes.values())))


@dataclass
class PlateauSweep:
    """The comparison's runs: every method's first seed evaluated during training, then the other seeds of the
    methods whose plateau was reached (:func:`sweep_to_plateau`)."""

    rows: pd.DataFrame                         # the long table, one row per task (failed ones included)
    tasks: list                                # the tasks that ran, first seed first
    plateaus: dict                             # method -> rdlib.plateau.Plateau (trained methods with curves)
    skipped: list[str] = field(default_factory=list)    # methods whose other seeds were not trained (not converged)
    report: str = ""
    curves_every: dict = field(default_factory=dict)    # method -> evaluation interval of its first seed's runs
    curves: dict = field(default_factory=dict)          # method -> its learning curves (rdlib.experiments)

    def curves_figure(self, method: str) -> None:
        """``method``'s learning curves with its plateau (:func:`rdlib.viz.learning_curves_figure`), when it has
        them (e.g. RD++, which has no chapter to show them)."""
        from rdlib.viz import learning_curves_figure

        if method in self.curves and len(self.curves[method]):
            learning_curves_figure(self.curves[method], self.plateaus[method])

    def curves_sentence(self, labels: dict) -> str:
        """How often each method's first seed was evaluated, e.g. "RD every 5, URD every 10 epochs or steps"."""
        every = [f"{labels.get(m, m)} every {n}" for m, n in self.curves_every.items() if n]
        return ", ".join(every) + " epochs or steps of its schedule" if every else "no curves in this profile"

    def finding(self, labels: dict) -> str:
        """How many trained methods converged, and which were not (and so not judged)."""
        converged = [labels.get(m, m) for m, p in self.plateaus.items() if p.converged]
        return (f"{len(converged)} of {len(self.plateaus)} trained methods converged at their schedules"
                + (f" ({', '.join(converged)})" if converged else "") + "; "
                + ("not converged, and so not judged: " + ", ".join(labels.get(m, m) for m in self.skipped) + "."
                   if self.skipped else "every claim on this page rests on converged runs."))

    def plateau_table(self, labels: dict) -> pd.DataFrame:
        """One row per trained method: converged or not, the step its mean curve settles by, of how many, the
        level it settles at and, if not converged, why."""
        from rdlib.results import with_dashes

        return with_dashes(pd.DataFrame({labels.get(m, m): {
            "plateau": p.status, "settles by step": p.settled_at if p.converged else None, "of steps": p.steps,
            "level (I-AUROC)": round(p.level, 1), "categories": len(p.categories), "why not": p.why or None}
            for m, p in self.plateaus.items()}).T)


def sweep_to_plateau(methods, categories, seeds, profile: str, data_root, curves_every: dict, *, data_format=None,
                     table=None, runs_dir=None, address=None, workers: int = 2, threads: int | None = None,
                     labels: dict | None = None) -> PlateauSweep:
    """Every method on ``categories`` with the first of ``seeds``, evaluated during training every
    ``curves_every[method]`` units of its budget (epochs or steps, as its profile counts them; the key does not
    change, so runs a chapter trained with the same evaluations are reused); each trained method's plateau read from
    those curves (:func:`rdlib.plateau.plateau`); then the other seeds only for the methods that converged, are
    training-free, or were not asked for curves (``curves_every`` 0 or missing: no plateau, no gate). One
    :func:`rdlib.sweep.run_sweep` per stage into the same ``table``; failures become rows. ``labels``: the names
    the plateaus' sentences use (``plateaus`` is keyed by method, as the rows' ``variant``)."""
    from rdlib.experiments import CategoryRuns, learning_curves
    from rdlib.plateau import plateau
    from rdlib.runs import RunError, load_run
    from rdlib.sweep import plan, run_sweep

    seeds = list(seeds)
    kw = dict(table=table, runs_root=runs_dir, address=address, workers=workers, threads=threads, warn=False)
    first = [t for m in methods for t in plan([m], categories, seeds[:1], profile=profile, data_root=data_root,
                                              data_format=data_format, fit={"eval_every": int(curves_every.get(m, 0))})]
    stage1 = run_sweep(first, **kw)
    plateaus, curves = {}, {}
    for m in methods:
        done = stage1.rows[(stage1.rows.method == m) & (stage1.rows.status != "failed")]
        if not curves_every.get(m) or (len(done) and (done.steps == 0).all()):
            continue                                            # no curves asked, or training-free
        runs = CategoryRuns()
        for task in (t for t in first if t.method == m):
            try:
                runs.runs[task.category] = load_run(task.spec(), runs_dir)
            except (RunError, FileNotFoundError) as e:
                runs.failed[task.category] = str(e)
        curves[m] = learning_curves(runs)
        plateaus[m] = plateau(curves[m], (labels or {}).get(m, m))
    skipped = [m for m, p in plateaus.items() if not p.converged]
    gated = [m for m in methods if m not in skipped]
    rest = plan(gated, categories, seeds[1:], profile=profile, data_root=data_root,
                data_format=data_format) if seeds[1:] and gated else []
    stage2 = run_sweep(rest, **kw) if rest else None
    rows = pd.concat([stage1.rows] + ([stage2.rows] if stage2 else []), ignore_index=True)
    report = stage1.report() + ("\n" + stage2.report() if stage2 else "")
    return PlateauSweep(rows, first + rest, plateaus, skipped, report,
                        {m: int(curves_every.get(m, 0)) for m in methods if m in plateaus}, curves)


def method_results(ok: pd.DataFrame, metrics, labels: dict) -> pd.DataFrame:
    """Per method: mean ± half-width of the 95 % interval over categories and seeds of each metric, readable
    labels."""
    from rdlib.stats import mean_interval_table

    table = mean_interval_table(ok, metrics)
    table.index = [labels.get(v, v) for v in table.index]
    table.columns = [METRIC_LABELS.get(c, c) for c in table.columns]
    return table


def rank_table(ok: pd.DataFrame, labels: dict, metrics=("i_auroc", "p_auroc", "aupro")) -> pd.DataFrame:
    """Mean rank and cells won per method for each metric (:func:`rdlib.stats.mean_ranks`), best I-AUROC first."""
    from rdlib.stats import mean_ranks

    ranks = pd.concat({METRIC_LABELS[m]: mean_ranks(ok, m)[["mean rank", "cells won"]]
                       for m in metrics}, axis=1)
    ranks.index = [labels.get(v, v) for v in ranks.index]
    return ranks.sort_values((METRIC_LABELS[metrics[0]], "mean rank"))


def method_figure(ok: pd.DataFrame, methods, labels: dict) -> None:
    """I-AUROC and P-AUROC per category, one dot per method with its 95 % interval over seeds."""
    import matplotlib.pyplot as plt

    from rdlib.viz import show_figure

    from rdlib.viz import method_dots

    fig, axes = plt.subplots(2, 1, figsize=(6.8, 6.4), sharex=True)
    method_dots(axes[0], ok, "i_auroc", methods, labels, ylabel="I-AUROC (%)")
    method_dots(axes[1], ok, "p_auroc", methods, labels, ylabel="P-AUROC (%)")
    axes[1].get_legend().remove()
    fig.tight_layout()
    show_figure(fig)


def versus_reference(ok: pd.DataFrame, methods, reference: str, labels: dict,
                     metrics=("i_auroc", "p_auroc")) -> tuple[pd.DataFrame, str]:
    """"<method> beats <reference>" judged for every other method and metric (:func:`rdlib.claims.judge` on at least
    :data:`~rdlib.claims.BOOK_DESIGN`; the claim is this book's, not a paper's): the verdict rows and a sentence counting the methods the reference is
    ahead of with the whole interval on its side."""
    if reference not in methods:
        return pd.DataFrame(), ""
    rows = pd.DataFrame([judge(ok, m, reference, metric,
                               f"{labels[m]} beats {labels[reference]} on {METRIC_LABELS[metric]}",
                               min_design=BOOK_DESIGN).row()
                         for m in methods if m != reference for metric in metrics])
    behind = {metric: int((g.verdict == "contradicted").sum()) for metric, g in rows.groupby("metric")}
    unjudged = {metric: int((g.verdict == "not judged").sum()) for metric, g in rows.groupby("metric")}
    sentence = (f"The training-free reference is ahead, with the whole interval on its side, of "
                f"{behind.get('i_auroc', 0)} of {len(methods) - 1} trained methods on I-AUROC and of "
                f"{behind.get('p_auroc', 0)} on P-AUROC")
    n = unjudged.get("i_auroc", 0)
    sentence += (f"; {n} comparison{'s' if n != 1 else ''} on I-AUROC {'were' if n != 1 else 'was'} not judged (runs "
                 "not shown trained to their plateau, or too few)." if n else ".")
    return rows, sentence


def defect_types(ok: pd.DataFrame, labels: dict, reference: str | None = None) -> tuple[pd.DataFrame, str]:
    """I-AUROC of each defect type against the normal test images (:func:`rdlib.experiments.per_defect_auroc`,
    from each run's stored predictions), mean over the categories and seeds that have it: one row per defect type,
    one column per method, and, with ``reference``, a sentence naming for each trained method the defect types where
    the reference's I-AUROC minus the method's is largest and smallest."""
    from pathlib import Path
    from types import SimpleNamespace

    from rdlib.experiments import per_defect_auroc

    rows = []
    for r in ok.to_dict("records"):
        path = Path(str(r.get("run_dir", ""))) / "predictions.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:          # scores and defect types only, not the maps
                pred = SimpleNamespace(scores=z["scores"], defects=z["defects"].tolist())
            rows += [{"method": r["method"], "defect": d, "i_auroc": v} for d, v in per_defect_auroc(pred).items()]
    if not rows:
        return pd.DataFrame(), ""
    table = pd.DataFrame(rows).pivot_table(index="defect", columns="method", values="i_auroc", aggfunc="mean")
    methods = [m for m in dict.fromkeys(ok.method) if m in table.columns]
    table = table[methods]
    sentence = ""
    if reference in table.columns:
        parts = []
        for m in methods:
            if m == reference:
                continue
            gap = (table[reference] - table[m]).dropna().sort_values()
            if len(gap):
                parts.append(f"{labels.get(m, m)} largest on {gap.index[-1]} ({gap.iloc[-1]:+.1f}), smallest on "
                             f"{gap.index[0]} ({gap.iloc[0]:+.1f})")
        ref = labels.get(reference, reference)
        sentence = (f"{ref}'s I-AUROC minus each method's, per defect type: " + "; ".join(parts)
                    + f" (a negative difference: the method is ahead of {ref} there).") if parts else ""
    table.columns = [labels.get(m, m) for m in table.columns]
    return table, sentence


def _signed(v: float) -> str:
    return f"{v:+.1f}" if np.isfinite(v) else ""


def _interval(low, high) -> list[str]:
    return [f"[{lo:+.1f}, {hi:+.1f}]" if np.isfinite(lo) else "" for lo, hi in zip(low, high)]


def judged_claims(ok: pd.DataFrame) -> pd.DataFrame:
    """Every paper claim that compares two methods of this book (:func:`rdlib.claims.paper_claims`) judged on the
    sweep's table at this budget (on at least :data:`~rdlib.claims.BOOK_DESIGN`), one row per claim."""
    from rdlib.claims import paper_claims

    return pd.DataFrame([{"source": c.source, **judge(ok, c.a, c.b, c.metric, c.claim, paper_diff=c.paper_diff,
                                                      paper_claim=True, min_design=BOOK_DESIGN).row()}
                         for c in paper_claims().itertuples()])


DATASET_NAMES = {"mvtec_ad": "MVTec AD", "visa": "VisA", "btad": "BTAD", "mpdd": "MPDD"}
TEACHER_NAMES = {"wide_resnet50_2": "WideResNet50-2", "resnet18": "ResNet18", "resnet50": "ResNet50"}


def paper_protocol(claims: pd.DataFrame | None = None) -> str:
    """How the papers obtained the numbers of their claims (:func:`rdlib.claims.paper_claims`), read from the
    protocols of their tables in ``paper_reported.yaml``: e.g. "MVTec AD at 256² with a WideResNet50-2 teacher
    (URD, AAND), MVTec AD at 256² with a ResNet18 teacher (RD-RE)"."""
    from rdlib.claims import METHOD_LABELS, PAPER_METHODS, paper_claims
    from rdlib.results import load_paper_numbers

    df = load_paper_numbers()
    claims = paper_claims(df) if claims is None else claims
    quoted = set(zip(claims.table_id, claims.dataset))                  # each claim's own table and dataset
    own_pair = pd.Series([pair in quoted for pair in zip(df.table_id, df.dataset)], index=df.index)
    rows = df[own_pair & df.method.isin(list(PAPER_METHODS)) & (df.category == "mean")]
    parts = []
    for (d, size, b), t in rows.groupby(["dataset", "image_size", "backbone"], dropna=False, sort=False):
        papers = ", ".join(METHOD_LABELS[PAPER_METHODS[p]] for p in dict.fromkeys(t.paper))
        at = f" at {size:.0f}²" if pd.notna(size) else ""
        teacher = f" with a {TEACHER_NAMES.get(b, b)} teacher" if pd.notna(b) and b != "unknown" else ""
        parts.append(f"{DATASET_NAMES.get(d, d)}{at}{teacher} ({papers})")
    return ", ".join(parts)


def claims_display(judged: pd.DataFrame, paper: bool = True) -> pd.DataFrame:
    """Verdict rows as a table a reader can scan: the paper's Δ (when ``paper``), ours, its interval, the smallest
    effect the design detects, the design and the verdict."""
    shown = judged.assign(**{"our Δ": judged["diff"].map(_signed), "95 % interval": _interval(judged.low, judged.high),
                             "detects": judged.detectable.map(lambda v: f"≥ {v:.1f}" if np.isfinite(v) else "")})
    columns = ["source", "claim", "our Δ", "95 % interval", "detects", "design", "label"]
    if paper:
        shown["paper Δ"] = judged.paper_diff.map(_signed)
        columns.insert(2, "paper Δ")
    return shown[columns].set_index(["source", "claim"])


def noise_drops(tasks, seed: int, categories, sigmas, labels: dict, runs_dir=None, device=None) -> pd.DataFrame:
    """For the first-seed run of every method on ``categories``: the change of I-AUROC and P-AUROC from the clean
    test set to Gaussian noise of each σ (:func:`rdlib.robustness.noise_robustness`), mean over categories, one row
    per method. Runs that failed are skipped (the sweep lists them)."""
    from rdlib.robustness import noise_robustness
    from rdlib.runs import RunError, load_run

    rows = []
    for task in tasks:
        if task.seed != seed or task.category not in categories:
            continue
        try:
            run = load_run(task.spec(), runs_dir)
        except (RunError, FileNotFoundError):
            continue
        t = noise_robustness(run, sigmas, device=device, metrics=("i_auroc", "p_auroc"))
        rows += [{"method": labels[task.method], "category": task.category, **r} for r in t.to_dict("records")]
    noise = pd.DataFrame(rows)
    if noise.empty:
        return noise
    clean = noise[noise.sigma == 0].set_index(["method", "category"])[["i_auroc", "p_auroc"]].add_suffix("_clean")
    drop = noise.merge(clean, on=["method", "category"])
    drop["Δ I-AUROC"] = drop.i_auroc - drop.i_auroc_clean
    drop["Δ P-AUROC"] = drop.p_auroc - drop.p_auroc_clean
    drop["σ"] = drop.sigma.map("σ = {:g}".format)
    order = list(dict.fromkeys(labels[t.method] for t in tasks))
    return drop[drop.sigma > 0].pivot_table(index="method", columns="σ", values=["Δ I-AUROC", "Δ P-AUROC"],
                                            aggfunc="mean").reindex([m for m in order if m in set(drop.method)])


def inference_costs(tasks, image_size: int, batches, labels: dict, runs_dir=None) -> pd.DataFrame:
    """:func:`rdlib.cost.inference_cost` of each method's first trained run at each batch size, on the CPU and, when
    there is one, the GPU (its latency and memory columns suffixed ``cuda``)."""
    import torch

    from rdlib.cost import inference_cost
    from rdlib.runs import RunError, load_run

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = {}
    for m in dict.fromkeys(t.method for t in tasks):
        try:
            run = load_run(next(t for t in tasks if t.method == m).spec(), runs_dir)
        except (RunError, FileNotFoundError):
            continue
        row = {}
        for dev in devices:
            method = run.load_method(dev)
            for b in batches:
                for k, v in inference_cost(method, image_size, batch=b, device=dev, repeats=3).items():
                    gpu = dev != "cpu" and (k.startswith("latency") or k.startswith("peak"))
                    row[f"{k} {dev}" if gpu else k] = v
        rows[labels[m]] = row
    cost = pd.DataFrame(rows).T
    if "GFLOPs" in cost:
        cost["GFLOPs"] = cost["GFLOPs"].map("{:.3f}".format)              # per image; small at this size
    return cost


def chapter_main_runs(methods, categories, profile: str, data_root, labels: dict, data_format=None,
                      runs_dir=None, compare: pd.DataFrame | None = None, compare_size: int | None = None) -> pd.DataFrame:
    """The paper chapters' main runs (``profile``, one seed), found by their keys without training anything: per
    method the mean I-AUROC, P-AUROC and AUPRO over the categories found, and how many were found; with
    ``compare`` (the sweep's rows) its mean I-AUROC per method beside them."""
    from rdlib.runs import RunError, RunSpec, load_run

    rows = {}
    for m in methods:
        found = []
        for cat in categories:
            try:
                found.append(load_run(RunSpec.from_profile(m, profile, data_root, cat, None, None, data_format),
                                      runs_dir).metrics)
            except (RunError, FileNotFoundError, ValueError):
                pass
        rows[labels[m]] = {**{METRIC_LABELS[k]: np.mean([f[k] for f in found]) if found else np.nan
                              for k in ("i_auroc", "p_auroc", "aupro")}, "categories found": len(found)}
    table = pd.DataFrame(rows).T
    table["categories found"] = table["categories found"].astype(int)
    if compare is not None:
        table[f"I-AUROC at {compare_size}² (sections 3–4)"] = compare.groupby("method").i_auroc.mean().rename(
            index=labels)
    return table


def order_sentence(table: pd.DataFrame, size: int) -> str:
    """The methods of :func:`chapter_main_runs` by mean I-AUROC, as a sentence; a method found on fewer categories
    than the others says on how many (its mean is over those only)."""
    order = table["I-AUROC"].dropna().sort_values(ascending=False)
    found = table["categories found"] if "categories found" in table else pd.Series(dtype=int)
    most = int(found.max()) if len(found) else 0

    def fewer(m):
        n = int(found.get(m, most))
        return f" ({n} categor{'y' if n == 1 else 'ies'})" if n < most else ""

    return (f"mean I-AUROC of the chapters' runs at {size}²: " + ", ".join(f"{m} {v:.1f}{fewer(m)}"
                                                                           for m, v in order.items())
            if len(order) else "no chapter runs found")


def tally(judged: pd.DataFrame, ablations: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """How many verdicts came out each way, for the papers' claims against RD / RD++ and for the chapters'
    ablation orderings, and a sentence for the first."""
    table = pd.concat({"papers' claims vs RD / RD++": judged.verdict.value_counts(),
                       "ablation orderings": ablations.verdict.value_counts() if len(ablations) else pd.Series(dtype=int)},
                      axis=1).fillna(0).astype(int)
    counts = table.iloc[:, 0]
    return table, ", ".join(f"{n} {v}" for v, n in counts.items() if n) + " of the papers' claims against RD / RD++"


__all__ = ["PlateauSweep", "sweep_to_plateau", "defect_types", "chapter_main_runs", "order_sentence", "tally", "claims_display", "inference_costs", "judged_claims", "method_figure",
           "method_results", "noise_drops", "protocol_size", "rank_table", "versus_reference"]
