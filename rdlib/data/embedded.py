"""The embedded benchmark: an MVTec-AD-layout dataset generated offline from scikit-image's bundled CC0 images.

Real benchmarks (MVTec AD, VisA, BTAD, MPDD) cannot be downloaded on the project's machines, so the book's main runs
use this generator. Every category is written as::

    <root>/<category>/train/good/000.png
    <root>/<category>/test/good/000.png
    <root>/<category>/test/<defect>/000.png
    <root>/<category>/ground_truth/<defect>/000_mask.png

Design rules (tested in ``tests/test_embedded.py``):

* deterministic: the same arguments give the same pixels on every machine (one seeded generator per image);
* no leakage: texture categories cut train crops and test crops from *disjoint halves* of the source photo;
  the object category (``coffee``) uses the same object under independently drawn poses, lighting and sensor noise;
* defects are hand-made shapes (scratch, hole, foreign patch, stain, warp), deliberately unlike the Perlin-noise
  masks that URD/AAND/RD-RE synthesise for training, so those methods are not scored on their own synthesis.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from rdlib.utils import atomic_write_json, stable_hash, stable_seed

log = logging.getLogger(__name__)

GENERATOR_VERSION = 4
DEFECTS = ("scratch", "hole", "foreign", "stain", "warp")


@dataclass(frozen=True)
class CategorySpec:
    source: str          # skimage.data function name
    kind: str            # "texture" (disjoint halves, random crops) or "object" (one object, random pose)
    crop_frac: float     # crop side as a fraction of the region's short side (texture) or image height (object)
    strength: float = 1.0  # defect visibility multiplier (calibration, see below)


# Calibration (generator v4, issue #30): the papers report 95-99 I-AUROC on MVTec AD and claim gains of a few points
# there, so the benchmark is tuned to that regime at the book's 128²: each category's defect strength (and, for the
# textures, how much of the photo a crop covers) was chosen so that the training-free kNN reference and RD trained to
# its plateau (300 steps) both score between about 88 and 97 I-AUROC per category, with no defect type below chance.
# Measured with generator v4: kNN 96.3 / 95.4 / 93.7 / 88.9 / 96.5 and RD 88.5 / 87.7 / 90.8 / 88.2 / 92.8 (brick,
# grass, gravel, coins, coffee). Zoomed-in crops of grass and gravel (v3's 0.75) held fine blades and pebbles that
# Lite0's stride-4 features at 128² do not resolve: RD scored 74 and 84 there. The data chapter re-measures the
# reference on every build.
CALIBRATION_RANGE = (88.0, 97.0)   # target I-AUROC (%) per category for the kNN reference and a converged RD
CATEGORIES: dict[str, CategorySpec] = {
    "brick": CategorySpec("brick", "texture", 0.75, strength=0.8),
    "grass": CategorySpec("grass", "texture", 1.0, strength=2.2),
    "gravel": CategorySpec("gravel", "texture", 1.0, strength=1.4),
    "coins": CategorySpec("coins", "texture", 0.9, strength=2.4),
    "coffee": CategorySpec("coffee", "object", 0.92, strength=0.8),
}
# Photos that foreign-material patches are cut from (never a category's own source).
FOREIGN_SOURCES = ("camera", "moon", "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "chelsea")


@dataclass(frozen=True)
class EmbeddedConfig:
    """Everything that determines the generated pixels (its hash names the folder)."""

    size: int = 256
    n_train: int = 80
    # Test split sized to tell methods apart: with 80 normal and 5 × 30 defective images, the 95 % interval of a
    # category's I-AUROC near 90 is about ±3.8 points (Hanley–McNeil), against ±8 with 20 + 5 × 8.
    n_test_good: int = 80
    n_test_per_defect: int = 30
    categories: tuple[str, ...] = tuple(CATEGORIES)
    defects: tuple[str, ...] = DEFECTS
    difficulty: float = 1.0   # >1 makes defects more visible, <1 subtler
    seed: int = 0
    version: int = field(default=GENERATOR_VERSION)

    def key(self) -> str:
        return stable_hash(asdict(self), 10)


def load_source(name: str) -> np.ndarray:
    """A bundled skimage image as float32 RGB in [0, 1]."""
    import skimage.data

    img = getattr(skimage.data, name)()
    img = np.asarray(img, dtype=np.float32)
    if img.max() > 1.5:
        img = img / 255.0
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    u8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.asarray(Image.fromarray(u8).resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0


def texture_regions(shape: tuple[int, int]) -> dict[str, tuple[int, int, int, int]]:
    """Disjoint source regions (y0, y1, x0, x1) for train and test: the two halves along the longer axis."""
    h, w = shape
    if h >= w:
        return {"train": (0, h // 2, 0, w), "test": (h // 2, h, 0, w)}
    return {"train": (0, h, 0, w // 2), "test": (0, h, w // 2, w)}


def _normal_image(spec: CategorySpec, src: np.ndarray, split: str, size: int, rng: np.random.Generator) -> np.ndarray:
    if spec.kind == "texture":
        y0, y1, x0, x1 = texture_regions(src.shape[:2])["train" if split == "train" else "test"]
        crop = int(spec.crop_frac * min(y1 - y0, x1 - x0))
        y = rng.integers(y0, y1 - crop + 1)
        x = rng.integers(x0, x1 - crop + 1)
        img = src[y:y + crop, x:x + crop]
        img = np.rot90(img, rng.integers(4))
        if rng.random() < 0.5:
            img = img[:, ::-1]
        img = _resize(img, size)
    else:  # object: centred crop with a small random pose
        h, w = src.shape[:2]
        crop = int(spec.crop_frac * min(h, w))
        jitter = int(0.03 * crop)
        cy = (h - crop) // 2 + rng.integers(-jitter, jitter + 1)
        cx = (w - crop) // 2 + rng.integers(-jitter, jitter + 1)
        cy, cx = int(np.clip(cy, 0, h - crop)), int(np.clip(cx, 0, w - crop))
        img = src[cy:cy + crop, cx:cx + crop]
        angle = rng.uniform(-3, 3)
        img = ndimage.rotate(img, angle, axes=(0, 1), reshape=False, order=1, mode="reflect")
        img = _resize(img, size)
    gain = rng.uniform(0.95, 1.05)
    img = img * gain + rng.normal(0, 1.5 / 255, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


# ----------------------------------------------------------------------------------------------------- defects
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:size, 0:size].astype(np.float32)


def _scratch(img, rng, size, k):
    yy, xx = _grid(size)
    length = rng.uniform(0.25, 0.55) * size
    p0 = rng.uniform(0.2, 0.8, 2) * size
    ang = rng.uniform(0, np.pi)
    p2 = p0 + length * np.array([np.sin(ang), np.cos(ang)])
    p1 = (p0 + p2) / 2 + rng.normal(0, 0.12 * length, 2)
    t = np.linspace(0, 1, 160)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2          # quadratic Bezier
    d = np.full((size, size), np.inf, np.float32)
    for py, px in pts:
        np.minimum(d, np.hypot(yy - py, xx - px), out=d)
    width = rng.uniform(1.0, 2.2) * size / 256
    alpha = np.clip(1.0 - (d - width) / 1.5, 0, 1)[..., None]
    target = rng.uniform(0.0, 0.25) if rng.random() < 0.6 else rng.uniform(0.8, 1.0)
    strength = np.clip(0.55 * k, 0, 1)
    out = img * (1 - strength * alpha) + target * strength * alpha
    return out, d <= width + 0.5


def _ellipse(size, rng, rmin, rmax):
    yy, xx = _grid(size)
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    a, b = np.maximum(rng.uniform(rmin, rmax, 2) * size, 2.5)   # at least a few pixels at small sizes
    th = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(th) + dy * np.sin(th)) / a
    v = (-dx * np.sin(th) + dy * np.cos(th)) / b
    return np.sqrt(u ** 2 + v ** 2), (cy, cx, max(a, b))


def _hole(img, rng, size, k):
    r, _ = _ellipse(size, rng, 0.035, 0.08)
    inside = np.clip((1.0 - r) * 6, 0, 1)[..., None]                      # soft 1-2 px edge
    depth = rng.uniform(0.03, 0.25)
    shade = depth * (0.6 + 0.4 * np.clip(r, 0, 1))[..., None]              # darker in the middle
    strength = np.clip(0.8 * k, 0, 1)
    out = img * (1 - strength * inside) + shade * strength * inside
    rim = np.clip(1.0 - np.abs(r - 1.12) / 0.12, 0, 1)[..., None]          # a torn, lighter edge around it
    out = out + np.clip(0.35 * k, 0, 0.8) * rim * (1 - out)
    return out, r <= 1.2


def _foreign(img, rng, size, k, foreign_pool):
    yy, xx = _grid(size)
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    n = rng.integers(5, 9)
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(0.05, 0.11, n) * size
    from skimage.draw import polygon

    rr, cc = polygon(cy + radii * np.sin(angles), cx + radii * np.cos(angles), (size, size))
    mask = np.zeros((size, size), bool)
    mask[rr, cc] = True
    src = foreign_pool[rng.integers(len(foreign_pool))]
    ph = int(min(src.shape[:2]) * rng.uniform(0.2, 0.5))
    y = rng.integers(0, src.shape[0] - ph + 1)
    x = rng.integers(0, src.shape[1] - ph + 1)
    patch = _resize(src[y:y + ph, x:x + ph], size)
    # Pull the patch's statistics part of the way to the surroundings so it is not trivially visible.
    m, s = img[mask].mean(0), img[mask].std(0) + 1e-3
    pm, ps = patch[mask].mean(0), patch[mask].std(0) + 1e-3
    match = np.clip(1.0 - 0.5 * k, 0, 1)
    matched = (patch - pm) / ps * s + m
    patch = match * matched + (1 - match) * patch
    out = img.copy()
    out[mask] = np.clip(patch[mask], 0, 1)
    return out, mask


def _stain(img, rng, size, k):
    r, _ = _ellipse(size, rng, 0.05, 0.12)
    a = np.exp(-0.5 * (r / 0.6) ** 2)[..., None]                           # smooth falloff
    colour = rng.uniform(0.0, 1.0, 3)
    colour[rng.integers(3)] = rng.choice([0.05, 0.95])                     # a saturated tint, dark or light
    amp = np.clip(rng.uniform(0.2, 0.4) * k, 0, 0.9)
    out = img * (1 - amp * a) + colour * amp * a                            # blended toward the tint
    return out, a[..., 0] >= 0.5


def _warp(img, rng, size, k):
    yy, xx = _grid(size)
    cy, cx = rng.uniform(0.25, 0.75, 2) * size
    radius = rng.uniform(0.09, 0.16) * size
    dy, dx = yy - cy, xx - cx
    d = np.hypot(dy, dx) / radius
    inside = d < 1
    if rng.random() < 0.5:   # bulge / pinch: radial remap
        p = 1 + rng.choice([-1, 1]) * np.clip(0.5 * k, 0, 0.8)
        scale = np.where(inside, np.power(np.clip(d, 1e-6, 1), p - 1), 1.0)
        sy, sx = cy + dy * scale, cx + dx * scale
    else:                    # swirl
        theta = np.where(inside, np.clip(2.0 * k, 0, 3.5) * (1 - d) ** 2, 0.0) * rng.choice([-1, 1])
        sy = cy + dy * np.cos(theta) - dx * np.sin(theta)
        sx = cx + dy * np.sin(theta) + dx * np.cos(theta)
    out = np.stack([ndimage.map_coordinates(img[..., c], [sy, sx], order=1, mode="reflect") for c in range(3)], -1)
    moved = np.hypot(sy - yy, sx - xx) > 1.0 * size / 256
    return out, ndimage.binary_fill_holes(moved & inside)       # a bulge's centre does not move but is deformed


def make_defect(defect: str, img: np.ndarray, rng: np.random.Generator, difficulty: float = 1.0,
                foreign_pool: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Apply one defect to ``img`` (H×W×3 float in [0,1]); returns (defective image, boolean mask)."""
    size = img.shape[0]
    for _ in range(20):  # redraw the rare degenerate case of an almost empty mask
        if defect == "scratch":
            out, mask = _scratch(img, rng, size, difficulty)
        elif defect == "hole":
            out, mask = _hole(img, rng, size, difficulty)
        elif defect == "foreign":
            out, mask = _foreign(img, rng, size, difficulty, foreign_pool or [load_source("camera")])
        elif defect == "stain":
            out, mask = _stain(img, rng, size, difficulty)
        elif defect == "warp":
            out, mask = _warp(img, rng, size, difficulty)
        else:
            raise ValueError(f"unknown defect {defect!r}; choose from {DEFECTS}")
        if mask.sum() >= max(6, 0.0003 * size * size):
            return np.clip(out, 0, 1).astype(np.float32), mask
    raise RuntimeError(f"could not draw a non-empty {defect} mask")


def _save_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr.dtype == bool:
        Image.fromarray(arr.astype(np.uint8) * 255).save(path)
    else:
        Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


def generate_category(root: str | Path, category: str, cfg: EmbeddedConfig) -> dict[str, int]:
    """Write one category; returns image counts per split/defect."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown embedded category {category!r}; choose from {sorted(CATEGORIES)}")
    spec = CATEGORIES[category]
    src = load_source(spec.source)
    pool = [load_source(n) for n in FOREIGN_SOURCES if n != spec.source]
    out = Path(root) / category
    counts = {}

    def rng_for(*parts):
        return np.random.default_rng(stable_seed(cfg.seed, category, *parts))

    for i in range(cfg.n_train):
        _save_png(out / "train" / "good" / f"{i:03d}.png", _normal_image(spec, src, "train", cfg.size, rng_for("train", i)))
    counts["train/good"] = cfg.n_train
    for i in range(cfg.n_test_good):
        _save_png(out / "test" / "good" / f"{i:03d}.png", _normal_image(spec, src, "test", cfg.size, rng_for("test", "good", i)))
    counts["test/good"] = cfg.n_test_good
    for defect in cfg.defects:
        for i in range(cfg.n_test_per_defect):
            rng = rng_for("test", defect, i)
            img = _normal_image(spec, src, "test", cfg.size, rng)
            bad, mask = make_defect(defect, img, rng, cfg.difficulty * spec.strength, pool)
            _save_png(out / "test" / defect / f"{i:03d}.png", bad)
            _save_png(out / "ground_truth" / defect / f"{i:03d}_mask.png", mask)
        counts[f"test/{defect}"] = cfg.n_test_per_defect
    return counts


def default_data_dir() -> Path:
    """``rdlib.paths.data_dir()``: $RDLIB_DATA, the checkout's data/, or ~/.cache/rdlib/data."""
    from rdlib.paths import data_dir

    return data_dir()


def generate_embedded(root: str | Path | None = None, cfg: EmbeddedConfig | None = None, force: bool = False) -> Path:
    """Generate the embedded benchmark (idempotent: an existing complete folder with the same config is reused).

    Returns the dataset root, ``<root>/embedded-<size>px-<hash>`` when ``root`` is a parent folder.
    """
    cfg = cfg or EmbeddedConfig()
    base = Path(root) if root is not None else default_data_dir()
    target = base / f"embedded-{cfg.size}px-{cfg.key()}"
    marker = target / "embedded_benchmark.json"
    if marker.exists() and not force:
        try:
            if json.loads(marker.read_text()).get("key") == cfg.key():
                return target
        except json.JSONDecodeError:
            pass
    if target.exists():
        shutil.rmtree(target)
    tmp = target.with_name(target.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    counts = {}
    for cat in cfg.categories:
        log.info("embedded benchmark: generating %s", cat)
        counts[cat] = generate_category(tmp, cat, cfg)
    atomic_write_json(tmp / "embedded_benchmark.json", {"key": cfg.key(), "config": asdict(cfg), "counts": counts,
                                                        "licence": "derived from scikit-image's bundled CC0/public-domain images"})
    tmp.rename(target)
    return target
