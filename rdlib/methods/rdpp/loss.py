"""RD++'s projection loss (Tien et al., CVPR 2023, Sec. 3; official ``Revisit_RDLoss``), each term on lists of maps, one per level:

    L_SSOT   = Σ_k S_ε( softmax(vec P_k(x)), softmax(vec P_k(x)[π]) )     Sinkhorn divergence over the batch,
                                                                          π a random shuffle of the batch
    L_recon  = Σ_k mean_{b,h,w} [1 − cos_c(P_k(x̃), P_k(x))]              x̃: the noisy image
    L_con    = Σ_k mean_b max(0, cos(vec E_k(x̃), vec P_k(x)) − m)         CosineEmbeddingLoss, target −1, m = 0.5
    L_proj   = (L_SSOT + 0.01·L_recon + 0.1·L_con) / 1.11
    L        = L_distill + 0.2·L_proj                                     (L_distill: RD's flattened cosine)

The Sinkhorn divergence comes from geomloss (p = 2, blur 0.05, scaling 0.95, the official settings); it is not
written by hand here.

**What the code's SSOT computes.** Its two arguments are the same B points (the batch's projections) in another
order, i.e. the same empirical measure with uniform weights, and a debiased Sinkhorn divergence of a measure with
itself is 0, with a zero gradient (its minimum). The term is therefore 0 up to rounding (~1e-10 in float32, with
gradients of the same size) for every batch, whatever the features: it costs time (~0.3 s a step on a CPU, from
geomloss' ~750 ε-annealing iterations at ``diameter = 1e7``) and changes no weight. rdlib keeps it by default, as
the code does; ``RDPPMethod(ssot=False)`` skips it. The tests check both facts: the geomloss call against a slow
Sinkhorn on two *different* clouds, and the zero on a batch and its shuffle.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=8)
def _sinkhorn(blur: float, scaling: float):
    try:
        from geomloss import SamplesLoss
    except ImportError as e:                                            # pragma: no cover - a core dependency
        raise ImportError("RD++'s SSOT loss needs geomloss: pip install geomloss") from e
    # the official call: debiased Sinkhorn divergence, cost |x − y|²/2, ε annealed from diameter² down to blur²
    return SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, diameter=1e7, truncate=10, debias=True,
                       backend="tensorized")


def sinkhorn_divergence(a: torch.Tensor, b: torch.Tensor, blur: float = 0.05, scaling: float = 0.95) -> torch.Tensor:
    """S_ε(α, β) = OT_ε(α, β) − ½OT_ε(α, α) − ½OT_ε(β, β) between the point clouds a (N×D) and b (M×D), uniform
    weights, cost |x − y|²/2, ε = blur² (geomloss ``SamplesLoss("sinkhorn", p=2)`` with the official settings)."""
    return _sinkhorn(float(blur), float(scaling))(a, b)


def ssot_loss(projected: list[torch.Tensor], blur: float = 0.05, scaling: float = 0.95,
              shuffle: torch.Tensor | None = None) -> torch.Tensor:
    """L_SSOT over levels: the batch's softmax-flattened projections (B points in C·h·w dimensions) against the same
    points in shuffled order ``shuffle`` (default a fresh ``torch.randperm``). 0 up to rounding (module docstring)."""
    b = projected[0].shape[0]
    perm = torch.randperm(b) if shuffle is None else shuffle
    total = projected[0].new_zeros(())
    for p in projected:
        a = torch.softmax(p.flatten(1), -1)                            # softmax(vec P_k(x))
        total = total + sinkhorn_divergence(a, a[perm.to(a.device)], blur, scaling)   # S_ε(a, a[π])
    return total


def reconstruction_loss(projected_noisy: list[torch.Tensor], projected: list[torch.Tensor]) -> torch.Tensor:
    """L_recon = Σ_k mean [1 − cos along channels] between P_k(x̃) and P_k(x)."""
    return sum((1 - F.cosine_similarity(n, c, dim=1)).mean() for n, c in zip(projected_noisy, projected))


def contrast_loss(noisy: list[torch.Tensor], projected: list[torch.Tensor], margin: float = 0.5) -> torch.Tensor:
    """L_con = Σ_k mean_b max(0, cos(vec E_k(x̃), vec P_k(x)) − margin): pushes the clean projection away from the
    raw features of the noisy image (CosineEmbeddingLoss with target −1)."""
    return sum(F.relu(F.cosine_similarity(n.flatten(1), p.flatten(1), dim=1) - margin).mean()
               for n, p in zip(noisy, projected))


def projection_loss(noisy: list[torch.Tensor], projected_noisy: list[torch.Tensor], projected: list[torch.Tensor],
                    recon_weight: float = 0.01, contrast_weight: float = 0.1, contrast_margin: float = 0.5,
                    blur: float = 0.05, scaling: float = 0.95, shuffle: torch.Tensor | None = None,
                    ssot: bool = True) -> dict:
    """{"proj": L_proj, "ssot", "recon", "contrast"}: L_proj = (L_SSOT + w_r·L_recon + w_c·L_con) / (1 + w_r + w_c)
    (the code's division by 1.11 for the default weights). ``ssot=False``: L_SSOT taken as its value, 0."""
    ssot = ssot_loss(projected, blur, scaling, shuffle) if ssot else projected[0].new_zeros(())
    recon = reconstruction_loss(projected_noisy, projected)
    con = contrast_loss(noisy, projected, contrast_margin)
    proj = (ssot + recon_weight * recon + contrast_weight * con) / (1 + recon_weight + contrast_weight)
    return {"proj": proj, "ssot": ssot, "recon": recon, "contrast": con}
