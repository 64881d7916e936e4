"""Plotting and display helpers shared by the notebooks and the CLI (matplotlib).

The book's presentation rules (``book/style.md``) live here once: ``book_style`` sets tables that never truncate and
figures sized for the book's column with legible text; ``show`` puts a colour bar beside every map;
``score_histogram`` prints the AUROC it illustrates; ``panel_grid`` wraps many panels into rows.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from rdlib.stats import t_interval

COLUMN_INCHES = 6.8          # the book's text column (about 690 px at 100 dpi): figures are this wide at most
MIN_FONT_PT = 9              # smallest text in a figure: 12.5 px at 100 dpi, ≥ 9 px when a phone shows 75 % of it
FONT_SIZES = {"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "xtick.labelsize": 9,
              "ytick.labelsize": 9, "legend.fontsize": 9, "figure.titlesize": 11}


def book_style(precision: int = 1) -> None:
    """Set pandas and matplotlib for the book: full table cells (no "..."), ``precision`` decimals, figures at most
    one column wide with fonts a reader can read on a phone."""
    import matplotlib as mpl

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


def layout_problems(fig) -> list[str]:
    """What a reader would see as broken in ``fig`` once drawn: texts that overlap (tick labels running together,
    a title over an axis label, a legend over a label) and a legend drawn over plotted data — points and line segments
    in data coordinates, bars, error bars; reference lines such as ``axhline`` and images are not data here. One
    sentence per problem, naming the texts; text smaller than :data:`MIN_FONT_PT` at the column's width also counts.
    [] for a clean figure."""
    from matplotlib.collections import LineCollection, PathCollection
    from matplotlib.patches import Rectangle
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [leg for leg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if leg and leg.get_visible()]
    in_legends = {id(t) for leg in legends for t in leg.findobj(Text)}
    skipped = set(in_legends)                  # not judged for overlap one by one: the legend's box is
    for ax in fig.axes:                        # tick labels matplotlib keeps beyond the axis limits are not drawn
        for axis in (ax.xaxis, ax.yaxis):
            if not ax.axison or not axis.get_visible():                      # axis("off"): no tick label drawn
                skipped.update(id(t) for t in [*axis.get_ticklabels(), *axis.get_ticklabels(minor=True)])
                continue
            lo, hi = sorted(axis.get_view_interval())
            pad = 1e-9 * max(1.0, abs(hi - lo))
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if not lo - pad <= tick.get_loc() <= hi + pad:
                    skipped.update({id(tick.label1), id(tick.label2)})
    texts = [(t.get_text().replace("\n", " "), t.get_window_extent(renderer)) for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip() and id(t) not in skipped
             and t.get_rotation() % 90 == 0                     # a slanted label's box is not its shape: not judged
             and (t.axes is None or t.axes.get_visible())]
    boxes = texts + [("legend", leg.get_window_extent(renderer)) for leg in legends]
    problems = []
    shrink = min(1.0, COLUMN_INCHES / fig.get_figwidth())          # a wider figure is shown at the column's width
    small = [(t.get_text().replace("\n", " "), t.get_fontsize() * shrink) for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip() and id(t) not in skipped - in_legends
             and (t.axes is None or t.axes.get_visible()) and t.get_fontsize() * shrink < MIN_FONT_PT - 0.05]
    if small:
        problems.append(f"text below {MIN_FONT_PT} pt (under 9 px on a phone): "
                        + ", ".join(f"{text!r} ({size:.1f} pt)" for text, size in small[:3])
                        + (f" and {len(small) - 3} more" if len(small) > 3 else ""))
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            overlap_w = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            overlap_h = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if overlap_w > 1 and overlap_h > 1:                                  # more than a pixel's touch
                problems.append(f"texts overlap: {a!r} and {b!r}")
    for ax in fig.axes:
        legend = ax.get_legend()
        if not ax.get_visible() or legend is None or not legend.get_visible():
            continue
        box = legend.get_window_extent(renderer)
        points = []
        for line in ax.lines:
            if line.get_transform() != ax.transData or not line.get_visible():
                continue                                                          # axhline/axvline: a reference
            xy = ax.transData.transform(np.asarray(line.get_xydata(), float))
            if line.get_linestyle() not in ("None", "none", "", " ") and len(xy) > 1:
                t = np.linspace(0, 1, 12)[:, None, None]
                xy = (xy[:-1] * (1 - t) + xy[1:] * t).reshape(-1, 2)             # along each segment
            points.append(xy)
        for coll in ax.collections:
            if isinstance(coll, PathCollection) and len(coll.get_offsets()):
                points.append(coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), float)))
            elif isinstance(coll, LineCollection):
                for seg in coll.get_segments():
                    t = np.linspace(0, 1, 12)[:, None]
                    seg = np.asarray(seg, float)
                    if len(seg) > 1:
                        points.append(coll.get_transform().transform(seg[0] * (1 - t) + seg[-1] * t))
        for patch in ax.patches:                     # bars; axhspan/axvspan are drawn in axes coordinates: references
            if (isinstance(patch, Rectangle) and patch.get_fill() and patch.get_visible()
                    and patch.get_data_transform() == ax.transData):
                ext = Bbox.intersection(patch.get_window_extent(renderer), ax.bbox)   # the part inside the axes
                if ext is not None and min(ext.x1, box.x1) - max(ext.x0, box.x0) > 1 \
                        and min(ext.y1, box.y1) - max(ext.y0, box.y0) > 1:
                    problems.append(f"legend over a bar in {ax.get_title() or ax.get_ylabel()!r}")
                    break
        xy = np.concatenate(points) if points else np.zeros((0, 2))
        clip = ax.bbox
        shown = xy[np.isfinite(xy).all(1) & (xy[:, 0] >= clip.x0) & (xy[:, 0] <= clip.x1)
                   & (xy[:, 1] >= clip.y0) & (xy[:, 1] <= clip.y1)]
        covered = ((shown[:, 0] > box.x0 + 1) & (shown[:, 0] < box.x1 - 1)
                   & (shown[:, 1] > box.y0 + 1) & (shown[:, 1] < box.y1 - 1))
        if covered.any():
            problems.append(f"legend over plotted data in {ax.get_title() or ax.get_ylabel()!r}")
    return list(dict.fromkeys(problems))


def show_figure(fig) -> None:
    """Show ``fig`` and say under it what :func:`layout_problems` finds (the book's browser test looks for that
    line, so a broken figure fails it)."""
    import matplotlib.pyplot as plt

    try:
        problems = layout_problems(fig)
    except Exception as e:                      # a diagnostic: it never stops the chapter that draws the figure
        problems = [f"the check failed ({type(e).__name__}: {e})"]
    plt.show()
    for problem in problems:
        print(f"{LAYOUT_PROBLEM}{problem}")


LAYOUT_PROBLEM = "figure layout: "          # how a figure's problem is printed under it


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
            bar.ax.tick_params(labelsize=9)
            if cbar_label:
                bar.set_label(cbar_label, fontsize=9)
    if mask is not None and np.asarray(mask).any():
        ax.contour(np.asarray(mask).astype(float), levels=[0.5], colors="lime", linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def score_histogram(ax, scores, labels, bins=20, title=None, xlabel="image score (max of map)"):
    """Histogram of image scores for normal vs anomalous images (RD Fig. 5), the I-AUROC in the title."""
    from rdlib.metrics import auroc

    scores, labels = np.asarray(scores), np.asarray(labels).astype(bool)
    edges = np.linspace(scores.min(), scores.max(), bins + 1)
    ax.hist(scores[~labels], bins=edges, alpha=0.6, label=f"normal ({(~labels).sum()})", color="tab:blue")
    ax.hist(scores[labels], bins=edges, alpha=0.6, label=f"anomalous ({labels.sum()})", color="tab:red")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.5)                 # headroom: the legend sits above the tallest bar
    ax.legend(fontsize=9, loc="upper center", ncols=2)
    head = f"{title}: " if title else ""
    if labels.any() and (~labels).any():
        ax.set_title(f"{head}I-AUROC {100 * auroc(scores, labels):.1f}", fontsize=10)
    elif title:
        ax.set_title(title, fontsize=10)


def category_chart(ax, table, columns, ylabel="I-AUROC (%)", chance=50.0, labels=None, legend: bool = True):
    """Per-category dots, one colour per column of ``table`` (rows = categories; ``labels``: the legend's name of each
    column, default the column), with the chance level drawn; the legend above the axes, never over a dot."""
    cats = [c for c in table.index if c != "mean"]
    x = np.arange(len(cats))
    width = 0.8 / max(1, len(columns))
    for j, col in enumerate(columns):
        ax.plot(x + (j - (len(columns) - 1) / 2) * width, table.loc[cats, col].to_numpy(float), "o",
                label=(labels or columns)[j])
    if chance is not None:
        ax.axhline(chance, color="grey", lw=0.8, ls="--", label=f"chance ({chance:g})")
    ax.set_xticks(x, cats)
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend(fontsize=9, ncols=min(3, len(columns) + 1), loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  frameon=False)
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
    ax.legend(fontsize=9, ncols=min(len(variants), 6), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
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


def category_figure(table, labels, title: str, metrics=("I-AUROC",), height: float = 2.8) -> None:
    """Per category, one dot per method (``labels``) for each metric in its own panel (``table``: columns named
    "<label> <METRIC>", as :func:`rdlib.experiments.side_by_side` names them); chance drawn for AUROCs only. One
    legend of the methods for all panels, between the title and the panels."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(COLUMN_INCHES, height), squeeze=False, layout="constrained")
    for ax, metric in zip(axes[0], metrics):
        category_chart(ax, table, [f"{label} {metric}" for label in labels], ylabel=f"{metric} (%)",
                       chance=50.0 if "AUROC" in metric else None, labels=list(labels), legend=False)
    fig.suptitle(title, fontsize=10)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=len(names), fontsize=9, frameon=False)
    show_figure(fig)


def noise_figure(noise, metrics=("i_auroc", "p_auroc")) -> None:
    """Mean of each metric over categories against the noise σ (log scale, σ = 0 at the left edge), one line per
    method (``noise``: :func:`rdlib.robustness.noise_comparison`)."""
    import matplotlib.pyplot as plt

    mean = noise.groupby(["method", "sigma"])[list(metrics)].mean()
    fig, axes = plt.subplots(1, len(metrics), figsize=(COLUMN_INCHES, 2.6), sharex=True, squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for label in dict.fromkeys(noise.method):
            s = mean.loc[label, metric]
            ax.plot(np.maximum(s.index.to_numpy(float), 3e-4), s.to_numpy(), "o-", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("σ (0 drawn at the left edge)")
        ax.set_title(metric.replace("_", "-").upper(), fontsize=9)
    axes[0, 0].set_ylabel("%")
    axes[0, 0].legend(fontsize=9)
    fig.tight_layout()
    show_figure(fig)


def compare_maps(columns: dict, picks: int = 3, share=None, device=None) -> None:
    """Anomaly maps of the same defective test images side by side: ``columns`` = ``{label: (run, scoring)}`` with
    ``scoring`` None (the run's stored map) or scoring options of its method (e.g. ``{"source": "gate"}``); rows:
    ``picks`` defective test images spread over the first run's defective images (the runs share category and
    size). The columns in ``share`` (default: all) use one colour scale per row, the others their own; the
    ground truth is the green contour."""
    import matplotlib.pyplot as plt

    from rdlib.runs import build_datasets

    runs = list(columns.values())
    first = runs[0][0].predictions()
    _, test = build_datasets(runs[0][0].spec)
    bad = np.flatnonzero(first.labels == 1)
    rows = bad[np.linspace(0, len(bad) - 1, min(picks, len(bad))).astype(int)]
    share = set(columns) if share is None else set(share)
    maps = {}
    for label, (run, scoring) in columns.items():
        if scoring is None:
            maps[label] = [run.predictions().maps[i].astype(np.float32) for i in rows]
        else:
            method = run.load_method(device)
            _, own = build_datasets(run.spec)             # the run's own data config (interpolation, size)
            with method.scoring(**scoring):
                maps[label] = [method.predict(own[int(i)]["image"][None].to(device or "cpu"))[0][0, 0].cpu().numpy()
                               for i in rows]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(COLUMN_INCHES, 2.3 * len(rows)), squeeze=False)
    last_shared = [label for label in columns if label in share][-1:]
    for r, i in enumerate(rows):
        shared = [maps[label][r] for label in columns if label in share]
        vmin = min(float(m.min()) for m in shared) if shared else None
        vmax = max(float(m.max()) for m in shared) if shared else None
        for c, label in enumerate(columns):
            on_shared = label in share
            show(axes[r, c], test[int(i)]["image"], maps[label][r], first.masks[i],
                 vmin if on_shared else None, vmax if on_shared else None,
                 title=f"{label}: {first.defects[i]}" if c == 0 else label,
                 colorbar=not on_shared or [label] == last_shared)
    fig.tight_layout()
    show_figure(fig)


def level_maps(models: dict, image, mask, title: str | None = None) -> None:
    """Per-level teacher–student maps 1 − cos(T(x)_k, S(T(x))_k) of one image, one row per model (``{label:
    model}`` with ``teacher`` and ``student``), each row on its own colour scale (with a colour bar), the defect
    as a green contour."""
    import matplotlib.pyplot as plt
    import torch

    from rdlib.anomaly_map import cosine_distance_map

    x = image[None].to(next(next(iter(models.values())).parameters()).device)
    fig, axes = plt.subplots(len(models), 4, figsize=(COLUMN_INCHES, 1.8 * len(models)), squeeze=False)
    for r, (label, model) in enumerate(models.items()):
        with torch.no_grad():
            t = model.teacher(x)
            maps = [cosine_distance_map(a, b)[0, 0].cpu().numpy() for a, b in zip(t, model.student(t))]
        show(axes[r, 0], image, None, np.asarray(mask) > 0.5, title=f"{label}: {title}" if title else label)
        vmax = max(float(m.max()) for m in maps)
        for k, m in enumerate(maps[:3]):
            small = np.asarray(mask, dtype=np.float32)
            heat = axes[r, k + 1].imshow(m, cmap="jet", vmin=0, vmax=vmax)
            if small.any():
                step = max(1, small.shape[0] // m.shape[0])
                axes[r, k + 1].contour(small[::step, ::step][:m.shape[0], :m.shape[1]], levels=[0.5], colors="lime",
                                       linewidths=0.8)
            axes[r, k + 1].set_title(f"level {k + 1}", fontsize=9)
            axes[r, k + 1].axis("off")
        bar = fig.colorbar(heat, ax=axes[r, 3], fraction=0.046, pad=0.02)
        bar.ax.tick_params(labelsize=9)
    fig.tight_layout()
    show_figure(fig)


def separation_histograms(distances: dict, xlabel: str, title: str) -> pd.DataFrame:
    """Per level, histograms of a per-patch distance for normal and real-defect patches (``distances``:
    ``{level: (normal array, defect array)}``), shown; returns per level the patch counts, the mean distances and
    the AUROC of the distance as a patch-level defect detector (%)."""
    import matplotlib.pyplot as plt

    from rdlib.metrics import auroc

    fig, axes = plt.subplots(1, len(distances), figsize=(COLUMN_INCHES, 2.4), squeeze=False)
    rows = {}
    for ax, (level, (normal, defect)) in zip(axes[0], distances.items()):
        bins = np.linspace(0, max(normal.max(), defect.max() if defect.size else 0) + 1e-6, 40)
        ax.hist(normal, bins, density=True, alpha=0.6, label="normal patches")
        if defect.size:
            ax.hist(defect, bins, density=True, alpha=0.6, label="defect patches")
        ax.set_title(f"level {level}")
        ax.set_xlabel(xlabel)
        both = defect.size and normal.size
        rows[f"level {level}"] = {
            "normal patches": normal.size, "defect patches": defect.size, "mean, normal": normal.mean(),
            "mean, defect": defect.mean() if defect.size else np.nan,
            "patch AUROC (%)": 100 * auroc(np.r_[normal, defect], np.r_[np.zeros(normal.size), np.ones(defect.size)])
            if both else np.nan}
    axes[0, 0].legend(fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    show_figure(fig)
    table = pd.DataFrame(rows).T.round(3)
    return table.astype({"normal patches": int, "defect patches": int})          # counts without decimals


def sensitivity(grid, panels: list, metrics=("i_auroc", "p_auroc")) -> None:
    """One panel per swept option: ``panels`` = ``[(x label, {value: variant label}), ...]``; per value the mean of
    each metric over the grid's categories and seeds with its 95 % interval (:func:`rdlib.stats.mean_intervals`)."""
    import matplotlib.pyplot as plt

    from rdlib.stats import mean_intervals

    fig, axes = plt.subplots(1, len(panels), figsize=(COLUMN_INCHES, 2.6), sharey=True, squeeze=False)
    for ax, (xlabel, variants) in zip(axes[0], panels):
        t = mean_intervals(grid[grid.variant.isin(list(variants.values()))], list(metrics))
        for metric in metrics:
            tm = t[t.metric == metric].set_index("variant").reindex(list(variants.values()))
            ax.errorbar(range(len(variants)), tm["mean"], yerr=[tm["mean"] - tm["low"], tm["high"] - tm["mean"]],
                        marker="o", capsize=3, label=metric.replace("_", "-").upper())
        ax.set_xticks(range(len(variants)), [str(v) for v in variants])
        ax.set_xlabel(xlabel)
    axes[0, 0].set_ylabel("%")
    axes[0, 0].legend(fontsize=9)
    fig.tight_layout()
    show_figure(fig)


def learning_curves_figure(curves, plateau=None) -> None:
    """Training loss, I-AUROC and P-AUROC against the optimizer step, one line per category (``curves``:
    :func:`rdlib.experiments.learning_curves`); with ``plateau`` (:class:`rdlib.plateau.Plateau`), its mean curve in
    black, the band ±tol around the level it settles at and the step it settles by."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(COLUMN_INCHES, 2.8), layout="constrained")
    for cat, c in curves.groupby("category"):
        for ax, col in zip(axes, ["loss", "i_auroc", "p_auroc"]):
            ax.plot(c["total_step"] if "total_step" in c else c.step, c[col], marker=".", label=cat)
    if plateau is not None and len(plateau.curve):
        ax = axes[["loss", "i_auroc", "p_auroc"].index(plateau.metric)] if plateau.metric in ("i_auroc", "p_auroc") else axes[1]
        ax.plot(plateau.curve.index, plateau.curve.values, color="black", lw=2, label="mean")
        ax.axhspan(plateau.level - plateau.tol, plateau.level + plateau.tol, color="grey", alpha=0.2, lw=0)
        if plateau.converged:
            ax.axvline(plateau.settled_at, color="black", ls="--", lw=1)
    for ax, label in zip(axes, ["training loss", "I-AUROC (%)", "P-AUROC (%)"]):
        ax.set_xlabel("optimizer step")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    if len(curves):                                        # one legend for the three panels, under them
        handles, names = axes[1].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncols=min(6, len(names)), fontsize=9, frameon=False)
    show_figure(fig)


def score_histograms(preds: dict) -> None:
    """:func:`score_histogram` of each category's predictions (``{category: EvalResult}``), two per row."""
    fig, axes = panel_grid(len(preds), ncols=2, height=2.6)
    for ax, (cat, p) in zip(axes, preds.items()):
        score_histogram(ax, p.scores, p.labels, title=cat)
    fig.tight_layout()
    show_figure(fig)


def extreme_maps(runs: dict) -> None:
    """Per category (``{category: Run}``), the anomaly maps of its highest-scoring normal test image and of its
    highest- and lowest-scoring defective ones, on the category's own colour scale, ground truth in green."""
    import matplotlib.pyplot as plt

    from rdlib.runs import build_datasets

    fig, axes = plt.subplots(len(runs), 3, figsize=(COLUMN_INCHES, 2.2 * len(runs)), squeeze=False)
    for r, (cat, run) in enumerate(runs.items()):
        p = run.predictions()
        _, test = build_datasets(run.spec)
        good, bad = np.flatnonzero(p.labels == 0), np.flatnonzero(p.labels == 1)
        pick = [("normal", good[np.argmax(p.scores[good])]), ("", bad[np.argmax(p.scores[bad])]),
                ("", bad[np.argmin(p.scores[bad])])]
        vmin, vmax = float(p.maps.min()), float(p.maps.max())
        for c, (kind, i) in enumerate(pick):
            show(axes[r, c], test[i]["image"], p.maps[i].astype(np.float32), p.masks[i], vmin, vmax,
                 title=f"{cat}: {kind or p.defects[i]}, score {p.scores[i]:.2f}", colorbar=c == 2)
    fig.tight_layout()
    show_figure(fig)


def source_photos(categories: dict) -> None:
    """Each embedded category's source photo (``{name: spec}``, :data:`rdlib.data.EMBEDDED_CATEGORIES`); for texture
    categories the halves training (blue) and test (orange) images are cut from."""
    import matplotlib.pyplot as plt

    from rdlib.data.embedded import load_source, texture_regions

    fig, axes = plt.subplots(1, len(categories), figsize=(COLUMN_INCHES, 2.0), squeeze=False)
    for ax, (cat, spec) in zip(axes[0], categories.items()):
        src = load_source(spec.source)
        ax.imshow(src)
        if spec.kind == "texture":
            for split, color in (("train", "tab:blue"), ("test", "tab:orange")):
                y0, y1, x0, x1 = texture_regions(src.shape[:2])[split]
                ax.add_patch(plt.Rectangle((x0, y0), x1 - x0 - 1, y1 - y0 - 1, fill=False, ec=color, lw=2, label=split))
        ax.set_title(f"{cat}\n({spec.kind})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].legend(fontsize=9, loc="lower left")
    fig.tight_layout()
    show_figure(fig)


def defect_gallery(root, data_format: str | None = None) -> None:
    """One normal test image and one image of each defect type per category of a dataset, the defect outlined."""
    import matplotlib.pyplot as plt

    from rdlib.data import load_image, load_mask, read_dataset, verify

    counts = verify(root, data_format)
    cats = sorted(counts.category.unique())
    defects = sorted(counts[(counts.split == "test") & (counts.defect != "good")].defect.unique())
    n = 1 + len(defects)
    fig, axes = plt.subplots(len(cats), n, figsize=(COLUMN_INCHES, COLUMN_INCHES / n * 1.15 * len(cats)), squeeze=False)
    for r, cat in enumerate(cats):
        t = read_dataset(root, cat, data_format)
        test = t[t.split == "test"]
        show(axes[r, 0], np.asarray(load_image(test[test.defect == "good"].image_path.iloc[0])), title=f"{cat}: good")
        for c, d in enumerate(defects, start=1):
            rows = test[test.defect == d]
            if len(rows):
                show(axes[r, c], np.asarray(load_image(rows.image_path.iloc[0])), mask=load_mask(rows.mask_path.iloc[0]),
                     title=d)
            else:
                axes[r, c].set_visible(False)
    fig.tight_layout()
    show_figure(fig)


def texture_samples(source, n: int = 6, size: int = 128, seed: int = 0) -> None:
    """``n`` random crops of a texture source (:func:`rdlib.data.find_texture_source`)."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(1, n, figsize=(COLUMN_INCHES, 1.3))
    for ax in axes:
        show(ax, source.sample(rng, size))
    fig.tight_layout()
    show_figure(fig)


def synthesis_gallery(root, categories, presets, source, image_size: int) -> dict:
    """For each category, one normal training image and one synthetic anomaly of each synthesis preset (its mask
    outlined); returns the synthetic datasets by (category, preset) for further use."""
    import matplotlib.pyplot as plt

    from rdlib.data import load_split
    from rdlib.synthesis import PRESETS, SyntheticAnomalies

    n = 1 + len(presets)
    fig, axes = plt.subplots(len(categories), n, figsize=(COLUMN_INCHES, COLUMN_INCHES / n * 1.15 * len(categories)),
                             squeeze=False)
    sets = {}
    for r, cat in enumerate(categories):
        base = load_split(root, cat, "train", image_size)
        show(axes[r, 0], base[0]["image"], title=f"{cat}: normal")
        for c, name in enumerate(presets, start=1):
            ds = SyntheticAnomalies(base, name, source if PRESETS[name].noise == "perlin" else None, cat)
            ds.set_epoch(0)
            sets[cat, name] = ds
            item = next((ds[i] for i in range(len(ds)) if ds[i]["label"]), ds[0])
            show(axes[r, c], item["synthetic"], mask=item["mask"][0].numpy() if "mask" in item else None, title=name)
    fig.tight_layout()
    show_figure(fig)
    return sets


def synthetic_areas(sets: dict, category: str, presets, test_areas, epochs: int = 4) -> None:
    """Histograms of the synthetic masks' area (% of the image) of each preset on ``category`` over ``epochs``
    draws, beside the real test defects' areas (``test_areas``: percentages); the x axis ends just past the
    largest area drawn."""
    import matplotlib.pyplot as plt

    areas = {}
    for name in presets:
        ds, values = sets[category, name], []
        for epoch in range(epochs):
            ds.set_epoch(epoch)
            values += [100 * float(ds[i]["mask"].mean()) for i in range(len(ds))]
        areas[name] = np.asarray(values)
    top = max([float(a.max()) for a in areas.values()] + [float(np.max(test_areas))]) * 1.05
    bins = np.linspace(0, top, 31)
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 3))
    for name, a in areas.items():
        ax.hist(a[a > 0], bins=bins, histtype="step", lw=1.5, label=f"{name} ({100 * (a > 0).mean():.0f}% anomalous)")
    ax.hist(test_areas, bins=bins, histtype="stepfilled", alpha=0.3, color="k", label="embedded test defects")
    ax.set_xlabel("mask area (% of the image)")
    ax.set_ylabel("images")
    ax.legend(fontsize=9)
    fig.tight_layout()
    show_figure(fig)
