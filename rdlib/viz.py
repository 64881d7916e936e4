"""Plotting helpers shared by the notebooks and the CLI (matplotlib, no state)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def to_hwc(img) -> np.ndarray:
    """3×H×W tensor/array in [0,1] or H×W×3 → H×W×3 float array."""
    a = img.detach().cpu().numpy() if hasattr(img, "detach") else np.asarray(img)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.transpose(a, (1, 2, 0))
    if a.dtype == np.uint8:
        a = a / 255.0
    return np.clip(a, 0, 1)


def show(ax, image, amap=None, mask=None, vmin=None, vmax=None, title=None, alpha=0.45):
    """Image, optional anomaly-map heat overlay, optional ground-truth contour (green)."""
    ax.imshow(to_hwc(image))
    if amap is not None:
        ax.imshow(np.asarray(amap, dtype=np.float32), cmap="jet", alpha=alpha, vmin=vmin, vmax=vmax)
    if mask is not None and np.asarray(mask).any():
        ax.contour(np.asarray(mask).astype(float), levels=[0.5], colors="lime", linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def score_histogram(ax, scores, labels, bins=20, title=None):
    """Histogram of image scores for normal vs anomalous images (RD Fig. 5)."""
    scores, labels = np.asarray(scores), np.asarray(labels).astype(bool)
    edges = np.linspace(scores.min(), scores.max(), bins + 1)
    ax.hist(scores[~labels], bins=edges, alpha=0.6, label="normal", color="tab:blue")
    ax.hist(scores[labels], bins=edges, alpha=0.6, label="anomalous", color="tab:red")
    ax.set_xlabel("image score (max of map)")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)


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
