"""Guided Information Injection (URD, Fig. 4b): before each of the two shallower decoder stages, the teacher's features
of two neighbouring levels are fused and injected into the student's features.

Before decoder stage B (C = channels of teacher level 3, h×w = its size), with F_S the student's stage-A output:

    Sim    = cos(F_S, F_T³)  per pixel, no gradient                                   B×1×h×w, in [−1, 1]
    F_fuse = CBR₃( F_T³ + CBR₁(↓2 F_T²) )                                             B×C×h×w
    F_SA   = CBR₃( Sim · F_fuse + (1 − Sim) · F_S )           (mode "sa", the paper)
    out    = CBR₃( [F_S, F_SA] )  with F_SA := F_fuse in mode "sc" (what the released train.py runs)

(CBR_k: k×k convolution without bias, BatchNorm, ReLU.) Before stage C the same with levels 2 and 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rdlib.numerics import EPS

GII_MODES = ("sa", "sc", "none")


def cbr(cin: int, cout: int, k: int) -> nn.Sequential:
    """k×k convolution (no bias) → BatchNorm → ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class GII(nn.Module):
    """One injection. Inputs: F_S B×C×h×w (the previous decoder stage's output), F_T^deep B×C×h×w and F_T^shallow
    B×C'×2h×2w (the teacher's maps at this and the next shallower level). Output: B×C×h×w, the next stage's input.

    Args:
        channels: C. shallow_channels: C'. mode: "sa" (similarity attention) or "sc" (plain concatenation).
    """

    def __init__(self, channels: int, shallow_channels: int, mode: str = "sa"):
        super().__init__()
        if mode not in ("sa", "sc"):
            raise ValueError(f"GII mode={mode!r}; choose 'sa' (similarity attention, paper) or 'sc' (skip concatenation)")
        self.mode = mode
        self.reduce = cbr(shallow_channels, channels, 1)          # CBR₁ after the ×0.5 bilinear resize
        self.fuse = cbr(channels, channels, 3)                    # CBR₃(F_T^deep + ·)
        self.attend = cbr(channels, channels, 3) if mode == "sa" else None
        self.merge = cbr(2 * channels, channels, 3)               # CBR₃([F_S, F_SA])

    @staticmethod
    @torch.no_grad()
    def similarity(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Sim = cos(F_S, F_T) along channels, B×1×h×w, outside autograd (URD: no gradient through the weights)."""
        return F.cosine_similarity(student.detach().float(), teacher.detach().float(), dim=1, eps=EPS).unsqueeze(1).to(student.dtype)

    def fused(self, deep: torch.Tensor, shallow: torch.Tensor) -> torch.Tensor:
        """F_fuse = CBR₃(F_T^deep + CBR₁(↓2 F_T^shallow))."""
        down = F.interpolate(shallow, size=deep.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(deep + self.reduce(down))

    def forward(self, student: torch.Tensor, deep: torch.Tensor, shallow: torch.Tensor,
                sim: torch.Tensor | None = None) -> torch.Tensor:
        fuse = self.fused(deep, shallow)
        if self.mode == "sc":
            injected = fuse                                                     # GII + SC: F_SA := F_fuse
        else:
            sim = self.similarity(student, deep) if sim is None else sim
            injected = self.attend(sim * fuse + (1 - sim) * student)           # F_SA = CBR₃(Sim·F_fuse + (1−Sim)·F_S)
        return self.merge(torch.cat([student, injected], 1))                    # CBR₃([F_S, F_SA])


class GIIDecoder(nn.Module):
    """RD's decoder with a GII before stages B and C (``mode="none"``: the plain decoder, URD Table 7's first row).

    ``forward(φ, teacher_maps)`` → [f_S^1, f_S^2, f_S^3] shallow-first, shaped like the teacher's maps.
    """

    def __init__(self, decoder: nn.Module, teacher_channels: list[int], mode: str = "sc"):
        super().__init__()
        if mode not in GII_MODES:
            raise ValueError(f"gii={mode!r}; choose from {list(GII_MODES)}")
        self.mode = mode
        self.stage_a, self.stage_b, self.stage_c = decoder.stage_a, decoder.stage_b, decoder.stage_c
        c1, c2, c3 = teacher_channels
        self.gii_b = GII(c3, c2, mode) if mode != "none" else None   # before stage B: F_S = stage-A output, F_T³, F_T²
        self.gii_c = GII(c2, c1, mode) if mode != "none" else None   # before stage C: F_S = stage-B output, F_T², F_T¹

    def forward(self, phi: torch.Tensor, teacher: list[torch.Tensor]) -> list[torch.Tensor]:
        f1, f2, f3 = teacher
        a = self.stage_a(phi)
        b = self.stage_b(a if self.gii_b is None else self.gii_b(a, f3, f2))
        c = self.stage_c(b if self.gii_c is None else self.gii_c(b, f2, f1))
        return [c, b, a]
