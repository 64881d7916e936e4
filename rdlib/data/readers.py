"""Dataset readers: MVTec AD (and MPDD, same layout), BTAD and VisA → one sample table.

Every reader returns a :class:`pandas.DataFrame` with one row per image and the columns

``dataset, category, split ('train'|'test'), defect ('good' or the defect folder), label (0 normal, 1 anomalous),
image_path, mask_path`` (``None`` for normal images).

:func:`verify` checks a tree and raises :class:`DataError` naming the offending path and what to do.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
FORMATS = ("mvtec", "mpdd", "btad", "visa")
log = logging.getLogger(__name__)
COLUMNS = ["dataset", "category", "split", "defect", "label", "image_path", "mask_path"]


class DataError(ValueError):
    """A dataset tree is not what its format requires; the message names the path and the fix."""


def _images(folder: Path) -> list[Path]:
    """Image files of a folder (any case of extension). A broken symbolic link is listed too, so that reading it
    fails with an error naming it instead of the image silently vanishing from the set."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and (p.is_file() or p.is_symlink()))


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: missing {what}. Check the dataset root (DATA_ROOT, --data) and its format "
                        "(DATA_FORMAT, --format).")
    return path


def _require_category(root: Path, category: str, fmt: str) -> Path:
    """``root / category``, or a DataError naming it and the categories the tree holds."""
    if not (root / category).is_dir():
        known = list_categories(root, fmt)
        raise DataError(f"{root / category}: no category folder '{category}' in this {fmt} tree; it holds "
                        f"{known if known else 'no category'}. Check CATEGORIES (--category) and the dataset root "
                        "(DATA_ROOT, --data).")
    return root / category


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
    cat = _require_category(Path(root), category, dataset)
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
    cat = _require_category(Path(root), category, "btad")
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


def _to_uint8(arr: np.ndarray, mode: str, path) -> np.ndarray:
    """High-bit-depth pixels → 0..255, by the range the mode declares: 16-bit (I;16*) ÷ 257; 32-bit integers (I) as
    16-bit when they fit 0..65535 (PNG/TIFF store 16-bit grey as I), as 8-bit when they fit 0..255; floats (F) in
    [0, 1] × 255 or in [0, 255] as they are. Anything else is refused: a guessed scale is a silent wrong number."""
    a = np.asarray(arr)
    if a.size == 0:
        raise DataError(f"{path}: empty image (0 pixels). Re-extract or delete the file.")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise DataError(f"{path}: mode {mode} image with NaN or infinite pixels. Convert it to 8-bit RGB.")
    lo, hi = float(a.min()), float(a.max())
    if mode.startswith("I;16"):
        return np.round(a.astype(np.float64) / 257.0).astype(np.uint8)
    if mode == "I":
        # Pillow opens 16-bit grey PNG/TIFF as mode I too: the bit depth the file declares decides the scale.
        bits = _declared_bits(path)
        if bits not in (8, 16) or lo < 0 or hi > (255 if bits == 8 else 65535):
            raise DataError(f"{path}: {bits}-bit integer image with values in [{lo:g}, {hi:g}]: its scale is unknown. "
                            "Convert it to 8- or 16-bit first.")
        return np.round(a.astype(np.float64) / (255.0 if bits == 8 else 65535.0) * 255.0).astype(np.uint8)
    if mode == "F":
        if lo >= 0 and hi <= 1:
            return np.round(a * 255.0).astype(np.uint8)
        if lo >= 0 and hi <= 255:
            return np.round(a).astype(np.uint8)
        raise DataError(f"{path}: floating-point image with values in [{lo:g}, {hi:g}], neither [0, 1] nor [0, 255]: "
                        "its scale is unknown. Convert it to 8-bit RGB first.")
    raise DataError(f"{path}: unsupported image mode {mode}. Convert it to 8-bit RGB.")


def _declared_bits(path) -> int:
    """Bits per sample the file declares (PNG IHDR / TIFF BitsPerSample); 32 (unknown scale) when not found."""
    try:
        with Image.open(path) as im:
            if im.format == "PNG":
                with open(path, "rb") as f:
                    head = f.read(26)
                return int(head[24])
            bits = im.tag_v2.get(258) if hasattr(im, "tag_v2") else None
            if bits:
                return int(bits[0] if isinstance(bits, tuple) else bits)
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    return 32


def load_image(path: str | Path) -> Image.Image:
    """Open any image Pillow reads as an 8-bit RGB image.

    Grey, palette, CMYK, YCbCr and LAB images are converted; alpha is dropped; 16-bit, 32-bit and floating-point
    images are rescaled to 0..255 by their declared range (a plain ``convert("RGB")`` would clip 16-bit pixels to
    white), or refused with a :class:`DataError` naming the file when their scale cannot be known.
    """
    try:
        with Image.open(path) as im:
            im.seek(0)
            mode = im.mode
            if mode.startswith("I") or mode == "F":
                grey = _to_uint8(np.asarray(im), mode, path)
                return Image.fromarray(grey, "L").convert("RGB")
            if mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            return im.convert("RGB")
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: unreadable image ({type(e).__name__}: {e}). Re-extract or delete the file.") from e


def load_mask(path: str | Path) -> np.ndarray:
    """A mask as a boolean array: any non-zero value is anomalous (VisA instance ids are binarised)."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: unreadable mask ({type(e).__name__}: {e}). Re-extract or delete the file.") from e
    if arr.ndim == 3:
        arr = arr.max(axis=2)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DataError(f"{path}: mask with NaN or infinite values.")
    return arr > 0


def verify(root: str | Path, fmt: str | None = None, categories: list[str] | None = None, check_pixels: bool = True) -> pd.DataFrame:
    """Check a dataset tree and return counts per category / split / defect.

    Raises :class:`DataError` naming the path for: wrong layout, missing or extra mask, unreadable image or mask,
    image/mask size mismatch, empty category, unsupported pixel format. An anomalous image whose mask is empty is
    not an error (a dataset may hold such images, and image-level metrics still use them) but it has no region for
    PRO: every such file is listed in ``result.attrs["empty_masks"]``, logged as a warning and printed by the CLI.
    """
    root = Path(root)
    fmt = fmt or (detect_format(root) if root.is_dir() else "mvtec")
    cats = categories or list_categories(root, fmt)
    if not cats:
        raise DataError(f"{root}: no categories found for format '{fmt}' (expected <category>/train/"
                        f"{'ok' if fmt == 'btad' else 'good'}). Check the root folder and --format.")
    tables, empty = [], []
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
                raise DataError(f"{r.mask_path}: missing mask for anomalous image {r.image_path}. Restore it "
                                "from the dataset's release (or remove the image) and run again.")
            if check_pixels:
                img = load_image(r.image_path)
                if has_mask:
                    mask = load_mask(r.mask_path)
                    msize = (mask.shape[1], mask.shape[0])
                    if msize != img.size:
                        raise DataError(f"{r.mask_path}: mask size {msize} differs from image size {img.size} "
                                        f"of {r.image_path}.")
                    if not mask.any():
                        empty.append(r.mask_path)
        tables.append(t)
    table = pd.concat(tables, ignore_index=True)
    counts = table.groupby(["category", "split", "defect"]).size().rename("images").reset_index()
    counts.attrs["empty_masks"] = empty
    if empty:
        log.warning("%d anomalous image(s) have an empty mask (no region: left out of PRO, counted by the other "
                    "metrics): %s", len(empty), ", ".join(empty[:20]) + (" ..." if len(empty) > 20 else ""))
    return counts


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
