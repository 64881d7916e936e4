"""A training-free nearest-neighbour reference (PatchCore-style): the teacher's mid-level patches of the normal
training images form a memory bank; a test patch's anomaly is its distance to the nearest bank patch. The bank can
be thinned to a greedy k-center coreset (PatchCore's subsampling; ``coreset=1.0`` keeps every patch).

    f(x) = concat[ avg3×3(E²(x)), up(avg3×3(E³(x))) ]        (PatchCore's locally aware patch features, levels 2+3)
    s(h, w) = min_m ‖f(x)(h, w) − m‖₂                        over the memory bank M of normal patches
    score = max_{h,w} s(h, w);   map = G_σ ∗ up(s)

It calibrates how hard a category is for the teacher's features, independent of any distillation.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rdlib.anomaly_map import AnomalyMap
from rdlib.models.encoders import create_teacher


def greedy_coreset(x: torch.Tensor, k: int, projection_dim: int = 128, seed: int = 0) -> torch.Tensor:
    """Indices of ``k`` rows of ``x`` (N×D) chosen by greedy k-center selection (PatchCore): start from a random row,
    then repeatedly add the row farthest from everything chosen so far. Distances are taken in a random projection
    to ``projection_dim`` dimensions (Johnson–Lindenstrauss), as PatchCore does, to make the N·k work cheap."""
    n = x.shape[0]
    if k >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    z = x.float()
    if z.shape[1] > projection_dim:
        z = z @ (torch.randn(z.shape[1], projection_dim, generator=g) / math.sqrt(projection_dim)).to(z.device)
    # squared distances to the newest centre as one matrix-vector product (‖z‖² − 2 z·c + ‖c‖²), written into
    # preallocated buffers: a fresh N×D difference per step made the loop 4× slower (most of it page faults)
    sq = (z * z).sum(1)
    chosen = torch.empty(k, dtype=torch.long)
    chosen[0] = int(torch.randint(n, (1,), generator=g))
    min_dist = (sq - 2 * (z @ z[chosen[0]]) + sq[chosen[0]]).clamp_min_(0)
    d = torch.empty_like(min_dist)
    for i in range(1, k):
        c = int(torch.argmax(min_dist))
        chosen[i] = c
        torch.mv(z, z[c], out=d)
        d.mul_(-2).add_(sq).add_(sq[c])
        torch.minimum(min_dist, d, out=min_dist)
    return chosen


class PatchKNN(nn.Module):
    """Args: teacher, weights, levels (indices into the teacher's maps, default the two deeper ones), image_size,
    sigma (map smoothing), chunk (test patches per distance block)."""

    def __init__(self, teacher: str = "efficientnet_lite0", weights: str = "imagenet", levels: tuple[int, ...] = (1, 2),
                 image_size: int = 256, sigma: float = 4.0, chunk: int = 4096):
        super().__init__()
        self.teacher = create_teacher(teacher, weights)
        self.levels, self.chunk = tuple(levels), chunk
        self.register_buffer("memory", torch.zeros(0, sum(self.teacher.channels[i] for i in self.levels)))
        self.anomaly_map = AnomalyMap(image_size, sigma=sigma)

    @torch.no_grad()
    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """B×3×S×S → B×D×h×w patch features at the resolution of the shallowest used level."""
        feats = self.teacher(x)
        used = [F.avg_pool2d(feats[i], 3, 1, 1) for i in self.levels]          # local neighbourhood (3×3)
        size = used[0].shape[-2:]
        return torch.cat([f if f.shape[-2:] == size else F.interpolate(f, size, mode="bilinear", align_corners=False)
                          for f in used], 1)

    @torch.no_grad()
    def nearest_distance(self, p: torch.Tensor) -> torch.Tensor:
        """B×D×h×w → B×1×h×w distance of each patch to its nearest memory patch."""
        if self.memory.shape[0] == 0:
            raise RuntimeError("the memory bank is empty: train (memorise the normal images) first")
        b, d, h, w = p.shape
        q = p.permute(0, 2, 3, 1).reshape(-1, d)
        # cdist's matrix-product form finds the neighbour fast but loses digits (|a|² + |b|² − 2ab in float32);
        # the distance to the neighbour it found is then recomputed exactly.
        nearest = torch.cat([torch.cdist(q[i:i + self.chunk], self.memory).argmin(1)
                             for i in range(0, q.shape[0], self.chunk)])
        return torch.linalg.vector_norm(q - self.memory[nearest], dim=1).view(b, 1, h, w)

    def forward(self, x: torch.Tensor):
        """Training: the patches to memorise (B·h·w × D). Evaluation: (map B×1×S×S, score B = max patch distance)."""
        p = self.patches(x)
        if self.training:
            return p.permute(0, 2, 3, 1).reshape(-1, p.shape[1])
        s = self.nearest_distance(p)
        amap, _ = self.anomaly_map.from_map(s)
        return amap, s.flatten(1).amax(1)
