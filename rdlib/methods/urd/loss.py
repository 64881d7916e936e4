"""URD's two losses: the teacher's (anomaly sensitivity, Eq. 1–3) and the student's (denoising distillation, Eq. 4–6).

Teacher, per level i, with D(a, b) = 1 − cos(a, b) per pixel (B×1×h_i×w_i):

    L_TE = Σ_i  mean D(T(I_n)_i, E(I_n)_i)                      normal image: stay with the expert
              + mean |D(T(I_a)_i, E(I_n)_i) − M_i|              anomalous image: move away from it exactly on the mask
              [+ d(T(I_a)_i, E(I_a)_i)]                          official code only (``extra_term``), d = flattened

Student, with d(a, b) = 1 − cos(vec a, vec b) per image, batch mean (RD's official loss):

    L_S = Σ_i  d(S(T(I_n))_i, T(I_n)_i) + d(S(T(I_a))_i, T(I_n)_i) + d(S(T(I_n))_i, E(I_n)_i) + d(S(T(I_a))_i, E(I_n)_i)

(the student rebuilds the *normal* image's features from the anomalous one: the code's targets, which the paper's
Eq. 5 superscript misstates). ``expert=False`` drops the E terms and ``denoising=False`` the I_a terms (Table 6).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rdlib.anomaly_map import cosine_distance_map
from rdlib.losses import cosine_loss_flatten


def level_masks(mask: torch.Tensor, sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """M_i: the B×1×S×S mask resized to each level, shallow to deep, each from the previous level's *binarised*
    mask (bilinear, align_corners=True, then 1 where ≥ 0.5), as the official teacher loss does
    (``models/teacher.py``, ``loss_distil_aug_p``: 256→64→32→16, the mask re-binarised before each next resize)."""
    out, m = [], mask.float()
    for size in sizes:
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=True)
        m = (m >= 0.5).float()
        out.append(m)
    return out


def teacher_loss(t_normal: list[torch.Tensor], t_anomalous: list[torch.Tensor], e_normal: list[torch.Tensor],
                 mask: torch.Tensor, e_anomalous: list[torch.Tensor] | None = None) -> torch.Tensor:
    """L_TE. ``e_anomalous`` given: adds the code's flattened d(T(I_a), E(I_a)) term per level."""
    masks = level_masks(mask, [f.shape[-2:] for f in t_normal])
    loss = t_normal[0].new_zeros(())
    for i, (tn, ta, en, m) in enumerate(zip(t_normal, t_anomalous, e_normal, masks)):
        loss = loss + cosine_distance_map(tn, en).mean()                       # normal: D(T(I_n), E(I_n)) → 0
        loss = loss + (cosine_distance_map(ta, en) - m).abs().mean()           # anomalous: D(T(I_a), E(I_n)) → M_i
    if e_anomalous is not None:
        loss = loss + cosine_loss_flatten(e_anomalous, t_anomalous)            # code only: d(T(I_a), E(I_a))
    return loss


def student_loss(s_normal: list[torch.Tensor], t_normal: list[torch.Tensor], s_anomalous: list[torch.Tensor] | None = None,
                 e_normal: list[torch.Tensor] | None = None) -> torch.Tensor:
    """L_S with the terms the variant has: S(T(I_n)) and S(T(I_a)) (when given) against T(I_n) and E(I_n) (when given)."""
    outputs = [s_normal] + ([s_anomalous] if s_anomalous is not None else [])
    targets = [t_normal] + ([e_normal] if e_normal is not None else [])
    loss = t_normal[0].new_zeros(())
    for s in outputs:
        for t in targets:
            loss = loss + cosine_loss_flatten(t, s)
    return loss
