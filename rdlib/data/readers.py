"""Dataset readers: MVTec AD (and MPDD, same layout), BTAD and VisA → one sample table.

Every reader returns a :class:`pandas.DataFrame` with one row per image and the columns

``dataset, category, split ('train'|'test'), defect ('good' or the defect folder), label (0 normal, 1 anomalous),
image_path, mask_path`` (``None`` for normal images).

:func:`verify` checks a tree and raises :class:`DataError` naming the offending path and what to do.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
FORMATS = ("mvtec", "mpdd", "btad", "visa")
COLUMNS = ["dataset", "category", "split", "defect", "label", "image_path", "mask_path"]


class DataError(ValueError):
    """A dataset tree is not what its format requires; the message names the path and the fix."""


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: missing {what}. Check the dataset root and --format.")
    return path


def detect_format(root: str | Path) -> str:
    """Guess the layout of ``root``: VisA has ``split_csv/1cls.csv``, BTAD ``*/train/ok``, else MVTec."""
    root = Path(root)
    if (root / "split_csv" / "1cls.csv").is_file():
        return "visa"
    if any((c / "train" / "ok").is_dir() for c in root.iterdir() if c.is_dir()):
        return "btad"
    return "mvtec"


def list_categories(root: str | Path, fmt: str | None = None) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset root does not exist. Pass the folder that holds the category folders.")
    fmt = fmt or detect_format(root)
    if fmt == "visa":
        with open(root / "split_csv" / "1cls.csv", newline="") as f:
            return sorted({row["object"] for row in csv.DictReader(f)})
    normal = "ok" if fmt == "btad" else "good"
    return sorted(c.name for c in root.iterdir() if c.is_dir() and (c / "train" / normal).is_dir())


def read_mvtec(root: str | Path, category: str, dataset: str = "mvtec") -> pd.DataFrame:
    """MVTec AD / MPDD layout: ``train/good``, ``test/<defect>``, ``ground_truth/<defect>/<stem>_mask.png``."""
    cat = _require_dir(Path(root) / category, f"category folder '{category}'")
    rows = []
    for p in _images(_require_dir(cat / "train" / "good", "train/good folder")):
        rows.append((dataset, category, "train", "good", 0, str(p), None))
    for d in sorted(x for x in _require_dir(cat / "test", "test folder").iterdir() if x.is_dir()):
        for p in _images(d):
            if d.name == "good":
                rows.append((dataset, category, "test", "good", 0, str(p), None))
            else:
                rows.append((dataset, category, "test", d.name, 1, str(p), str(cat / "ground_truth" / d.name / f"{p.stem}_mask.png")))
    return pd.DataFrame(rows, columns=COLUMNS)


def read_btad(root: str | Path, category: str) -> pd.DataFrame:
    """BTAD: ``train/ok``, ``test/ok``, ``test/ko``, masks ``ground_truth/ko/<stem>.<ext>`` (no ``_mask`` suffix)."""
    cat = _require_dir(Path(root) / category, f"category folder '{category}'")
    rows = [("btad", category, "train", "good", 0, str(p), None) for p in _images(_require_dir(cat / "train" / "ok", "train/ok folder"))]
    rows += [("btad", category, "test", "good", 0, str(p), None) for p in _images(_require_dir(cat / "test" / "ok", "test/ok folder"))]
    gt = cat / "ground_truth" / "ko"
    masks = {p.stem: p for p in _images(gt)} if gt.is_dir() else {}
    for p in _images(_require_dir(cat / "test" / "ko", "test/ko folder")):
        m = masks.get(p.stem)
        rows.append(("btad", category, "test", "ko", 1, str(p), str(m if m else gt / f"{p.stem}.png")))
    return pd.DataFrame(rows, columns=COLUMNS)


def read_visa(root: str | Path, category: str) -> pd.DataFrame:
    """VisA with its ``split_csv/1cls.csv`` (columns object, split, label, image, mask; paths relative to root)."""
    root = Path(root)
    csv_path = root / "split_csv" / "1cls.csv"
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: missing. VisA needs its split file split_csv/1cls.csv (from the VisA release).")
    rows = []
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            if row["object"] != category:
                continue
            anomalous = row["label"].strip().lower() == "anomaly"
            mask = str(root / row["mask"]) if anomalous and row.get("mask") else None
            if anomalous and mask is None:
                raise DataError(f"{csv_path}: anomalous image {row['image']} has no mask entry.")
            rows.append(("visa", category, row["split"].strip(), "anomaly" if anomalous else "good", int(anomalous),
                         str(root / row["image"]), mask))
    if not rows:
        raise DataError(f"{csv_path}: no rows for category '{category}'. Known: {list_categories(root, 'visa')}")
    return pd.DataFrame(rows, columns=COLUMNS)


def read_dataset(root: str | Path, category: str, fmt: str | None = None) -> pd.DataFrame:
    """The sample table of one category; ``fmt`` in {mvtec, mpdd, btad, visa} or None to detect it."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset root does not exist. Set DATA_ROOT / --data to the folder holding the categories.")
    fmt = fmt or detect_format(root)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; choose from {FORMATS}")
    if fmt == "visa":
        return read_visa(root, category)
    if fmt == "btad":
        return read_btad(root, category)
    return read_mvtec(root, category, dataset=fmt)


def load_image(path: str | Path) -> Image.Image:
    """Open an image as RGB (grayscale and palette images are converted)."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable image ({e}). Re-extract or delete the file.") from e


def load_mask(path: str | Path) -> np.ndarray:
    """A mask as a boolean array: any non-zero value is anomalous (VisA instance ids are binarised)."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable mask ({e}).") from e
    if arr.ndim == 3:
        arr = arr.max(axis=2)
    return arr > 0


def verify(root: str | Path, fmt: str | None = None, categories: list[str] | None = None, check_pixels: bool = True) -> pd.DataFrame:
    """Check a dataset tree and return counts per category / split / defect.

    Raises :class:`DataError` naming the path for: wrong layout, missing or extra mask, unreadable image,
    image/mask size mismatch, empty category.
    """
    root = Path(root)
    fmt = fmt or (detect_format(root) if root.is_dir() else "mvtec")
    cats = categories or list_categories(root, fmt)
    if not cats:
        raise DataError(f"{root}: no categories found for format '{fmt}' (expected <category>/train/"
                        f"{'ok' if fmt == 'btad' else 'good'}). Check the root folder and --format.")
    tables = []
    for cat in cats:
        t = read_dataset(root, cat, fmt)
        if (t.split == "train").sum() == 0:
            raise DataError(f"{root / cat}: empty category: no training images.")
        if (t.split == "test").sum() == 0:
            raise DataError(f"{root / cat}: empty category: no test images.")
        if fmt != "visa":
            _check_extra_masks(root / cat, t, fmt)
        for r in t.itertuples():
            has_mask = isinstance(r.mask_path, str)
            if has_mask and not Path(r.mask_path).is_file():
                raise DataError(f"{r.mask_path}: missing mask for anomalous image {r.image_path}.")
            if check_pixels:
                img = load_image(r.image_path)
                if has_mask:
                    with Image.open(r.mask_path) as m:
                        msize = m.size
                    if msize != img.size:
                        raise DataError(f"{r.mask_path}: mask size {msize} differs from image size {img.size} "
                                        f"of {r.image_path}.")
        tables.append(t)
    table = pd.concat(tables, ignore_index=True)
    return table.groupby(["category", "split", "defect"]).size().rename("images").reset_index()


def _check_extra_masks(cat_dir: Path, table: pd.DataFrame, fmt: str) -> None:
    gt = cat_dir / "ground_truth"
    if not gt.is_dir():
        return
    expected = {str(Path(p)) for p in table.mask_path.dropna()}
    for d in sorted(x for x in gt.iterdir() if x.is_dir()):
        for m in _images(d):
            if str(m) not in expected:
                raise DataError(f"{m}: extra mask with no matching test image (expected "
                                f"test/{d.name}/{m.stem.removesuffix('_mask')}.*). Remove it or restore the image.")
