"""Robustness to sensor noise (RD-RE's Fig. 8 protocol): the test set with additive white Gaussian noise.

    noisy = GaussianNoise(test, sigma=0.01)                  # same items, image + N(0, σ²), clipped to [0, 1]
    table = noise_robustness(run, [0.001, 0.005, 0.01, 0.05, 0.1])   # one row per σ (σ = 0: the clean test set)

Images are in [0, 1], so σ is a fraction of the full intensity range (σ = 0.05 is ≈ 13 grey levels of 255). The
noise of item ``i`` is drawn from a generator seeded with ``(seed, i)``: every method sees the same noisy images.
Masks and labels are untouched. Clipping to [0, 1] keeps the input a valid image (the paper does not say whether
it clips).
"""
from __future__ import annotations

import pandas as pd
import torch
from torch.utils.data import Dataset

from rdlib.runs import Run, build_datasets
from rdlib.training import evaluate


class GaussianNoise(Dataset):
    """``dataset`` with N(0, σ²) added to every item's ``image`` (C×H×W in [0, 1]) and the result clipped to [0, 1]."""

    def __init__(self, dataset: Dataset, sigma: float, seed: int = 0):
        if not sigma >= 0:
            raise ValueError(f"sigma={sigma!r}: the noise standard deviation must be ≥ 0")
        self.dataset, self.sigma, self.seed = dataset, float(sigma), int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def table(self):
        """The wrapped dataset's table (defect names, paths), for :func:`rdlib.training.evaluate`."""
        return getattr(self.dataset, "table", None)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.dataset[i])
        if self.sigma > 0:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(i))
            noise = torch.randn(item["image"].shape, generator=g) * self.sigma
            item["image"] = (item["image"] + noise).clamp_(0.0, 1.0)
        return item


def noise_robustness(run: Run, sigmas, device=None, seed: int = 0, pro: bool = False,
                     metrics=("i_auroc", "p_auroc", "p_ap")) -> pd.DataFrame:
    """``metrics`` of a trained run on its test set with noise of each σ in ``sigmas`` (plus σ = 0, the clean set,
    read from the run's own evaluation: the same function on the same images): a table with columns sigma and the
    metrics. The model is loaded once; PRO is off by default (slow, and Fig. 8 shows AUROC)."""
    method = run.load_method(device)
    _, test = build_datasets(run.spec)
    rows = [{"sigma": 0.0, **{k: run.metrics.get(k, float("nan")) for k in metrics}}]
    for sigma in sorted({float(s) for s in sigmas} - {0.0}):
        m = evaluate(method, GaussianNoise(test, sigma, seed), device=device, pro=pro).metrics
        rows.append({"sigma": sigma, **{k: m.get(k, float("nan")) for k in metrics}})
    return pd.DataFrame(rows)


__all__ = ["GaussianNoise", "noise_comparison", "noise_loss", "noise_robustness", "noise_table"]


def noise_comparison(methods: dict, categories, sigmas, device=None) -> pd.DataFrame:
    """:func:`noise_robustness` of each method's run (``{label: CategoryRuns}``) on each of ``categories`` it has:
    one row per (method, category, σ)."""
    rows = [noise_robustness(cr.runs[c], sigmas, device=device).assign(method=label, category=c)
            for label, cr in methods.items() for c in categories if c in cr.runs]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def noise_table(noise: pd.DataFrame, metrics=("i_auroc", "p_auroc", "p_ap")) -> pd.DataFrame:
    """:func:`noise_comparison`'s rows as the table a reader scans: the mean over categories of each metric (its
    name and unit as a header), per σ (rows "σ = 0.005") and method (columns under each metric)."""
    from rdlib.results import METRIC_LABELS, with_dashes

    table = noise.groupby(["method", "sigma"])[list(metrics)].mean().unstack("method")
    table.index = [f"σ = {s:g}" for s in table.index]
    table = table.rename(columns={m: f"{METRIC_LABELS.get(m, m)} (%)" for m in metrics}, level=0)
    return with_dashes(table.rename_axis(columns=[None, None]))      # "—": a metric undefined there (e.g. no defect)


def noise_loss(noise: pd.DataFrame, sigma: float, metric: str = "i_auroc") -> pd.DataFrame:
    """The long table of minus the loss of ``metric`` from σ = 0 to ``sigma``, per method and category (variant =
    method, seed 0): "A beats B" on it means A loses less."""
    drop = noise.pivot_table(index=["method", "category"], columns="sigma", values=metric)
    loss = (drop[sigma] - drop[0.0]).rename("loss").reset_index()
    return loss.assign(variant=loss.method, seed=0)
