"""RD's distillation loss: the official code's flattened cosine (default) or the paper's per-pixel form (Eq. 1–2).

Both are shared cosine losses (:mod:`rdlib.losses`, also used by URD, AAND and RD-RE); RD's choice between them is
``loss="flatten" | "pixel"``. RD4AD issue #22 reports a large drop with the paper's form; the numbers in the paper
come from the code.
"""
from __future__ import annotations

import torch

from rdlib.losses import cosine_loss_flatten, cosine_loss_pixel

LOSSES = {"flatten": cosine_loss_flatten, "pixel": cosine_loss_pixel}


def check_loss(mode: str) -> str:
    if mode not in LOSSES:
        raise ValueError(f"loss={mode!r}; choose from {sorted(LOSSES)} ('flatten' = official code, 'pixel' = paper Eq. 2)")
    return mode


def rd_loss(teacher: list[torch.Tensor], student: list[torch.Tensor], mode: str = "flatten") -> torch.Tensor:
    """L = Σ_k d(f_E^k, f_D^k) with d the flattened (code) or per-pixel (paper) cosine distance."""
    return LOSSES[check_loss(mode)](teacher, student)
