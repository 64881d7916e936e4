"""Experiments the chapters share, on the one executor (:func:`rdlib.sweep.run_sweep`): a grid of labelled runs
(variants × categories × seeds, plus variants that re-score a trained variant's runs) into the one long table,
per-category runs, per-defect AUROC, re-scoring, learning curves.

    grid = run_grid("rd", "book", root, ["brick"], {"Pre": {"options": {"bottleneck": "pre"}}}, seeds=[1, 2, 3],
                    workers=2)                                # a row per run: variant, method, category, seed, status...
    runs = train_categories("rd", "book", root, ["brick", "grass"])
    table = results_table(runs)                               # one row per category + mean; failures marked

``workers`` > 1 on a CPU trains the unfinished runs on a local Dask cluster of one-thread workers (``address``: an
existing cluster); ``workers=1`` trains them here. A failed run is a row (status ``failed`` and its ``error``), never
a crash.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rdlib.metrics import METRICS, auroc
from rdlib.runs import Run, build_datasets, load_run
from rdlib.training import EvalResult, evaluate

log = logging.getLogger(__name__)


@dataclass
class CategoryRuns:
    """Finished runs by category, and the categories that failed with their error."""

    runs: dict[str, Run] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def run_grid(method: str, profile: str, data_root, categories, variants: dict[str, dict], seeds=(None,),
             data_format: str | None = None, runs_dir=None, device=None, progress: bool = False,
             workers: int = 1, rescored: dict[str, tuple[str, dict]] | None = None,
             address: str | None = None, threads: int | None = None) -> pd.DataFrame:
    """Every (variant, category, seed) of ``method``: the long table of :func:`rdlib.sweep.run_sweep` (a row per
    run, in this order: variant, method, category, seed, key, status, error, the metrics, image size, optimizer
    steps, training seconds, run folder).

    ``variants``: ``{label: {"options": {...}, "fit": {...}}}`` on top of the profile; ``seeds``: values of the fit
    seed (None: the variant's or the profile's). ``rescored``: ``{label: (trained variant, scoring options)}``:
    variants that train nothing of their own, each a trained variant's runs re-scored (:func:`rescore`, e.g.
    ``{"gate only": ("full", {"source": "gate"})}``); their rows carry the trained runs' design and key and the
    status ``rescored``.
    """
    from rdlib.methods import method_profile
    from rdlib.sweep import SweepTask, run_sweep

    from rdlib.training import FitConfig

    default_seed = method_profile(method, profile)["fit"].get("seed", FitConfig().seed)
    tasks = []
    for label, v in variants.items():
        fit = dict(v.get("fit") or {})
        for cat in categories:
            for seed in seeds:
                s = fit.get("seed", default_seed) if seed is None else seed
                tasks.append(SweepTask(method, cat, int(s), profile, str(data_root), dict(v.get("options") or {}),
                                       data_format, {k: x for k, x in fit.items() if k != "seed"}, variant=label))
    result = run_sweep(tasks, runs_root=runs_dir, address=address, workers=workers, threads=threads, warn=False,
                       device=None if device is None else str(device), progress=progress)
    rows = result.rows.to_dict("records")
    for r in rows:
        if r["status"] == "failed":
            log.warning("%s %s %s seed %s: %s", method, r["variant"], r["category"], r["seed"], r["error"])
    for label, (source, scoring) in (rescored or {}).items():
        if source not in variants:
            raise ValueError(f"rescored[{label!r}] re-scores {source!r}, which is not a trained variant of this grid "
                             f"({sorted(variants)})")
        for r in [r for r in rows if r["variant"] == source]:
            row = {**{k: r.get(k) for k in ("method", "category", "seed", "profile", "key", "image_size", "steps",
                                             "run_dir")}, "variant": label}
            try:
                if r["status"] == "failed":
                    raise RuntimeError(f"its run of {source!r} failed")
                m = rescore(load_run(Path(r["run_dir"])), {label: scoring}, device)[label]
                row.update(status="rescored", error="", **{k: m.get(k, np.nan) for k in METRICS})
            except Exception as e:  # noqa: BLE001 - a failed cell is a row, not a crash
                row.update(status="failed", error=f"{type(e).__name__}: {e}")
            rows.append(row)
    front = ["variant", "method", "category", "seed", "key", "status", "error", *METRICS]
    table = pd.DataFrame(rows)
    for c in front:
        if c not in table:
            table[c] = np.nan
    return table[front + [c for c in table.columns if c not in front]]


def train_categories(method: str, profile: str, data_root, categories, options: dict | None = None,
                     fit: dict | None = None, data_format: str | None = None, runs_dir=None, device=None,
                     progress: bool = False, workers: int = 1) -> CategoryRuns:
    """Train (or reuse) one run per category (:func:`run_grid` with one variant); a failing category is recorded
    with its error, never silently dropped."""
    grid = run_grid(method, profile, data_root, categories, {method: {"options": options or {}, "fit": fit or {}}},
                    data_format=data_format, runs_dir=runs_dir, device=device, progress=progress, workers=workers)
    out = CategoryRuns()
    for r in grid.itertuples():
        if r.status == "failed":
            out.failed[r.category] = r.error
        else:
            out.runs[r.category] = load_run(Path(r.run_dir))
    return out


def results_table(cr: CategoryRuns, metrics=METRICS) -> pd.DataFrame:
    """One row per category (failed ones included, metrics empty, status says why) and a mean row over the
    categories that finished (its status says how many)."""
    rows = {cat: {**{m: run.metrics.get(m, np.nan) for m in metrics}, "status": "ok"} for cat, run in cr.runs.items()}
    for cat, err in cr.failed.items():
        rows[cat] = {**{m: np.nan for m in metrics}, "status": f"FAILED: {err[:120]}"}
    df = pd.DataFrame(rows).T
    df[list(metrics)] = df[list(metrics)].astype(float)
    ok = df[df.status == "ok"]
    mean = ok[list(metrics)].mean()
    df.loc["mean"] = {**mean.to_dict(), "status": f"mean of {len(ok)} of {len(df)} categories"}
    return df


def long_table(cr: CategoryRuns, variant: str, seed=None) -> pd.DataFrame:
    """The runs of ``train_categories`` as rows of the long table (variant, category, seed — the run's own unless
    ``seed`` is given —, metrics, image size, optimizer steps, run key); failed categories are left out."""
    return pd.DataFrame([{"variant": variant, "category": cat, "seed": run_seed(run) if seed is None else seed,
                          **run.metrics, **run.design_row()} for cat, run in cr.runs.items()])


def run_seed(run: Run) -> int:
    """The fit seed a run trained with."""
    from rdlib.training import FitConfig

    return int(run.spec.fit.get("seed", FitConfig().seed))


def logged_metrics(record: dict) -> dict:
    """The test metrics of one history record logged during training (``test_i_auroc`` → ``i_auroc``)."""
    return {k.removeprefix("test_"): v for k, v in record.items() if k.startswith("test_")}


def side_by_side(tables: dict[str, pd.DataFrame], metrics=("i_auroc", "p_auroc")) -> pd.DataFrame:
    """Several methods' :func:`results_table` as one table: a column "<label> <METRIC>" per metric and method (e.g.
    "RD I-AUROC"), rows = categories and the mean (a category one method lacks is empty)."""
    return pd.DataFrame({f"{label} {metric.replace('_', '-').upper()}": t[metric]
                         for metric in metrics for label, t in tables.items()})


def train_ms_per_step(cr: CategoryRuns) -> float:
    """Mean training milliseconds per optimizer step over the runs (measured when they trained, under that load;
    the steps and their data, not the learning curve's evaluations or checkpoint writes)."""
    vals = [1e3 * r.info["train_seconds"] / max(1, r.steps) for r in cr.runs.values()
            if r.history and "train_seconds" in r.info]
    return float(np.mean(vals)) if vals else float("nan")


def per_defect_auroc(pred: EvalResult) -> dict[str, float]:
    """I-AUROC (%) of each defect type against all normal test images."""
    d = np.asarray(pred.defects)
    good = d == "good"
    return {k: 100.0 * auroc(pred.scores[good | (d == k)], d[good | (d == k)] == k) for k in sorted(set(d) - {"good"})}


def rescore(run: Run, scorings: dict[str, dict], device=None, pro: bool = True) -> dict[str, dict[str, float]]:
    """Metrics of a trained run under other scoring options, without retraining: ``{label: {"levels": (1, 2)}}`` →
    ``{label: metrics}`` (RD Table 7). The model and the test set are loaded once."""
    method = run.load_method(device)
    _, test = build_datasets(run.spec)
    out = {}
    for label, options in scorings.items():
        with method.scoring(**options):
            out[label] = evaluate(method, test, device=device, pro=pro).metrics
    return out




def novelty_detection(cr: CategoryRuns, device=None, batch_size: int = 16) -> pd.DataFrame:
    """RD's one-class novelty detection (Table 4, §4.2) in a small form on the chapter's own runs: the model trained
    on category c scores c's normal test images (inliers) and the normal test images of every other category
    (novelties). Novelty score: the sum of the anomaly map, as RD §4.2 defines it; the map's maximum beside it.
    No training: each category's trained run is reused. Returns one row per category (AUROC %, image counts) and a
    mean row."""
    from dataclasses import replace

    from torch.utils.data import DataLoader, Subset

    def normal_test_images(spec):
        _, test = build_datasets(spec)
        return Subset(test, [i for i in range(len(test)) if int(test.table.label.iloc[i]) == 0])

    rows = {}
    if len(cr.runs) < 2:                       # each category's novelties are the others' normal images
        return pd.DataFrame(columns=["AUROC, sum of the map (%)", "AUROC, max of the map (%)"])
    for cat, run in cr.runs.items():
        method = run.load_method(device)
        sums, maxs, novel = [], [], []
        for other in cr.runs:
            images = normal_test_images(replace(run.spec, category=other))   # at this run's size and interpolation
            for batch in DataLoader(images, batch_size=batch_size):
                maps, scores = method.predict(batch["image"].to(device or "cpu"))
                sums.append(maps.flatten(1).sum(1).cpu())
                maxs.append(scores.cpu())
                novel += [other != cat] * len(maps)
        novel = np.asarray(novel)
        rows[cat] = {"AUROC, sum of the map (%)": 100 * auroc(torch.cat(sums).numpy(), novel),
                     "AUROC, max of the map (%)": 100 * auroc(torch.cat(maxs).numpy(), novel),
                     "inliers": int((~novel).sum()), "novelties": int(novel.sum())}
    out = pd.DataFrame(rows).T
    if len(out):
        mean = out.mean()
        mean[["inliers", "novelties"]] = out[["inliers", "novelties"]].sum()
        out.loc["mean (images: total)"] = mean
        out[["inliers", "novelties"]] = out[["inliers", "novelties"]].astype(int)
    return out


def novelty_sentence(novelty: pd.DataFrame) -> str:
    """The mean row of :func:`novelty_detection` as a sentence (both novelty scores)."""
    if len(novelty) < 2:
        return ("_No novelty detection here: it needs at least two categories (each one's novelties are the normal "
                "test images of the others)._")
    m = novelty.iloc[-1]
    return (f"Mean AUROC over {len(novelty) - 1} categories: {m['AUROC, sum of the map (%)']:.1f} % with the paper's "
            f"novelty score (the sum of the map), {m['AUROC, max of the map (%)']:.1f} % with the map's maximum (the "
            "defect score of the rest of this chapter).")


def learning_curves(cr: CategoryRuns) -> pd.DataFrame:
    """The test-set evaluations each run logged while training (``FitConfig.eval_every``), one row per
    (category, stage, step): loss and every logged metric (the ``test_`` prefix dropped). ``step`` counts within
    its stage; ``total_step`` adds the steps of the stages before it (what :attr:`rdlib.runs.Run.steps` counts)."""
    rows = []
    for cat, run in cr.runs.items():
        ends: dict = {}                                   # stage -> its last logged step, in stage order
        for h in run.history:
            ends[h.get("stage")] = max(ends.get(h.get("stage"), 0), h.get("step", 0))
        offsets = dict(zip(ends, np.cumsum([0, *ends.values()])[:-1].tolist()))
        for h in run.history:
            metrics = logged_metrics(h)
            if metrics:
                rows.append({"category": cat, "stage": h.get("stage"), "step": h["step"],
                             "total_step": offsets[h.get("stage")] + h["step"], "epoch": h.get("epoch"),
                             "loss": h["loss"], **metrics})
    return pd.DataFrame(rows)


def run_costs(cr: CategoryRuns) -> pd.DataFrame:
    """Per category, what its run cost when it was trained (stored with the run): optimizer steps, training seconds
    and milliseconds per step (without the learning curve's evaluations and checkpoints), inference milliseconds per image, device."""
    return pd.DataFrame({cat: {"optimizer steps": run.history[-1].get("step", np.nan) if run.history else np.nan,
                               "train time (s)": run.info["train_seconds"],
                               "train ms/step": 1e3 * run.info["train_seconds"] / max(1, run.steps),
                               "inference ms/image": 1e3 * run.info["seconds_per_image"], "device": run.info["device"]}
                         for cat, run in cr.runs.items()}).T


def level_distance_table(run: Run, device=None, batch_size: int = 16) -> pd.DataFrame:
    """How well a trained RD-family student rebuilds the teacher, level by level: the mean of the flattened loss term
    1 − cos(vec f_E^k, vec f_D^k) over the training images, the normal and the defective test images (rows), one
    column per level. A student that fits its training images leaves the first row near 0."""
    train, test = build_datasets(run.spec)
    method = run.load_method(device)
    method.eval()
    dev = next(method.parameters()).device
    rows = {}
    for label, ds, keep in (("training images", train, None), ("normal test images", test, 0),
                            ("defective test images", test, 1)):
        labels = ds.table["label"].astype(int).to_numpy()          # from the index: no image is read twice
        idx = [i for i in range(len(ds)) if keep is None or labels[i] == keep]
        dist = [method.model.level_distances(torch.stack([ds[j]["image"] for j in idx[i:i + batch_size]]).to(dev)).cpu()
                for i in range(0, len(idx), batch_size)]
        d = torch.cat(dist).mean(0) if dist else torch.full((len(method.model.teacher.channels),), float("nan"))
        rows[label] = {f"level {k + 1}": float(v) for k, v in enumerate(d)}
    return pd.DataFrame(rows).T


def cost_table(trained: dict[str, CategoryRuns], image_size: int, device=None, repeats: int = 5) -> pd.DataFrame:
    """Per method (``{label: runs}``, the first run of each): parameters that run at test time, FLOPs and the median
    latency of one image at ``image_size`` measured now (:func:`rdlib.cost.inference_cost`), and the training
    milliseconds per optimizer step and seconds per run measured when the runs trained (:func:`train_ms_per_step`;
    a method with a stage of few steps, such as AAND's stage 1, shows its cost in the seconds per run)."""
    from rdlib.cost import inference_cost

    rows = {}
    for label, cr in trained.items():
        if cr.runs:
            run = next(iter(cr.runs.values()))
            rows[label] = {**inference_cost(run.load_method(device), image_size, device=device, repeats=repeats),
                           "train ms/step": train_ms_per_step(cr),
                           "train s/run": float(np.mean([r.info["train_seconds"] for r in cr.runs.values()
                                                         if "train_seconds" in r.info] or [np.nan]))}
    return pd.DataFrame(rows).T


__all__ = ["CategoryRuns", "logged_metrics", "novelty_sentence", "run_costs", "cost_table", "learning_curves", "level_distance_table", "long_table",
           "per_defect_auroc", "rescore", "results_table", "run_grid", "side_by_side",
           "train_categories", "train_ms_per_step"]
