"""The comparison chapter's pieces: every method on one protocol (one image size, the same data, seeds and teacher),
read from the sweep's long table (:func:`rdlib.sweep.run_sweep`, one row per method × category × seed).

    size = protocol_size(["rd", "urd"], "compare")            # one size for every method, or a clear error
    results = method_results(ok, METRICS, LABELS)               # mean ± 95 % interval per method
    versus_reference(ok, ["rd", "urd"], "patch_knn", LABELS)     # verdicts against the training-free reference
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from rdlib.claims import judge
from rdlib.results import METRIC_LABELS


def protocol_size(methods, profile: str) -> int:
    """The image size every method's ``profile`` trains at; ValueError when they differ (one protocol, one size)."""
    from rdlib.methods import method_profile

    sizes = {m: method_profile(m, profile)["options"]["image_size"] for m in methods}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"METHOD_PROFILE={profile!r} gives the methods different image sizes {sizes}: one protocol "
                         "needs one size; override it in the profiles or pick another profile")
    return int(next(iter(sizes.values())))


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

    from rdlib.viz import method_dots

    fig, axes = plt.subplots(2, 1, figsize=(6.8, 6.4), sharex=True)
    method_dots(axes[0], ok, "i_auroc", methods, labels, ylabel="I-AUROC (%)")
    method_dots(axes[1], ok, "p_auroc", methods, labels, ylabel="P-AUROC (%)")
    axes[1].get_legend().remove()
    fig.tight_layout()
    plt.show()


def versus_reference(ok: pd.DataFrame, methods, reference: str, labels: dict,
                     metrics=("i_auroc", "p_auroc")) -> tuple[pd.DataFrame, str]:
    """"<method> beats <reference>" judged for every other method and metric (:func:`rdlib.claims.judge`; the
    claim is this book's, not a paper's): the verdict rows and a sentence counting the methods the reference is
    ahead of with the whole interval on its side."""
    if reference not in methods:
        return pd.DataFrame(), ""
    rows = pd.DataFrame([judge(ok, m, reference, metric,
                               f"{labels[m]} beats {labels[reference]} on {METRIC_LABELS[metric]}").row()
                         for m in methods if m != reference for metric in metrics])
    behind = {metric: int((g.verdict == "contradicted").sum()) for metric, g in rows.groupby("metric")}
    unjudged = {metric: int((g.verdict == "not judged").sum()) for metric, g in rows.groupby("metric")}
    sentence = (f"The training-free reference is ahead, with the whole interval on its side, of "
                f"{behind.get('i_auroc', 0)} of {len(methods) - 1} trained methods on I-AUROC and of "
                f"{behind.get('p_auroc', 0)} on P-AUROC")
    sentence += (f"; {unjudged.get('i_auroc', 0)} comparisons on I-AUROC were not judged (runs not shown trained to "
                 "their plateau, or too few)." if unjudged.get("i_auroc") else ".")
    return rows, sentence


def _signed(v: float) -> str:
    return f"{v:+.1f}" if np.isfinite(v) else ""


def _interval(low, high) -> list[str]:
    return [f"[{lo:+.1f}, {hi:+.1f}]" if np.isfinite(lo) else "" for lo, hi in zip(low, high)]


def judged_claims(ok: pd.DataFrame) -> pd.DataFrame:
    """Every paper claim that compares two methods of this book (:func:`rdlib.claims.paper_claims`) judged on the
    sweep's table at this budget, one row per claim."""
    from rdlib.claims import paper_claims

    return pd.DataFrame([{"source": c.source, **judge(ok, c.a, c.b, c.metric, c.claim,
                                                      paper_diff=c.paper_diff, paper_claim=True).row()}
                         for c in paper_claims().itertuples()])


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
    """The methods of :func:`chapter_main_runs` by mean I-AUROC, as a sentence."""
    order = table["I-AUROC"].dropna().sort_values(ascending=False)
    return (f"mean I-AUROC of the chapters' runs at {size}²: " + ", ".join(f"{m} {v:.1f}" for m, v in order.items())
            if len(order) else "no chapter runs found")


def tally(judged: pd.DataFrame, ablations: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """How many verdicts came out each way, for the papers' claims against RD / RD++ and for the chapters'
    ablation orderings, and a sentence for the first."""
    table = pd.concat({"papers' claims vs RD / RD++": judged.verdict.value_counts(),
                       "ablation orderings": ablations.verdict.value_counts() if len(ablations) else pd.Series(dtype=int)},
                      axis=1).fillna(0).astype(int)
    counts = table.iloc[:, 0]
    return table, ", ".join(f"{n} {v}" for v, n in counts.items() if n) + " of the papers' claims against RD / RD++"


__all__ = ["chapter_main_runs", "order_sentence", "tally", "claims_display", "inference_costs", "judged_claims", "method_figure",
           "method_results", "noise_drops", "protocol_size", "rank_table", "versus_reference"]
