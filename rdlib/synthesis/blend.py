"""Batched synthesis on the images' device: masks, blending and the anomalous/clean draw (one code path for a
dataset item, B = 1, and for a whole batch on a GPU)."""
from __future__ import annotations

import torch

from rdlib.synthesis.noise import perlin_masks, simplex_octaves
from rdlib.synthesis.presets import SynthesisPreset


def draem_blend(image: torch.Tensor, texture: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """I_a = I·(1 − M) + (1 − β)·T·M + β·I·M  (DRAEM); image, texture B×3×H×W, mask B×1×H×W, keep β of shape B."""
    b = keep.view(-1, 1, 1, 1)
    return image * (1 - mask) + (1 - b) * texture * mask + b * image * mask


def synthesize(images: torch.Tensor, textures: torch.Tensor | None, foreground: torch.Tensor | None,
               preset: SynthesisPreset, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(synthetic images B×3×H×W, masks B×1×H×W) for normal images in [0, 1].

    ``foreground``: B×1×H×W (1 = object) or None; ``generator`` drives every random draw (CPU generator; the
    tensors it draws move to the images' device).
    """
    b, _, h, w = images.shape
    dev = images.device
    anomalous = (torch.rand(b, generator=generator) < preset.p_anomalous).to(dev)
    if preset.noise == "none" or not anomalous.any():
        return images.clone(), torch.zeros(b, 1, h, w, device=dev)
    if preset.noise == "simplex":
        out, masks = images.clone(), torch.zeros(b, 1, h, w, device=dev)
        for i in range(b):
            if not anomalous[i]:
                continue
            lo, hi = preset.box
            bh, bw = (int(torch.randint(lo, hi, (1,), generator=generator)) for _ in range(2))
            bh, bw = min(bh, h), min(bw, w)
            # RD++: the corner from randint(1, S − side); a box that (nearly) fills the image starts at 0
            y = int(torch.randint(1, h - bh, (1,), generator=generator)) if h - bh > 1 else 0
            x = int(torch.randint(1, w - bw, (1,), generator=generator)) if w - bw > 1 else 0
            noise = simplex_octaves((3, bh, bw), generator=generator, device=dev)
            out[i, :, y:y + bh, x:x + bw] += preset.simplex_scale * noise       # RD++: added, not blended
            masks[i, :, y:y + bh, x:x + bw] = 1.0
        return out, masks                  # not clipped to [0, 1]: the official RD++ dataset adds the noise as is
    masks = perlin_masks(b, h, w, generator, dev)
    if foreground is not None:
        masks = masks * foreground
    for _ in range(preset.redraws - 1):                  # AAND: re-draw masks that are too small
        small = masks.flatten(1).sum(1) <= preset.min_mask_pixels
        if not small.any():
            break
        fresh = perlin_masks(b, h, w, generator, dev)
        if foreground is not None:
            fresh = fresh * foreground
        masks = torch.where(small.view(-1, 1, 1, 1), fresh, masks)
    masks = masks * anomalous.view(-1, 1, 1, 1).float()
    lo, hi = preset.keep_range
    keep = (lo + (hi - lo) * torch.rand(b, generator=generator)).to(dev)
    return draem_blend(images, textures, masks, keep), masks
