"""AAND's losses: stage 1 (focal loss on the gate, amplification loss L_A) and stage 2 (L_KD + hard KD).

Stage 1, per level k, with M_k the mask average-pooled to the level and thresholded (> 0.3, the code):

    L_focal = mean_patches [ −α (1 − w)^γ M log w − (1 − α) w^γ (1 − M) log(1 − w) ]     γ = 2, α = 0.8 (code)
    L_A     = mean_{i ∈ normal, j ∈ anomalous} ReLU( cos(F_T^i, F_A^j) − (cos(F_T^i, F_T^j) − α_m) )   α_m = 0.3

(paper Eq. 7–8: max(S, S_ref) = S_ref + ReLU(S − S_ref), the same gradient). Normal patches are the foreground
patches outside the mask (≤ 5000 drawn at random), anomalous ones the mask patches (≤ 1000); L_A = 0 without
anomalous patches. L_1 = L_focal + 0.1 · L_A in the code (the paper sums them unweighted, Eq. 9).

Stage 2: L_2 = L_KD + L_HKD, L_KD = RD's flattened cosine loss, L_HKD = Σ_k mean_b mean(top-K_h of the per-pixel
distance 1 − cos(F_A^k, F_S^k)), K_h = 10 (paper Eq. 10–12).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rdlib.anomaly_map import cosine_distance_map


def pooled_masks(mask: torch.Tensor, sizes: list[tuple[int, int]], threshold: float = 0.3) -> list[torch.Tensor]:
    """M_k: the B×1×S×S mask average-pooled to each level's size and thresholded (> ``threshold``), as 0/1 floats."""
    return [(F.adaptive_avg_pool2d(mask.float(), size) > threshold).float() for size in sizes]


def focal_loss(w: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.8,
               eps: float = 1e-6) -> torch.Tensor:
    """Binary focal loss of the gate ``w`` ∈ [0, 1] against the 0/1 ``target`` (same shape), mean over patches.
    ``w`` is clamped to [eps, 1 − eps] inside the logs (the code takes log(0) unguarded)."""
    p = w.clamp(eps, 1 - eps)
    pos = -alpha * (1 - p) ** gamma * target * torch.log(p)
    neg = -(1 - alpha) * p ** gamma * (1 - target) * torch.log(1 - p)
    return (pos + neg).mean()


def _sample(rows: torch.Tensor, limit: int) -> torch.Tensor:
    if rows.shape[0] <= limit:
        return rows
    return rows[torch.randperm(rows.shape[0], device=rows.device)[:limit]]


def amplification_loss(f_t: torch.Tensor, f_a: torch.Tensor, mask: torch.Tensor, foreground: torch.Tensor | None = None,
                       margin: float = 0.3, max_normal: int = 5000, max_anomalous: int = 1000) -> torch.Tensor:
    """L_A of one level. f_t, f_a: B×C×h×w (vanilla and advanced features of the same images); mask, foreground:
    B×1×h×w 0/1 (foreground None: every patch)."""
    c = f_t.shape[1]
    t = f_t.permute(0, 2, 3, 1).reshape(-1, c)
    a = f_a.permute(0, 2, 3, 1).reshape(-1, c)
    m = mask.reshape(-1) > 0.5
    fg = torch.ones_like(m) if foreground is None else foreground.reshape(-1) > 0.5
    normal_idx = torch.nonzero(~m & fg).flatten()
    anomalous_idx = torch.nonzero(m).flatten()
    if anomalous_idx.numel() == 0 or normal_idx.numel() == 0:
        return f_a.sum() * 0.0                                         # no anomalous (or normal) patch: L_A = 0
    normal_idx = _sample(normal_idx, max_normal)
    anomalous_idx = _sample(anomalous_idx, max_anomalous)
    n = F.normalize(t[normal_idx], dim=1)                               # F_T^n
    s = n @ F.normalize(a[anomalous_idx], dim=1).T                      # S = cos(F_T^n, F_A^a)
    s_ref = n @ F.normalize(t[anomalous_idx], dim=1).T - margin         # S_ref = cos(F_T^n, F_T^a) − α
    return F.relu(s - s_ref).mean()


def hard_kd_loss(teacher: list[torch.Tensor], student: list[torch.Tensor], k: int = 10) -> torch.Tensor:
    """L_HKD = Σ_levels mean over the batch of the mean of each image's K_h largest per-pixel distances."""
    loss = teacher[0].new_zeros(())
    for t, s in zip(teacher, student):
        d = cosine_distance_map(t, s).flatten(1)                        # B × h·w, 1 − cos per pixel
        loss = loss + d.topk(min(k, d.shape[1]), dim=1).values.mean()   # top-K_h per image, then batch mean
    return loss


def residual_intensity(delta: torch.Tensor, mask: torch.Tensor, gate: torch.Tensor | None = None) -> tuple[float, float]:
    """The paper's Fig. 8 quantities for one level: (1 / (N·C)) Σ Δ² over normal patches and over mask patches
    (NaN where a set is empty). With ``gate`` (B×1×h×w), the residual actually added, w ⊙ Δ, instead of Δ."""
    r = delta.detach() if gate is None else gate.detach() * delta.detach()
    per_patch = r.pow(2).mean(1).reshape(-1)                            # (1/C) Σ_c Δ_c² per patch
    m = mask.reshape(-1) > 0.5
    normal = per_patch[~m].mean().item() if (~m).any() else float("nan")
    anomalous = per_patch[m].mean().item() if m.any() else float("nan")
    return normal, anomalous
