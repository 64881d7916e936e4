"""RD-RE's two losses.

Stage 1 (student): per-pixel cosine distance between the teacher's features of the normal image and the student's
of the synthetic one, mean over positions, summed over levels (the per-pixel form, as DeSTSeg; not RD's flattened):
``rdlib.losses.cosine_loss_pixel``.

Stage 2 (segmentation): L_seg = Focal(Ŷ, M) + L1(Ŷ, M) with M the mask resized to the head's resolution (bilinear,
> 0.5) and Ŷ the sigmoid output; focal γ = 4 without α (DeSTSeg's values; the paper gives none).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rdlib.losses import cosine_loss_pixel  # noqa: F401 - stage 1's loss, re-exported for the chapter

SEG_LOSSES = ("focal+l1", "focal")


def target_mask(mask: torch.Tensor, size) -> torch.Tensor:
    """B×1×S×S → B×1×h×w: bilinear resize, then > 0.5 (DeSTSeg)."""
    return (F.interpolate(mask.float(), size=size, mode="bilinear", align_corners=False) > 0.5).float()


def focal_loss(prob: torch.Tensor, target: torch.Tensor, gamma: float = 4.0, eps: float = 1e-6) -> torch.Tensor:
    """Binary focal loss without α: mean of −(1 − p_t)^γ log p_t, p_t = p on positives and 1 − p on negatives."""
    p = prob.clamp(eps, 1 - eps)
    pt = torch.where(target > 0.5, p, 1 - p)
    return (-(1 - pt) ** gamma * torch.log(pt)).mean()


def segmentation_loss(prob: torch.Tensor, mask: torch.Tensor, mode: str = "focal+l1", gamma: float = 4.0) -> torch.Tensor:
    """L_seg for head probabilities ``prob`` (B×1×h×w) and the full-size ``mask``."""
    if mode not in SEG_LOSSES:
        raise ValueError(f"seg_loss={mode!r}; choose from {list(SEG_LOSSES)} (RD-RE Table 9)")
    m = target_mask(mask, prob.shape[-2:])
    loss = focal_loss(prob, m, gamma)
    if mode == "focal+l1":
        loss = loss + (prob - m).abs().mean()
    return loss
