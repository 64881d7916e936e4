"""Foreground masks, so synthetic anomalies land on the object (computed once per training image, then cached).

* ``aand``: AAND's ``fore_extractor`` — grey image, Gaussian blur σ = 8, a fixed threshold per category; a centred
  disk of radius 0.45·H for bottle and cable (AAND's code reaches cable only through a leaked loop variable; here
  both are named explicitly).
* ``urd`` (URD's code): GrabCut (rectangle = the image minus a 1-pixel border, 11 iterations; OpenCV) for most
  objects, inverse Otsu for capsule and screw, none for textures and transistor.
* the embedded benchmark: textures (brick, grass, gravel, coins) have no foreground mask; ``coffee`` (a cup on a
  table) uses the ``otsu`` rule on the blurred grey image.

A rule returns an H×W bool array (True = foreground) or None (no mask: the whole image).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

MVTEC_TEXTURES = ("carpet", "grid", "leather", "tile", "wood")
AAND_THRESHOLDS = {                 # category → (comparison, threshold on the blurred grey image, 0..255)
    **{c: (">", 0) for c in (*MVTEC_TEXTURES, "transistor")},
    **{c: ("<", 150) for c in ("capsule", "screw", "zipper")},
    **{c: (">", 50) for c in ("hazelnut", "metal_nut", "pill", "toothbrush")},
}
AAND_DISKS = ("bottle", "cable")
URD_GRABCUT = ("bottle", "cable", "hazelnut", "metal_nut", "pill", "toothbrush", "zipper")
URD_OTSU_INVERSE = ("capsule", "screw")
EMBEDDED_RULES = {"brick": None, "grass": None, "gravel": None, "coins": None, "coffee": "otsu"}


def grey(image: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 (or float in [0,1]) → H×W float grey in 0..255 (ITU-R 601 luma, as cv2.COLOR_RGB2GRAY)."""
    a = np.asarray(image, dtype=np.float64)
    if a.max() <= 1.0:
        a = a * 255.0
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of 0..255 values, rounded to integers as OpenCV's ``THRESH_OTSU`` sees a uint8 image
    (``skimage.filters.threshold_otsu``; values above it are the brighter class)."""
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(np.clip(np.round(values), 0, 255).astype(np.uint8), nbins=256))


def disk(h: int, w: int, radius_frac: float = 0.45) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2 <= (radius_frac * h) ** 2


def aand_foreground(image: np.ndarray, category: str) -> np.ndarray | None:
    h, w = image.shape[:2]
    if category in AAND_DISKS:
        return disk(h, w)
    if category not in AAND_THRESHOLDS:
        return None
    op, th = AAND_THRESHOLDS[category]
    g = ndimage.gaussian_filter(grey(image), 8)
    return g > th if op == ">" else g < th


def grabcut(image: np.ndarray, iterations: int = 11) -> np.ndarray:
    try:
        import cv2
    except ImportError as e:
        raise ImportError("the 'urd' foreground rule needs OpenCV for GrabCut: pip install opencv-python-headless") from e
    img = np.ascontiguousarray(np.asarray(image)[..., ::-1]).astype(np.uint8)     # RGB → BGR
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(img, mask, (1, 1, w - 2, h - 2), bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def urd_foreground(image: np.ndarray, category: str) -> np.ndarray | None:
    if category in URD_OTSU_INVERSE:
        g = grey(image)
        return g <= otsu_threshold(g)
    if category in URD_GRABCUT:
        return grabcut(image)
    return None


def embedded_foreground(image: np.ndarray, category: str) -> np.ndarray | None:
    rule = EMBEDDED_RULES.get(category)
    if rule is None:
        return None
    g = ndimage.gaussian_filter(grey(image), 4)
    return g > otsu_threshold(g)


def foreground(image: np.ndarray, category: str, rule: str) -> np.ndarray | None:
    """Foreground of one training image by ``rule`` in {none, aand, urd}; embedded categories use their own rule."""
    if rule == "none":
        return None
    if category in EMBEDDED_RULES:
        return embedded_foreground(image, category)
    if rule == "aand":
        return aand_foreground(image, category)
    if rule == "urd":
        return urd_foreground(image, category)
    raise ValueError(f"foreground rule {rule!r}; choose from none, aand, urd")
