"""A training set of (normal image, synthetic anomaly, mask) built on any :class:`AnomalyDataset`.

Every random draw of item *i* comes from a generator seeded with (epoch seed, i) (:class:`SeededItems`), so an
item is the same in a resumed run, in a worker process and with any ``num_workers``. Foreground masks are computed
once per training image when the dataset is built.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from rdlib.data.dataset import AnomalyDataset, SeededItems
from rdlib.data.textures import TextureSource
from rdlib.synthesis.augment import random_augment
from rdlib.synthesis.blend import synthesize
from rdlib.synthesis.foreground import foreground
from rdlib.synthesis.presets import SynthesisPreset, get_preset


class SyntheticAnomalies(SeededItems, Dataset):
    """Items ``{"image": normal 3×S×S, "synthetic": 3×S×S, "mask": 1×S×S, "label": 0/1, "index": i}`` (no
    ``mask`` for presets that train without one, e.g. RD++), plus ``"foreground": 1×S×S`` (1 = object; all ones
    where the category has no rule) for presets with a foreground rule (AAND's L_A draws its normal patches there).

    Args:
        base: the normal training images.
        preset: a preset name (``rdlib.synthesis.PRESETS``) or a :class:`SynthesisPreset`.
        textures: the anomaly source (DTD or a fallback, see :func:`rdlib.data.find_texture_source`); not needed for
            simplex or no noise.
        category: selects the foreground rule.
    """

    def __init__(self, base: AnomalyDataset, preset: str | SynthesisPreset, textures: TextureSource | None = None,
                 category: str | None = None):
        self.base = base
        self.preset = get_preset(preset) if isinstance(preset, str) else preset
        if self.preset.noise == "perlin" and (textures is None or not textures.images):
            raise ValueError(f"synthesis preset {self.preset.name!r} blends textures: pass a TextureSource with images")
        self.textures = textures
        self.texture_source = textures.name if textures is not None else None
        self.category = category or str(base.table.category.iloc[0])
        self.table = base.table
        self.foregrounds: list[np.ndarray | None] = []
        if self.preset.foreground != "none" and self.preset.noise != "none":
            for i in range(len(base)):
                img = (base[i]["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                fg = foreground(img, self.category, self.preset.foreground)
                self.foregrounds.append(None if fg is None else np.packbits(fg, axis=-1))
        self._width = base.image_size

    def __len__(self) -> int:
        return len(self.base)

    def foreground_mask(self, i: int) -> torch.Tensor | None:
        if not self.foregrounds or self.foregrounds[i] is None:
            return None
        fg = np.unpackbits(self.foregrounds[i], axis=-1, count=self._width).astype(np.float32)
        return torch.from_numpy(fg)[None, None]

    def __getitem__(self, i: int) -> dict:
        item = self.base[i]
        g = self.item_generator(i)
        size = item["image"].shape[-1]
        texture = None
        if self.preset.noise == "perlin":
            t = self.textures.sample_tensor(g, size)
            if self.preset.augment:
                t, _ = random_augment(t, g)
            texture = (t.float() / 255.0)[None]
        synthetic, mask = synthesize(item["image"][None], texture, self.foreground_mask(i), self.preset, g)
        out = {"image": item["image"], "synthetic": synthetic[0], "label": int(mask.any()), "index": i}
        if self.preset.returns_mask:                          # RD++ trains without it
            out["mask"] = mask[0]
            if self.preset.foreground != "none":
                fg = self.foreground_mask(i)
                out["foreground"] = fg[0] if fg is not None else torch.ones_like(mask[0])
        return out
