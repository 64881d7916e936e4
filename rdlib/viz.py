"""Plotting and display helpers shared by the notebooks and the CLI (matplotlib).

The book's presentation rules (``book/style.md``) live here once: ``book_style`` sets tables that never truncate and
figures sized for the book's column with legible text; ``show`` puts a colour bar beside every map;
``score_histogram`` prints the AUROC it illustrates; ``panel_grid`` wraps many panels into rows.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rdlib.stats import t_interval

COLUMN_INCHES = 6.8          # the book's text column (about 690 px at 100 dpi): figures are this wide at most
FONT_SIZES = {"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "xtick.labelsize": 9,
              "ytick.labelsize": 9, "legend.fontsize": 9, "figure.titlesize": 11}


def book_style(precision: int = 1) -> None:
    """Set pandas and matplotlib for the book: full table cells (no "..."), ``precision`` decimals, figures at most
    one column wide with fonts a reader can read on a phone."""
    import matplotlib as mpl
    import pandas as pd

    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.width", None)
    pd.set_option("display.precision", precision)
    mpl.rcParams.update({"figure.figsize": (COLUMN_INCHES, 3.2), "figure.dpi": 100, "savefig.dpi": 100,
                         "savefig.bbox": "tight", **FONT_SIZES})


def panel_grid(n: int, ncols: int = 3, height: float = 2.4, width: float = COLUMN_INCHES):
    """``n`` axes in rows of ``ncols`` within the column; the unused axes are hidden. Returns (fig, flat axes[:n])."""
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height * nrows), squeeze=False)
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, list(flat[:n])


def to_hwc(img) -> np.ndarray:
    """3×H×W tensor/array in [0,1] or H×W×3 → H×W×3 float array."""
    a = img.detach().cpu().numpy() if hasattr(img, "detach") else np.asarray(img)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.transpose(a, (1, 2, 0))
    if a.dtype == np.uint8:
        a = a / 255.0
    return np.clip(a, 0, 1)


def show(ax, image, amap=None, mask=None, vmin=None, vmax=None, title=None, alpha=0.45, colorbar=True,
         cbar_label="anomaly score"):
    """Image, optional anomaly-map heat overlay (with a colour bar unless ``colorbar=False``), optional
    ground-truth contour (green)."""
    ax.imshow(to_hwc(image))
    if amap is not None:
        heat = ax.imshow(np.asarray(amap, dtype=np.float32), cmap="jet", alpha=alpha, vmin=vmin, vmax=vmax)
        if colorbar:
            bar = ax.figure.colorbar(heat, ax=ax, fraction=0.046, pad=0.02)
            bar.ax.tick_params(labelsize=8)
            if cbar_label:
                bar.set_label(cbar_label, fontsize=8)
    if mask is not None and np.asarray(mask).any():
        ax.contour(np.asarray(mask).astype(float), levels=[0.5], colors="lime", linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def score_histogram(ax, scores, labels, bins=20, title=None, xlabel="image score (max of map)"):
    """Histogram of image scores for normal vs anomalous images (RD Fig. 5), the I-AUROC in the title."""
    from rdlib.metrics import auroc

    scores, labels = np.asarray(scores), np.asarray(labels).astype(bool)
    edges = np.linspace(scores.min(), scores.max(), bins + 1)
    ax.hist(scores[~labels], bins=edges, alpha=0.6, label=f"normal ({(~labels).sum()})", color="tab:blue")
    ax.hist(scores[labels], bins=edges, alpha=0.6, label=f"anomalous ({labels.sum()})", color="tab:red")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    head = f"{title}: " if title else ""
    if labels.any() and (~labels).any():
        ax.set_title(f"{head}I-AUROC {100 * auroc(scores, labels):.1f}", fontsize=10)
    elif title:
        ax.set_title(title, fontsize=10)


def category_chart(ax, table, columns, ylabel="I-AUROC (%)", chance=50.0):
    """Per-category dots, one colour per column of ``table`` (rows = categories), with the chance level drawn."""
    cats = [c for c in table.index if c != "mean"]
    x = np.arange(len(cats))
    width = 0.8 / max(1, len(columns))
    for j, col in enumerate(columns):
        ax.plot(x + (j - (len(columns) - 1) / 2) * width, table.loc[cats, col].to_numpy(float), "o", label=col)
    if chance is not None:
        ax.axhline(chance, color="grey", lw=0.8, ls="--", label=f"chance ({chance:g})")
    ax.set_xticks(x, cats)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, ncols=min(3, len(columns) + 1))
    ax.grid(axis="y", alpha=0.3)


def method_dots(ax, results, metric: str, variants=None, labels=None, chance: float | None = 50.0,
                ylabel: str | None = None, bounds: tuple[float, float] | None = (0.0, 100.0)) -> None:
    """Per category, one dot per variant (the mean over seeds) with its 95 % t-interval over seeds, variants side by
    side in a fixed order and colour. ``results``: a long table (variant, category, seed, metric). ``bounds``: the
    metric's range (percent by default); a t-interval from three seeds can reach past it and is cut at it."""
    variants = list(variants or dict.fromkeys(results.variant))
    cats = list(dict.fromkeys(results.category))
    x = np.arange(len(cats))
    width = 0.8 / max(1, len(variants))
    for j, v in enumerate(variants):
        ivs = [t_interval(results[(results.variant == v) & (results.category == c)][metric]) for c in cats]
        mean, lo, hi = (np.array([getattr(iv, k) for iv in ivs]) for k in ("mean", "low", "high"))
        lo, hi = np.where(np.isnan(lo), mean, lo), np.where(np.isnan(hi), mean, hi)    # one seed: no bar
        if bounds is not None:
            lo, hi = np.clip(lo, *bounds), np.clip(hi, *bounds)
        ax.errorbar(x + (j - (len(variants) - 1) / 2) * width, mean, yerr=[mean - lo, hi - mean], fmt="o", ms=4,
                    capsize=2, lw=1, label=(labels or {}).get(v, v))
    if chance is not None:
        ax.axhline(chance, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, cats)
    ax.set_ylabel(ylabel or metric)
    ax.legend(fontsize=8, ncols=min(len(variants), 6), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)


def save_overlay(path: str | Path, image, amap, mask=None, vmin=None, vmax=None, title=None) -> None:
    """Write a PNG with image | anomaly-map overlay (CLI ``predict``/``evaluate``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6, 3.2))
    show(axes[0], image, mask=mask, title="image" + (" + ground truth" if mask is not None else ""))
    show(axes[1], image, amap, mask, vmin, vmax, title=title or "anomaly map")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
