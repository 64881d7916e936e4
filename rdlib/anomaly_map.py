"""Cosine anomaly maps, shared by every method (RD §3.4, Eq. 1 and 3).

    M^k(h, w) = 1 − f_E^k(h,w)ᵀ f_D^k(h,w) / max(‖f_E^k(h,w)‖ ‖f_D^k(h,w)‖, ε)        (Eq. 1; ε = 1e-8)
    S_AL = Σ_k Ψ(M^k)         Ψ = bilinear upsampling to the image size, align_corners=True   (Eq. 3)
    map = G_σ ∗ S_AL          Gaussian σ = 4, 33×33 kernel, scipy "reflect" border
    score = max_{h,w} map

Zero-vector rule: if either vector is zero, cos = 0 and M = 1 (the denominator is clamped at ε).

Everything runs on the features' device for the whole batch. Two parts:

* the per-level distance, the only step that reads the large feature tensors, runs in a Triton kernel on CUDA
  GPUs that support it (:mod:`rdlib.kernels`) and in PyTorch elsewhere;
* upsampling, sum and blur are linear, so they are folded into one operator per level,
  ``G_σ ∗ Σ_k Ψ(M^k) = Σ_k P_k M^k Q_kᵀ`` with ``P_k = G_H A_k`` (H×h_k: Gaussian-with-reflect matrix times the
  bilinear matrix), applied as two small matrix products per level. This equals interpolate → sum → scipy blur
  (tested) at a fraction of the cost.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from rdlib.numerics import EPS  # shared with the Triton kernel, defined below both


def cosine_distance_map(t: torch.Tensor, s: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Reference 1 − cos along channels. t, s: B×C×H×W → B×1×H×W (float32 accumulation)."""
    if t.shape != s.shape:
        raise ValueError(f"teacher and student maps differ in shape: {tuple(t.shape)} vs {tuple(s.shape)}")
    if t.device.type == "cpu" and t.shape[0] > 1:      # one image at a time keeps the CPU working set in cache
        return torch.cat([cosine_distance_map(t[i:i + 1], s[i:i + 1], eps) for i in range(t.shape[0])])
    t32, s32 = t.float(), s.float()
    # vecdot reduces without materialising the products (about 3× faster than (t*s).sum(1) or .norm(dim=1) on CPU)
    dot = torch.linalg.vecdot(t32, s32, dim=1).unsqueeze(1)          # f_E(h,w)ᵀ f_D(h,w)
    tt = torch.linalg.vecdot(t32, t32, dim=1).unsqueeze(1)           # ‖f_E(h,w)‖²
    ss = torch.linalg.vecdot(s32, s32, dim=1).unsqueeze(1)           # ‖f_D(h,w)‖²
    return 1 - dot / (tt.sqrt() * ss.sqrt()).clamp_min(eps)          # M(h,w) = 1 − cos          (RD Eq. 1)


def fused_map_reference(teacher: list[torch.Tensor], student: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
    """Naive PyTorch reference of Σ_k Ψ(M^k) (1 − cos, interpolate, sum): B×1×H×W float32."""
    total = None
    for t, s in zip(teacher, student):
        m = F.interpolate(cosine_distance_map(t, s), size=out_size, mode="bilinear", align_corners=True)
        total = m if total is None else total + m
    return total


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, device=None) -> torch.Tensor:
    """The 1-D kernel of ``scipy.ndimage.gaussian_filter`` (float64): radius int(truncate·σ + 0.5), normalised."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


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


def bilinear_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """A (n_out×n_in) with A @ x = 1-D bilinear resize of x, align_corners=True (float64)."""
    a = torch.zeros(n_out, n_in, dtype=torch.float64)
    if n_in == 1 or n_out == 1:
        a[:, 0] = 1.0
        return a
    src = torch.arange(n_out, dtype=torch.float64) * (n_in - 1) / (n_out - 1)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    f = src - i0
    rows = torch.arange(n_out)
    a.index_put_((rows, i0), 1 - f, accumulate=True)
    a.index_put_((rows, i1), f, accumulate=True)
    return a


def blur_matrix(n: int, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """G (n×n) with G @ x = scipy.ndimage.gaussian_filter1d(x, σ, mode='reflect') (float64); identity for σ=0."""
    if sigma <= 0:
        return torch.eye(n, dtype=torch.float64)
    k = gaussian_kernel1d(sigma, truncate)
    radius = (k.numel() - 1) // 2
    g = torch.zeros(n, n, dtype=torch.float64)
    cols = _reflect_index(n, radius, "cpu")                      # padded position p reads column cols[p]
    for t in range(2 * radius + 1):                              # output i reads padded position i + t
        g.index_put_((torch.arange(n), cols[t:t + n]), k[t].expand(n), accumulate=True)
    return g


_OPERATORS: dict = {}


def map_operator(n_in: int, n_out: int, sigma: float, device: torch.device) -> torch.Tensor:
    """P = G_σ A (n_out×n_in, float32 on ``device``), cached."""
    key = (n_in, n_out, float(sigma), str(device))
    if key not in _OPERATORS:
        _OPERATORS[key] = (blur_matrix(n_out, sigma) @ bilinear_matrix(n_in, n_out)).float().to(device)
    return _OPERATORS[key]


def upsample_sum_blur(maps: list[torch.Tensor], out_size: tuple[int, int], sigma: float = 4.0) -> torch.Tensor:
    """G_σ ∗ Σ_k Ψ(M_k) for B×1×h_k×w_k maps → B×1×H×W, as Σ_k P_k M_k Q_kᵀ.

    The sum over levels is one product: [P_1 M_1 | … | P_K M_K] · [Q_1 | … | Q_K]ᵀ, so the H×W output is written once.
    """
    left = torch.cat([torch.matmul(map_operator(m.shape[-2], out_size[0], sigma, m.device), m.float()) for m in maps], -1)
    right = torch.cat([map_operator(m.shape[-1], out_size[1], sigma, m.device) for m in maps], 1)
    return torch.matmul(left, right.T)


def resolve_backend(backend: str | None, example: torch.Tensor, needs_grad: bool = False) -> str:
    """'triton' or 'torch'. ``backend``/``$RDLIB_ANOMALY_MAP_BACKEND`` in {auto, triton, torch} (auto by default).

    The kernel has no backward: with ``needs_grad`` 'auto' gives 'torch' and a forced 'triton' is an error.
    """
    backend = (backend or os.environ.get("RDLIB_ANOMALY_MAP_BACKEND", "auto")).lower()
    if backend not in ("auto", "triton", "torch"):
        raise ValueError(f"anomaly-map backend {backend!r}; choose auto, triton or torch")
    if backend == "torch":
        return "torch"
    if needs_grad:
        if backend == "triton":
            raise RuntimeError("anomaly-map backend 'triton' is inference only (no backward), but these features "
                               "require grad: use backend='torch' or 'auto', or wrap the call in torch.no_grad()")
        return "torch"
    from rdlib.kernels import triton_supported

    ok, why = triton_supported(example, allow_interpreter=backend == "triton")
    if backend == "triton" and not ok:
        raise RuntimeError(f"anomaly-map backend 'triton' was forced but cannot run: {why}")
    return "triton" if ok else "torch"


def cosine_distance_maps(teacher: list[torch.Tensor], student: list[torch.Tensor], backend: str | None = None) -> list[torch.Tensor]:
    """[1 − cos(f_T^k, f_S^k)] per level as B×1×h_k×w_k float32, through the Triton kernel where supported
    (and where autograd does not need the map's gradient: the kernel has no backward)."""
    needs_grad = torch.is_grad_enabled() and any(x.requires_grad for x in (*teacher, *student))
    if resolve_backend(backend, teacher[0], needs_grad) == "triton":
        from rdlib.kernels import cosine_distance_triton

        return [cosine_distance_triton(t, s) for t, s in zip(teacher, student)]
    return [cosine_distance_map(t, s) for t, s in zip(teacher, student)]


SCORES = ("max", "topk")


class AnomalyMap(nn.Module):
    """Anomaly map + image score for a batch: (teacher maps, student maps) → (B×1×H×W map, B scores).

    Args:
        out_size: map size (the input image size).
        levels: which levels feed the map (RD Table 7), indices into the feature lists; default all.
        sigma: Gaussian σ (4 in every RD-family paper; 0 disables smoothing, as DeSTSeg/RD-RE score their maps).
        score: "max" (RD family: the maximum of the map) or "topk" (DeSTSeg/RD-RE: mean of the ``top_k`` largest).
        top_k: pixels averaged by the "topk" score (DeSTSeg: 100).
        backend: 'auto' | 'triton' | 'torch' (see :func:`resolve_backend`).

    ``forward(teacher, student)`` builds the map from cosine distances; :meth:`from_map` scores a map that a
    segmentation head produced (B×1×h×w, upsampled to ``out_size`` by the same linear operator).
    """

    def __init__(self, out_size: int | tuple[int, int] = 256, levels: tuple[int, ...] | None = None, sigma: float = 4.0,
                 score: str = "max", top_k: int = 100, backend: str | None = None):
        super().__init__()
        self.out_size = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
        self.backend = backend
        self.levels, self.sigma, self.score, self.top_k = None, sigma, score, top_k
        self.configure(levels=levels, sigma=sigma, score=score, top_k=top_k)

    def configure(self, **options) -> dict:
        """Change scoring options (levels, sigma, score, top_k); returns the previous values (to restore them)."""
        allowed = ("levels", "sigma", "score", "top_k")
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(f"unknown anomaly-map option(s) {unknown}; choose from {allowed}")
        if options.get("score", self.score) not in SCORES:
            raise ValueError(f"score={options['score']!r}; choose from {SCORES}")
        if int(options.get("top_k", self.top_k)) < 1:
            raise ValueError(f"top_k must be >= 1, got {options['top_k']}")
        if float(options.get("sigma", self.sigma)) < 0:
            raise ValueError(f"sigma must be >= 0, got {options['sigma']}")
        old = {k: getattr(self, k) for k in options}
        for k, v in options.items():
            setattr(self, k, (None if v is None else tuple(v)) if k == "levels" else v)
        return old

    def image_score(self, amap: torch.Tensor) -> torch.Tensor:
        """B×1×H×W → B: max (RD family) or mean of the top-k pixels (DeSTSeg, RD-RE)."""
        flat = amap.flatten(1)
        if self.score == "max":
            return flat.amax(1)
        return flat.topk(min(self.top_k, flat.shape[1]), dim=1).values.mean(1)

    def from_map(self, low_res: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score a map that is not a cosine distance (e.g. a segmentation head's B×1×h×w output)."""
        amap = upsample_sum_blur([low_res], self.out_size, self.sigma)
        return amap, self.image_score(amap)

    def forward(self, teacher: list[torch.Tensor], student: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.levels is not None:                                  # RD Table 7: a subset of the levels
            teacher = [teacher[i] for i in self.levels]
            student = [student[i] for i in self.levels]
        maps = cosine_distance_maps(teacher, student, self.backend)    # M^k, one per level     (Eq. 1)
        amap = upsample_sum_blur(maps, self.out_size, self.sigma)      # G_σ ∗ Σ_k Ψ(M^k)       (Eq. 3)
        return amap, self.image_score(amap)                            # score = max (or top-k mean)


__all__ = ["EPS", "cosine_distance_map", "cosine_distance_maps", "fused_map_reference", "gaussian_blur",
           "gaussian_kernel1d", "bilinear_matrix", "blur_matrix", "upsample_sum_blur", "AnomalyMap", "resolve_backend"]
