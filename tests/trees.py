"""Small generated dataset trees in each layout the readers support (MVTec AD, MPDD, BTAD, VisA with its split
file), with the real datasets' category names, for smoke runs of the `paper` profile (tests/test_smoke.py).

Each image is a smooth random texture (one per category, so categories differ); an anomalous image carries a bright
square where its mask is 255. Sizes on disk are small: the readers resize to the profile's image size.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORIES = {
    "mvtec": ["carpet", "grid", "leather", "tile", "wood", "bottle", "cable", "capsule", "hazelnut", "metal_nut", "pill",
              "screw", "toothbrush", "transistor", "zipper"],
    "mpdd": ["bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes"],
    "btad": ["01", "02", "03"],
    "visa": ["candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2", "pcb1", "pcb2", "pcb3",
             "pcb4", "pipe_fryum"],
}


def _pair(rng: np.random.Generator, base: np.ndarray, anomalous: bool, size: int):
    """An image (uint8 RGB) and its mask (uint8, 0/255): the category's texture plus noise, a bright square if
    anomalous."""
    img = np.clip(base + rng.normal(0, 6, base.shape), 0, 255)
    mask = np.zeros((size, size), np.uint8)
    if anomalous:
        s = size // 4
        y, x = rng.integers(0, size - s, 2)
        img[y:y + s, x:x + s] = 250
        mask[y:y + s, x:x + s] = 255
    return img.astype(np.uint8), mask


def write_tree(root: str | Path, fmt: str, categories: list[str] | None = None, n_train: int = 4, n_good: int = 2,
               n_bad: int = 2, size: int = 32, seed: int = 0) -> Path:
    """Write a ``fmt`` tree (mvtec | mpdd | btad | visa) under ``root`` with ``categories`` (default: the dataset's
    own), ``n_train`` training images, ``n_good`` normal and ``n_bad`` anomalous test images of one defect type per
    category. Returns ``root``."""
    root, rng = Path(root), np.random.default_rng(seed)
    cats = list(categories or CATEGORIES[fmt])
    visa_rows = []
    for cat in cats:
        coarse = rng.uniform(40, 200, (4, 4, 3))                  # a smooth texture, one per category
        base = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((size, size), Image.BILINEAR), float)
        items = [("train", False)] * n_train + [("test", False)] * n_good + [("test", True)] * n_bad
        for i, (split, bad) in enumerate(items):
            img, mask = _pair(rng, base, bad, size)
            stem = f"{i:03d}"
            if fmt in ("mvtec", "mpdd"):
                folder = root / cat / split / ("crack" if bad else "good")
                _save(img, folder / f"{stem}.png")
                if bad:
                    _save(mask, root / cat / "ground_truth" / "crack" / f"{stem}_mask.png")
            elif fmt == "btad":
                _save(img, root / cat / split / ("ko" if bad else "ok") / f"{stem}.bmp")
                if bad:
                    _save(mask, root / cat / "ground_truth" / "ko" / f"{stem}.png")
            elif fmt == "visa":
                image = f"{cat}/Data/Images/{'Anomaly' if bad else 'Normal'}/{stem}.JPG"
                _save(img, root / image)
                mask_rel = f"{cat}/Data/Masks/Anomaly/{stem}.png" if bad else ""
                if bad:
                    _save((mask > 0).astype(np.uint8), root / mask_rel)   # VisA masks hold instance ids, not 255
                visa_rows.append((cat, split, "anomaly" if bad else "normal", image, mask_rel))
            else:
                raise ValueError(f"unknown layout {fmt!r}; choose from {sorted(CATEGORIES)}")
    if fmt == "visa":
        (root / "split_csv").mkdir(parents=True, exist_ok=True)
        with open(root / "split_csv" / "1cls.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["object", "split", "label", "image", "mask"])
            w.writerows(visa_rows)
    return root


def _save(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
