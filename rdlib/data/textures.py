"""Anomaly-source textures for synthesis (the papers use DTD).

Order of preference (the first that yields images is used, and logged):

1. a user-given DTD folder (``dtd/images/<class>/*.jpg`` or any folder of images);
2. Debian texture packages if installed: ``gimp-data`` patterns (``.pat``), ``tuxpaint-data`` templates,
   ``mypaint-data-extras`` backgrounds;
3. bundled images of scikit-image and scikit-learn that the embedded benchmark uses nowhere (neither as a
   category nor as a test-defect source: training anomalies made of them cannot leak into the test set; tested);
4. procedural textures (coloured multi-octave value noise, stripes, checkers), always available.

The source used is logged (at WARNING when it is not DTD) and recorded by the runs that use it.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

DEBIAN_DIRS = {
    "gimp-data": Path("/usr/share/gimp/2.0/patterns"),
    "tuxpaint-data": Path("/usr/share/tuxpaint/templates"),
    "mypaint-data-extras": Path("/usr/share/mypaint/backgrounds"),
}
# Disjoint from every embedded category source and from FOREIGN_SOURCES (rdlib.data.embedded): see the module docstring.
SKIMAGE_PHOTOS = ("retina", "clock", "page", "text", "colorwheel", "cell", "microaneurysms", "checkerboard", "logo")
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".pat")


def read_gimp_pattern(path: str | Path) -> np.ndarray:
    """Read a GIMP ``.pat`` file: big-endian header (header size, version, width, height, bytes/pixel), magic GPAT."""
    data = Path(path).read_bytes()
    if len(data) < 24 or data[20:24] != b"GPAT":
        raise ValueError(f"{path}: not a GIMP pattern (missing GPAT magic)")
    header, _version, w, h, bpp = struct.unpack(">5I", data[:20])
    if bpp not in (1, 2, 3, 4):
        raise ValueError(f"{path}: unsupported bytes per pixel {bpp}")
    px = np.frombuffer(data[header:header + w * h * bpp], np.uint8)
    if px.size != w * h * bpp:
        raise ValueError(f"{path}: truncated pattern data")
    px = px.reshape(h, w, bpp)
    if bpp in (1, 2):
        px = np.repeat(px[..., :1], 3, axis=2)
    return np.ascontiguousarray(px[..., :3])


@dataclass
class TextureSource:
    """A list of texture images (uint8 H×W×3) and the name of where they came from."""

    name: str
    images: list[np.ndarray]

    def sample_tensor(self, g, size: int):
        """A random texture as a 3×size×size uint8 tensor, drawn with a torch generator (synthesis)."""
        import torch

        i = int(torch.randint(len(self.images), (1,), generator=g))
        return torch.from_numpy(np.array(self._fit(self.images[i], size))).permute(2, 0, 1).contiguous()

    def _fit(self, img: np.ndarray, size: int) -> np.ndarray:
        h, w = img.shape[:2]
        if min(h, w) < size // 2:  # small seamless tiles (GIMP patterns): tile, then crop
            reps = (int(np.ceil(size / h)), int(np.ceil(size / w)), 1)
            img = np.tile(img, reps)[:size, :size]
        return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """A random texture resized (or tiled, for small tiles) to size×size, float32 in [0,1]."""
        img = self.images[rng.integers(len(self.images))]
        h, w = img.shape[:2]
        if min(h, w) < size // 2:  # small seamless tiles (GIMP patterns): tile, then crop
            reps = (int(np.ceil(size / h)), int(np.ceil(size / w)), 1)
            img = np.tile(img, reps)[:size, :size]
        pil = Image.fromarray(img).resize((size, size), Image.BILINEAR)
        return np.asarray(pil, dtype=np.float32) / 255.0


def _read_any(path: Path) -> np.ndarray | None:
    try:
        if path.suffix.lower() == ".pat":
            return read_gimp_pattern(path)
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:
        log.warning("texture source: skipping unreadable %s (%s)", path, e)
        return None


def _folder_images(folder: Path, limit: int) -> list[np.ndarray]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _EXTS)[:limit]
    return [a for a in (_read_any(p) for p in files) if a is not None]


def procedural_textures(n: int = 16, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    """Coloured value-noise, stripe and checker textures (uint8), deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        kind = i % 3
        if kind == 0:  # multi-octave value noise
            acc = np.zeros((size, size, 3))
            for octave in range(1, 6):
                cells = 2 ** octave
                grid = rng.random((cells + 1, cells + 1, 3))
                up = np.asarray(Image.fromarray((grid * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)) / 255.0
                acc += up / octave
            img = (acc - acc.min()) / (np.ptp(acc) + 1e-8)
        elif kind == 1:  # stripes
            f, th = rng.uniform(4, 20), rng.uniform(0, np.pi)
            s = 0.5 + 0.5 * np.sin(2 * np.pi * f * (xx * np.cos(th) + yy * np.sin(th)))
            img = s[..., None] * rng.random(3) + (1 - s[..., None]) * rng.random(3)
        else:  # checkers
            f = rng.integers(3, 12)
            c = ((np.floor(xx * f) + np.floor(yy * f)) % 2)[..., None]
            img = c * rng.random(3) + (1 - c) * rng.random(3)
        out.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return out


def find_texture_source(dtd_root: str | Path | None = None, limit: int = 2000, allow: tuple[str, ...] = (
        "dtd", "debian", "skimage", "procedural"), warn: bool = True) -> TextureSource:
    """Return the first available texture source (see module docstring) and log which one (a warning when it is not
    DTD, unless ``warn=False``: the caller shows it).

    ``dtd_root`` defaults to ``$RDLIB_DTD``."""
    import logging
    import os

    level = logging.WARNING if warn else logging.INFO

    dtd_root = dtd_root or os.environ.get("RDLIB_DTD")
    if "dtd" in allow and dtd_root:
        root = Path(dtd_root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: DTD folder does not exist. Pass the folder that holds dtd/images/*/*.jpg, "
                                    "or leave dtd_root unset to fall back to other sources.")
        folder = root / "images" if (root / "images").is_dir() else root
        imgs = _folder_images(folder, limit)
        if imgs:
            log.info("texture source: DTD folder %s (%d images)", folder, len(imgs))
            return TextureSource(f"dtd:{folder}", imgs)
        raise FileNotFoundError(f"{folder}: no images found in the given DTD folder.")
    if "debian" in allow:
        imgs, used = [], []
        for pkg, d in DEBIAN_DIRS.items():
            if d.is_dir():
                got = _folder_images(d, limit)
                if got:
                    imgs += got
                    used.append(pkg)
        if imgs:
            log.log(level, "texture source: Debian packages %s (%d images), not DTD", used, len(imgs))
            return TextureSource("debian:" + "+".join(used), imgs)
    if "skimage" in allow:
        try:
            import skimage.data

            from sklearn.datasets import load_sample_image

            imgs = []
            for n in SKIMAGE_PHOTOS:
                a = np.asarray(getattr(skimage.data, n)())
                if a.dtype == bool:
                    a = a.astype(np.uint8) * 255
                if a.ndim == 2:
                    a = np.repeat(a[..., None], 3, axis=2)
                imgs.append(np.ascontiguousarray(a[..., :3]).astype(np.uint8))
            imgs += [np.ascontiguousarray(load_sample_image(n)) for n in SKLEARN_PHOTOS]
            log.log(level, "texture source: scikit-image / scikit-learn bundled images (%d), not DTD", len(imgs))
            return TextureSource("skimage", imgs)
        except Exception as e:  # noqa: BLE001 - any failure means: fall through to procedural
            log.warning("texture source: scikit-image photos unavailable (%s)", e)
    imgs = procedural_textures()
    log.log(level, "texture source: procedural textures (%d images), not DTD", len(imgs))
    return TextureSource("procedural", imgs)
