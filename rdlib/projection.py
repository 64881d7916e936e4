"""Patch features of a test set and 2-D projections of them (t-SNE, UMAP), with a number that does not depend on a
projection: how well the distance to the nearest *normal training* patch separates defect patches from normal ones.

    feats, labels = patch_features(teacher_fn, test_set, level=1)       # N×C, N (1 = inside a real defect)
    xy = project_2d(feats, "tsne")                                      # N×2 (sklearn) or "umap" (umap-learn)
    separation_auroc(train_feats, feats, labels)                        # AUROC (%) of the nearest-normal distance
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PROJECTIONS = ("tsne", "umap")


@torch.no_grad()
def patch_features(features_fn, dataset, level: int, max_patches: int | None = None, seed: int = 0,
                   mask_threshold: float = 0.3, device=None, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Every patch of level ``level`` of every image: (N×C float32 features, N labels: 1 where the image's mask,
    average-pooled to the level, exceeds ``mask_threshold``). ``features_fn``: images B×3×S×S → list of B×C×h×w.
    ``max_patches``: a random subset of that many (normal and defect patches in their proportions, every defect
    patch kept when they are fewer than half of it)."""
    feats, labels = [], []
    for i in range(0, len(dataset), batch_size):
        items = [dataset[j] for j in range(i, min(i + batch_size, len(dataset)))]
        x = torch.stack([it["image"] for it in items])
        if device is not None:
            x = x.to(device)
        f = features_fn(x)[level].float().cpu()
        masks = torch.stack([it["mask"] for it in items]).float() if "mask" in items[0] else torch.zeros(len(items), 1, *x.shape[-2:])
        m = F.adaptive_avg_pool2d(masks, f.shape[-2:]) > mask_threshold
        feats.append(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]).numpy())
        labels.append(m.reshape(-1).numpy().astype(np.int64))
    x, y = np.concatenate(feats), np.concatenate(labels)
    if max_patches is not None and len(y) > max_patches:
        rng = np.random.default_rng(seed)
        defect, normal = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        keep_defect = defect if len(defect) <= max_patches // 2 else rng.choice(defect, max_patches // 2, replace=False)
        keep_normal = rng.choice(normal, min(len(normal), max_patches - len(keep_defect)), replace=False)
        keep = np.sort(np.concatenate([keep_defect, keep_normal]))
        x, y = x[keep], y[keep]
    return x, y


def project_2d(x: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """N×C → N×2 with t-SNE (scikit-learn, PCA initialisation) or UMAP (umap-learn), both seeded."""
    if method not in PROJECTIONS:
        raise ValueError(f"projection {method!r}; choose from {list(PROJECTIONS)}")
    n = len(x)
    if n < 4:
        raise ValueError(f"a 2-D projection needs at least 4 points, got {n}")
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, max(1.0, (n - 1) / 3))                  # sklearn needs perplexity < N
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    try:
        import umap
    except ImportError as e:                                           # pragma: no cover - installed with [book]
        raise ImportError("UMAP projections need umap-learn: pip install umap-learn (in rdlib's [book] extra)") from e
    return umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed, n_jobs=1).fit_transform(x)


def nearest_normal_distance(reference: np.ndarray, query: np.ndarray, batch: int = 4096) -> np.ndarray:
    """For each query row, the Euclidean distance to the nearest ``reference`` row (exact, in blocks)."""
    ref = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32))
    out = []
    for i in range(0, len(query), batch):
        q = torch.from_numpy(np.ascontiguousarray(query[i:i + batch], dtype=np.float32))
        out.append(torch.cdist(q, ref).amin(1))
    return torch.cat(out).numpy()


def separation_auroc(train_normal: np.ndarray, test: np.ndarray, labels: np.ndarray) -> float:
    """AUROC (%) of the distance of each test patch to its nearest normal training patch, defect patches as the
    positives: 100 when every defect patch lies farther from the normal set than every normal test patch."""
    from rdlib.metrics import auroc

    if labels.min() == labels.max():
        return float("nan")
    return 100.0 * float(auroc(nearest_normal_distance(train_normal, test), labels))


def separation_table(spaces: dict, reference, test, levels, max_reference: int, max_test: int, device=None):
    """Per level and feature space (``spaces``: ``{label: images → feature maps}``), the patch counts and the
    :func:`separation_auroc` of ``test``'s patches against ``reference``'s normal patches (seeded subsamples of at
    most ``max_reference`` / ``max_test`` patches). Rows indexed by ("level k", label)."""
    import pandas as pd

    rows = {}
    for level in levels:
        for label, fn in spaces.items():
            ref, _ = patch_features(fn, reference, level, max_patches=max_reference, seed=0, device=device)
            x, y = patch_features(fn, test, level, max_patches=max_test, seed=0, device=device)
            rows[(f"level {level + 1}", label)] = {"defect patches": int(y.sum()), "normal patches": int((1 - y).sum()),
                                                   "separation AUROC (%)": separation_auroc(ref, x, y)}
    return pd.DataFrame(rows).T.astype({"defect patches": int, "normal patches": int})


def projection_figure(spaces: dict, test, level: int, max_patches: int, title: str, separation=None,
                      device=None) -> None:
    """t-SNE and UMAP of ``test``'s level-``level`` patches, one row per feature space, normal patches blue and
    real-defect patches red; ``separation`` (a :func:`separation_table`) puts each space's AUROC in its titles."""
    import matplotlib.pyplot as plt

    from rdlib.viz import show_figure

    fig, axes = plt.subplots(len(spaces), 2, figsize=(6.8, 3.0 * len(spaces)), squeeze=False, layout="constrained")
    for r, (label, fn) in enumerate(spaces.items()):
        x, y = patch_features(fn, test, level, max_patches=max_patches, seed=0, device=device)
        for c, proj in enumerate(("tsne", "umap")):
            xy = project_2d(x, proj, seed=0)
            ax = axes[r, c]
            ax.scatter(*xy[y == 0].T, s=3, alpha=0.5, c="tab:blue", label="normal patches")
            ax.scatter(*xy[y == 1].T, s=5, alpha=0.8, c="tab:red", label="real-defect patches")
            auc = "" if separation is None else \
                f" (separation {separation.loc[(f'level {level + 1}', label), 'separation AUROC (%)']:.1f})"
            ax.set_title(f"{label}, {'t-SNE' if proj == 'tsne' else 'UMAP'}{auc}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    handles, names = axes[0, 0].get_legend_handles_labels()       # under the panels: a scatter fills its axes
    fig.legend(handles, names, loc="outside lower center", ncols=2, fontsize=9, markerscale=3, frameon=False)
    show_figure(fig)
