"""Cosine anomaly maps, shared by every method (RD §3.4, Eq. 1 and 3).

    M^k(h, w) = 1 − f_E^k(h,w)ᵀ f_D^k(h,w) / max(‖f_E^k(h,w)‖ ‖f_D^k(h,w)‖, ε)        (Eq. 1; ε = 1e-8)
    S_AL = Σ_k Ψ(M^k)         Ψ = bilinear upsampling to the image size, align_corners=True   (Eq. 3)
    map = G_σ ∗ S_AL          Gaussian σ = 4, 33×33 kernel, scipy "reflect" border
    score = max_{h,w} map

Zero-vector rule: if either vector is zero, cos = 0 and M = 1 (the denominator is clamped at ε).
Everything runs on the features' device for the whole batch. The per-level distance and the upsample+sum go
through :mod:`rdlib.kernels` (a fused Triton kernel on CUDA) when available, else through the PyTorch reference.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-8


def cosine_distance_map(t: torch.Tensor, s: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Reference 1 − cos along channels. t, s: B×C×H×W → B×1×H×W (float32 accumulation)."""
    if t.shape != s.shape:
        raise ValueError(f"teacher and student maps differ in shape: {tuple(t.shape)} vs {tuple(s.shape)}")
    t32, s32 = t.float(), s.float()
    dot = (t32 * s32).sum(1, keepdim=True)
    norm = t32.norm(dim=1, keepdim=True) * s32.norm(dim=1, keepdim=True)
    return 1 - dot / norm.clamp_min(eps)


def fused_map_reference(teacher: list[torch.Tensor], student: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
    """PyTorch reference of Σ_k Ψ(M^k): B×1×H×W float32."""
    total = None
    for t, s in zip(teacher, student):
        m = F.interpolate(cosine_distance_map(t, s), size=out_size, mode="bilinear", align_corners=True)
        total = m if total is None else total + m
    return total


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, device=None) -> torch.Tensor:
    """The 1-D kernel of ``scipy.ndimage.gaussian_filter``: radius int(truncate·σ + 0.5), normalised."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return (w / w.sum()).float()


def _reflect_index(n: int, radius: int, device) -> torch.Tensor:
    """Indices of scipy's "reflect" (half-sample symmetric, d c b a | a b c d | d c b a) padding, any radius."""
    idx = torch.arange(-radius, n + radius, device=device)
    period = 2 * n
    idx = torch.remainder(idx, period)
    return torch.where(idx >= n, period - 1 - idx, idx)


def gaussian_blur(x: torch.Tensor, sigma: float = 4.0, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur of B×1×H×W maps, equal to scipy.ndimage.gaussian_filter(σ, mode='reflect')."""
    if sigma <= 0:
        return x
    k = gaussian_kernel1d(sigma, truncate, x.device).to(x.dtype)
    r = (k.numel() - 1) // 2
    b, c, h, w = x.shape
    y = x.reshape(b * c, 1, h, w)
    y = y.index_select(2, _reflect_index(h, r, x.device))
    y = F.conv2d(y, k.view(1, 1, -1, 1))
    y = y.index_select(3, _reflect_index(w, r, x.device))
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    return y.reshape(b, c, h, w)


def resolve_backend(backend: str | None, example: torch.Tensor) -> str:
    """'triton' or 'torch'. ``backend``/``$RDLIB_ANOMALY_MAP_BACKEND`` in {auto, triton, torch} (auto by default)."""
    backend = (backend or os.environ.get("RDLIB_ANOMALY_MAP_BACKEND", "auto")).lower()
    if backend not in ("auto", "triton", "torch"):
        raise ValueError(f"anomaly-map backend {backend!r}; choose auto, triton or torch")
    if backend == "torch":
        return "torch"
    from rdlib.kernels import triton_supported

    ok, why = triton_supported(example, allow_interpreter=backend == "triton")
    if backend == "triton" and not ok:
        raise RuntimeError(f"anomaly-map backend 'triton' was forced but cannot run: {why}")
    return "triton" if ok else "torch"


def fused_cosine_map(teacher: list[torch.Tensor], student: list[torch.Tensor], out_size: tuple[int, int],
                     backend: str | None = None) -> torch.Tensor:
    """Σ_k Ψ(1 − cos(f_E^k, f_D^k)) as B×1×H×W float32, through the Triton kernel where supported."""
    if resolve_backend(backend, teacher[0]) == "triton":
        from rdlib.kernels import fused_cosine_map_triton

        return fused_cosine_map_triton(teacher, student, out_size)
    return fused_map_reference(teacher, student, out_size)


class AnomalyMap(nn.Module):
    """Anomaly map + image score for a batch: (teacher maps, student maps) → (B×1×H×W map, B scores).

    Args:
        out_size: map size (the input image size).
        levels: which levels feed the map (RD Table 7), indices into the feature lists; default all.
        sigma: Gaussian σ (4 in every RD-family paper; 0 disables smoothing).
        backend: 'auto' | 'triton' | 'torch' (see :func:`resolve_backend`).
    """

    def __init__(self, out_size: int | tuple[int, int] = 256, levels: tuple[int, ...] | None = None, sigma: float = 4.0,
                 backend: str | None = None):
        super().__init__()
        self.out_size = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
        self.levels = None if levels is None else tuple(levels)
        self.sigma = sigma
        self.backend = backend

    def forward(self, teacher: list[torch.Tensor], student: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.levels is not None:
            teacher = [teacher[i] for i in self.levels]
            student = [student[i] for i in self.levels]
        amap = gaussian_blur(fused_cosine_map(teacher, student, self.out_size, self.backend), self.sigma)
        return amap, amap.flatten(1).amax(1)


def gaussian_radius(sigma: float, truncate: float = 4.0) -> int:
    return int(truncate * sigma + 0.5) if sigma > 0 else 0


__all__ = ["EPS", "cosine_distance_map", "fused_map_reference", "gaussian_blur", "gaussian_kernel1d", "AnomalyMap",
           "fused_cosine_map", "resolve_backend", "gaussian_radius"]
