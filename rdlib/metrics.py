"""Detection and segmentation metrics, exact and fast (numpy; tested against slow references).

* ``auroc``, ``average_precision``: rank-based AUROC (ties count ½) and step-wise AP, as sklearn defines them.
* ``pro_rd_per_image``: PRO exactly as the RD-family code (RD4AD / URD / RD++ ``compute_pro``) computes it:
  per anomalous image, 200 thresholds from the image's map min to max, per-region overlap averaged over that
  image's regions, FPR over that image's normal pixels, keep FPR < 0.3, rescale FPR by its own maximum,
  trapezoid AUC; mean over anomalous images.
* ``aupro_pooled``: the standard MVTec AUPRO@0.3: all test images pooled, global FPR over all normal pixels,
  per-region overlap averaged over every region of the set, PRO(FPR) integrated from 0 to 0.3 with linear
  interpolation at 0.3, divided by 0.3. One sort of the pixels that matter.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

_STRUCT8 = np.ones((3, 3), bool)  # 8-connectivity, skimage.measure.label's default for 2-D


def _split(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """(sorted positive scores, sorted negative scores), ascending. Value sorts only: much faster than argsort."""
    s = np.asarray(scores).ravel()
    if s.dtype not in (np.float32, np.float64):
        s = s.astype(np.float64)
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in size: {s.size} vs {y.size}")
    if y.all() or not y.any():
        raise ValueError("AUROC/AP need both positive and negative labels")
    return np.sort(s[y]), np.sort(s[~y])


def auroc(scores, labels) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) + ½ P(tie) (Mann–Whitney U)."""
    pos, neg = _split(scores, labels)
    below = np.searchsorted(neg, pos, side="left")                 # negatives strictly below each positive
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (pos.size * neg.size))


def auroc_half_width(auc: float, n_pos: int, n_neg: int, z: float = 1.96) -> float:
    """Half-width (points) of the 95 % interval of an AUROC (%) from ``n_pos`` positives and ``n_neg`` negatives,
    by Hanley & McNeil (1982): Var = [A(1−A) + (n₊−1)(Q₁−A²) + (n₋−1)(Q₂−A²)] / (n₊n₋), Q₁ = A/(2−A),
    Q₂ = 2A²/(1+A) — how finely a test split resolves a category's I-AUROC."""
    a = auc / 100.0
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return 100.0 * z * float(np.sqrt(max(var, 0.0)))


def average_precision(scores, labels) -> float:
    """AP = Σ_n (R_n − R_{n−1}) P_n over distinct thresholds (sklearn's definition, no interpolation).

    Only thresholds equal to a positive score change the recall, so those are the only terms evaluated.
    """
    pos, neg = _split(scores, labels)
    u = np.unique(pos)[::-1]                                          # distinct positive scores, descending
    tp = pos.size - np.searchsorted(pos, u, side="left")             # positives ≥ u
    fp = neg.size - np.searchsorted(neg, u, side="left")             # negatives ≥ u
    recall = tp / pos.size
    precision = tp / (tp + fp)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _label_regions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    return ndimage.label(mask.astype(bool), structure=_STRUCT8)


def pro_rd_per_image(masks, maps, num_thresholds: int = 200, max_fpr: float = 0.3, details: bool = False):
    """RD4AD's ``compute_pro`` applied per anomalous image and averaged (good images are skipped).

    masks: N×H×W (bool/0-1); maps: N×H×W anomaly maps. Two kinds of image have no PRO and are left out of the mean:
    an image whose mask is empty (no region to overlap), and one whose map is constant or never goes below
    FPR 0.3 in two thresholds (no curve). The official code would crash or average a NaN; here they are counted.
    With ``details=True`` returns ``(mean, per-image values with NaN where left out, {index: reason})``.
    """
    masks = np.asarray(masks).astype(bool)
    maps = np.asarray(maps, dtype=np.float64)
    vals, skipped = [], {}
    for i, (mask, amap) in enumerate(zip(masks, maps)):
        if not mask.any():
            vals.append(np.nan)
            skipped[i] = "empty mask"
            continue
        v = _pro_rd_single(mask, amap, num_thresholds, max_fpr)
        if np.isnan(v):
            skipped[i] = "constant map or no PRO curve below FPR 0.3"
        vals.append(v)
    vals = np.asarray(vals, dtype=np.float64)
    if vals.size == 0:
        raise ValueError("pro_rd_per_image: no anomalous image in the set")
    mean = float(np.nanmean(vals)) if not np.isnan(vals).all() else float("nan")   # NaN: every image left out
    return (mean, vals, skipped) if details else mean


def _pro_rd_single(mask: np.ndarray, amap: np.ndarray, num_thresholds: int, max_fpr: float) -> float:
    labels, n = _label_regions(mask)
    lo, hi = amap.min(), amap.max()
    if hi == lo:
        return float("nan")
    thresholds = np.arange(lo, hi, (hi - lo) / num_thresholds)      # as the official code (may give 201 values)
    region_px = labels[labels > 0]
    region_scores = amap[labels > 0]
    area = np.bincount(region_px, minlength=n + 1)[1:]
    normal_scores = amap[~mask]
    pros, fprs = [], []
    for th in thresholds:
        hit = region_scores > th
        overlap = np.bincount(region_px[hit], minlength=n + 1)[1:] / area
        pros.append(overlap.mean())
        fprs.append((normal_scores > th).sum() / normal_scores.size)
    pros, fprs = np.asarray(pros), np.asarray(fprs)
    keep = fprs < max_fpr
    pros, fprs = pros[keep], fprs[keep]
    if fprs.size and fprs.max() == 0:
        # Every kept threshold has no false positive: a perfect separation. The official code divides by this zero
        # maximum and returns NaN; we return the overlap reached at FPR 0 (1.0 when every region is found).
        return float(pros.max())
    if fprs.size < 2:
        return float("nan")
    fprs = fprs / fprs.max()
    # sklearn.metrics.auc on the curve in threshold order (FPR non-increasing): −trapezoid, ties kept in place.
    return float(-np.trapezoid(pros, fprs))


def aupro_pooled(masks, maps, max_fpr: float = 0.3) -> float:
    """Standard (MVTec) AUPRO up to ``max_fpr``, normalised by ``max_fpr``; masks/maps: N×H×W, all test images.

    Exact curve through every distinct threshold. Normal pixels are only counted, so they need a value sort
    (and only those above the max_fpr quantile); anomalous pixels carry a weight 1/(R·area of their region).
    """
    masks = np.asarray(masks).astype(bool)
    maps = np.asarray(maps, dtype=np.float32)
    if masks.shape != maps.shape:
        raise ValueError(f"masks {masks.shape} and maps {maps.shape} differ in shape")
    struct3d = np.zeros((3, 3, 3), bool)
    struct3d[1] = _STRUCT8                                             # 8-connected within an image, never across
    labels, n_regions = ndimage.label(masks, structure=struct3d)
    if n_regions == 0:
        raise ValueError("aupro_pooled: no anomalous region in the masks")
    normal = maps[~masks]
    if normal.size == 0:
        raise ValueError("aupro_pooled: no normal pixel")
    n_normal = normal.size
    k = int(np.ceil(max_fpr * n_normal)) + 1                           # normals that can lie at FPR ≤ max_fpr
    if k < n_normal:
        # Only the k largest normal scores shape the curve up to max_fpr. Keep every normal ≥ the k-th largest
        # value, not just k of them: a group of tied scores at the cut must stay whole, or its curve point gets
        # too small an FPR (maps saved as 8-bit PNG tie heavily).
        cut = np.partition(normal, n_normal - k)[n_normal - k]
        normal = normal[normal >= cut]
    normal = np.sort(normal)                                           # ascending
    lab = labels[masks]
    a_scores = maps[masks]
    area = np.bincount(lab, minlength=n_regions + 1).astype(np.float64)
    w = 1.0 / (n_regions * area[lab])                                  # per-pixel share of the mean region overlap
    # Curve points at each distinct normal score v (descending): FPR(v) = #normal ≥ v / N; PRO(v) = Σ w(score ≥ v).
    # Between two normal scores the PRO rises at constant FPR (vertical step); the step lands at PRO(> v).
    starts = np.r_[0, np.flatnonzero(np.diff(normal)) + 1]
    v = normal[starts]                                                 # distinct normal scores, ascending
    count_ge = normal.size - starts
    def suffix(side):  # Σ w over anomalous pixels with score ≥ v_j ('right') or > v_j ('left' of the next), per j
        pos = np.searchsorted(v, a_scores, side=side)                  # number of v's below (or ≤) each score
        hist = np.bincount(pos, weights=w, minlength=v.size + 1)
        return np.cumsum(hist[::-1])[::-1][1:]                        # Σ_{pos > j} w
    pro_ge, pro_gt = suffix("right")[::-1], suffix("left")[::-1]
    fpr = count_ge[::-1] / n_normal
    x = np.empty(2 * v.size + 1)
    y = np.empty(2 * v.size + 1)
    x[0], y[0] = 0.0, 0.0
    x[1::2] = np.r_[0.0, fpr[:-1]]                                     # before reaching v: FPR of the previous point
    y[1::2] = pro_gt
    x[2::2] = fpr
    y[2::2] = pro_ge
    return float(_integrate_to(x, y, max_fpr) / max_fpr)


def _integrate_to(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area under y(x) for x in [0, limit], x non-decreasing, linear interpolation at the limit."""
    i = np.searchsorted(x, limit, side="right")
    if i >= x.size:
        xs, ys = x, y
    else:
        x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
        y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0) if x1 > x0 else y0
        xs, ys = np.r_[x[:i], limit], np.r_[y[:i], y_lim]
    return float(np.trapezoid(ys, xs))


METRICS = ("i_auroc", "i_ap", "p_auroc", "p_ap", "pro_rd", "aupro")


def chance_levels(labels, masks) -> dict[str, float]:
    """What a random scorer gets (in %): AUROC 50; AP = the positive fraction (images for I-AP, pixels for P-AP)."""
    labels, masks = np.asarray(labels).astype(bool), np.asarray(masks).astype(bool)
    return {"i_auroc": 50.0, "p_auroc": 50.0, "i_ap": 100.0 * labels.mean(), "p_ap": 100.0 * masks.mean()}


def evaluate_maps(labels, scores, masks, maps, pro: bool = True, notes: list | None = None,
                  names: list[str] | None = None) -> dict[str, float]:
    """All metrics of the RD family (in %): I-AUROC, I-AP, P-AUROC, P-AP, PRO (RD per-image), AUPRO (pooled).

    Images left out of PRO (see :func:`pro_rd_per_image`) are named in ``notes`` (by ``names`` when given).
    """
    labels = np.asarray(labels).astype(bool)
    masks = np.asarray(masks).astype(bool)
    maps = np.asarray(maps, dtype=np.float32)
    out = {"i_auroc": auroc(scores, labels), "i_ap": average_precision(scores, labels),
           "p_auroc": auroc(maps, masks), "p_ap": average_precision(maps, masks)}
    if pro:
        idx = np.flatnonzero(labels)
        out["pro_rd"], _, skipped = pro_rd_per_image(masks[idx], maps[idx], details=True)
        if skipped and notes is not None:
            which = [f"{names[idx[i]] if names else f'image {idx[i]}'} ({why})" for i, why in skipped.items()]
            notes.append(f"PRO (RD): {len(skipped)} of {idx.size} anomalous images left out of the mean: "
                         + "; ".join(which[:10]) + (" ..." if len(which) > 10 else ""))
        out["aupro"] = aupro_pooled(masks, maps)
    return {k: 100.0 * v for k, v in out.items()}
