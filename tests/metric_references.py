"""Slow, obviously correct reference implementations of the metrics (used only by the tests)."""
from __future__ import annotations

import numpy as np
from skimage import measure


def auroc_pairs(scores, labels) -> float:
    s = np.asarray(scores, float).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    pos, neg = s[y], s[~y]
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return (gt + 0.5 * eq) / (pos.size * neg.size)


def average_precision_loop(scores, labels) -> float:
    s = np.asarray(scores, float).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    ap, prev_recall = 0.0, 0.0
    for th in sorted(set(s.tolist()), reverse=True):
        pred = s >= th
        tp = (pred & y).sum()
        recall = tp / y.sum()
        precision = tp / pred.sum()
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return ap


def pro_curve_pooled(masks, maps):
    """(fpr, pro) at every distinct threshold, from (0, 0): the definition, pixel by pixel."""
    masks = np.asarray(masks).astype(bool)
    maps = np.asarray(maps, float)
    regions = []
    for m in masks:
        lab = measure.label(m, connectivity=2)
        regions.append([lab == r for r in range(1, lab.max() + 1)])
    fprs, pros = [0.0], [0.0]
    for th in sorted(set(maps.ravel().tolist()), reverse=True):
        pred = maps >= th
        fprs.append((pred & ~masks).sum() / (~masks).sum())
        overlaps = [(pred[i] & r).sum() / r.sum() for i in range(len(masks)) for r in regions[i]]
        pros.append(np.mean(overlaps))
    return np.array(fprs), np.array(pros)


def aupro_pooled_reference(masks, maps, max_fpr=0.3) -> float:
    fpr, pro = pro_curve_pooled(masks, maps)
    area = 0.0
    for i in range(1, len(fpr)):
        x0, x1, y0, y1 = fpr[i - 1], fpr[i], pro[i - 1], pro[i]
        if x0 >= max_fpr:
            break
        if x1 > max_fpr:  # interpolate the last segment at max_fpr
            y1 = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
            x1 = max_fpr
        area += (x1 - x0) * (y0 + y1) / 2
    return area / max_fpr


def pro_rd_reference(masks, maps, num_th=200) -> float:
    """RD4AD's compute_pro (regionprops loop, per-image FPR, FPR<0.3 rescaled by its max), per anomalous image."""
    from sklearn.metrics import auc

    vals = []
    for mask, amap in zip(np.asarray(masks).astype(int), np.asarray(maps, float)):
        if mask.sum() == 0:
            continue
        min_th, max_th = amap.min(), amap.max()
        delta = (max_th - min_th) / num_th
        pros_all, fprs_all = [], []
        for th in np.arange(min_th, max_th, delta):
            binary = (amap > th).astype(int)
            pros = []
            for region in measure.regionprops(measure.label(mask)):
                tp = binary[region.coords[:, 0], region.coords[:, 1]].sum()
                pros.append(tp / region.area)
            inverse = 1 - mask
            fprs_all.append(np.logical_and(inverse, binary).sum() / inverse.sum())
            pros_all.append(np.mean(pros))
        fprs_all, pros_all = np.array(fprs_all), np.array(pros_all)
        keep = fprs_all < 0.3
        f = fprs_all[keep] / fprs_all[keep].max()
        vals.append(auc(f, pros_all[keep]))
    return float(np.mean(vals))
