"""Cosine distillation losses on lists of feature maps (one per level), shared by every method of the family."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rdlib.anomaly_map import cosine_distance_map


def cosine_loss_flatten(teacher: list[torch.Tensor], student: list[torch.Tensor]) -> torch.Tensor:
    """Official RD code loss (default): per level, 1 − cos between the *whole* flattened C·H·W vectors,
    batch mean, summed over levels.  L = Σ_k mean_b [1 − cos(vec f_E^k, vec f_D^k)]   (RD4AD ``loss_fucntion``)."""
    loss = teacher[0].new_zeros(())
    for t, s in zip(teacher, student):
        loss = loss + (1 - F.cosine_similarity(t.flatten(1), s.flatten(1), dim=1)).mean()   # 1 − cos(vec f_E, vec f_D)
    return loss


def cosine_loss_pixel(teacher: list[torch.Tensor], student: list[torch.Tensor]) -> torch.Tensor:
    """Paper loss, Eq. 1–2: L_KD = Σ_k 1/(H_k W_k) Σ_{h,w} M^k(h, w) with M^k = 1 − cos along channels (batch mean)."""
    loss = teacher[0].new_zeros(())
    for t, s in zip(teacher, student):
        loss = loss + cosine_distance_map(t, s).mean()          # 1/(H_k W_k) Σ_{h,w} M^k(h, w), batch mean
    return loss
