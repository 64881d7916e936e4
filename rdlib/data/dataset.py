"""Torch datasets over a sample table (see :mod:`rdlib.data.readers`).

Images come out as float tensors in [0, 1] (3×S×S); the teacher encoder applies its own normalisation, so the
anomaly synthesis of later methods can work in image space. Masks come out as 1×S×S float tensors in {0, 1}.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from rdlib.data.readers import load_image, load_mask, read_dataset

INTERPOLATION = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def image_tensor(path, image_size: int, interpolation: str = "bilinear") -> torch.Tensor:
    """The image at ``path`` as every method sees it: RGB, resized to S×S with ``interpolation``, a 3×S×S float
    tensor in [0, 1] (the test sets and ``python -m rdlib predict`` both read images through this)."""
    img = load_image(path).resize((image_size, image_size), INTERPOLATION[interpolation])
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


class AnomalyDataset(Dataset):
    """One split of one category.

    Args:
        table: rows of a sample table (``read_dataset``), already filtered to the split.
        image_size: output side S.
        image_interpolation: "bilinear" (RD, URD), "bicubic" (AAND).
        mask_interpolation: "bilinear" then threshold at 0.5 (RD code), or "nearest" (AAND).

    Items: ``{"image": 3×S×S, "mask": 1×S×S, "label": int, "index": int}``.
    """

    def __init__(self, table: pd.DataFrame, image_size: int = 256, image_interpolation: str = "bilinear",
                 mask_interpolation: str = "bilinear"):
        if len(table) == 0:
            raise ValueError("AnomalyDataset: the sample table is empty (wrong category or split?)")
        for name, v in (("image_interpolation", image_interpolation), ("mask_interpolation", mask_interpolation)):
            if v not in INTERPOLATION:
                raise ValueError(f"{name}={v!r}; choose from {sorted(INTERPOLATION)}")
        self.table = table.reset_index(drop=True)
        self.image_size = int(image_size)
        self.image_interpolation = image_interpolation
        self.mask_interp = INTERPOLATION[mask_interpolation]

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict:
        r = self.table.iloc[i]
        s = self.image_size
        if r.mask_path is not None and isinstance(r.mask_path, str):
            m = Image.fromarray(load_mask(r.mask_path).astype(np.uint8) * 255).resize((s, s), self.mask_interp)
            mask = torch.from_numpy((np.asarray(m, dtype=np.float32) / 255.0 > 0.5).astype(np.float32))[None]
        else:
            mask = torch.zeros(1, s, s)
        return {"image": image_tensor(r.image_path, s, self.image_interpolation), "mask": mask, "label": int(r.label),
                "index": i}


def load_split(root: str | Path, category: str, split: str, image_size: int = 256, fmt: str | None = None,
               **kwargs) -> AnomalyDataset:
    """Shortcut: ``AnomalyDataset`` of ``split`` ('train' or 'test') of one category."""
    table = read_dataset(root, category, fmt)
    return AnomalyDataset(table[table.split == split], image_size, **kwargs)


class SeededItems:
    """Mixin for datasets that draw random numbers per item (anomaly synthesis, augmentation).

    The training loop calls ``set_epoch(epoch_seed)`` before each epoch; ``item_generator(index)`` then returns a
    generator seeded with (epoch seed, index). An item therefore depends only on (seed, stage, epoch, index): the
    same in a resumed run, in any worker process and for any ``num_workers``.
    """

    epoch_seed: int = 0

    def set_epoch(self, epoch_seed: int) -> None:
        self.epoch_seed = int(epoch_seed)

    def item_generator(self, index: int) -> torch.Generator:
        from rdlib.utils import stable_seed

        return torch.Generator().manual_seed(stable_seed(self.epoch_seed, int(index)))
