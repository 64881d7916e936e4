"""Benchmark: metrics on a realistic test set (150 masks of 256², about 10 M pixels) on this CPU.

Goal: pooled AUPRO@0.3 well under 1 s. Prints a table (median of 3 runs) and writes benchmarks/results/metrics_cpu.json.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from rdlib.metrics import auroc, aupro_pooled, average_precision, pro_rd_per_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_seconds  # noqa: E402


def main():
    rng = np.random.default_rng(0)
    n, size = 150, 256
    masks = np.zeros((n, size, size), bool)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n // 2):                              # half the images anomalous, 1-3 blobs each
        for _ in range(rng.integers(1, 4)):
            cy, cx, r = rng.integers(20, 236, 2).tolist() + [rng.integers(4, 25)]
            masks[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    maps = (rng.random((n, size, size)) + 0.8 * masks).astype(np.float32)
    labels = masks.reshape(n, -1).any(1)
    scores = maps.reshape(n, -1).max(1)
    maps8 = np.round(maps / maps.max() * 255).astype(np.float32)   # maps saved as 8-bit PNG: heavy ties
    cases = {
        "pooled AUPRO@0.3": lambda: aupro_pooled(masks, maps),
        "pooled AUPRO@0.3 (8-bit maps)": lambda: aupro_pooled(masks, maps8),
        "pixel AUROC": lambda: auroc(maps, masks),
        "pixel AP": lambda: average_precision(maps, masks),
        "image AUROC": lambda: auroc(scores, labels),
        "PRO (RD per-image, 200 thresholds)": lambda: pro_rd_per_image(masks[labels], maps[labels]),
    }
    rows = {}
    for name, fn in cases.items():
        rows[name] = median_seconds(fn, warmup=1, reps=3)
        print(f"{name:<38}{rows[name]:8.3f} s")
    out = Path(__file__).parent / "results" / "metrics_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"images": n, "size": size, "seconds": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
