"""The segmentation sub-network (RD-RE §3.4; DeSTSeg's head with coordinate attention added).

Input: the teacher–student discrepancy at every level, −(t̂ ⊙ ŝ) with t̂, ŝ L2-normalised along channels (so the
channel sum is −cos), each level bilinearly upsampled to the shallowest level's size and concatenated
(ResNet18: 64 + 128 + 256 = 448 channels). Then two residual blocks → coordinate attention → ASPP → 3×3 conv-BN-ReLU
→ 1×1 → sigmoid: one anomaly probability per position at stride 4.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rdlib.models.blocks import make_stage


def discrepancy(teacher: list[torch.Tensor], student: list[torch.Tensor]) -> torch.Tensor:
    """[−(t̂ ⊙ ŝ)] per level, upsampled to level 1's size and concatenated: B×ΣC×h₁×w₁."""
    size = teacher[0].shape[-2:]
    parts = [F.interpolate(-(F.normalize(t, dim=1) * F.normalize(s, dim=1)), size=size, mode="bilinear",
                           align_corners=False) for t, s in zip(teacher, student)]
    return torch.cat(parts, 1)


class CoordinateAttention(nn.Module):
    """Coordinate attention (Hou et al., CVPR 2021): pool along W and along H, a shared 1×1 bottleneck, then one
    sigmoid gate per row and one per column: x · a_h · a_w."""

    def __init__(self, channels: int, reduction: int = 32):
        super().__init__()
        mid = max(8, channels // reduction)
        self.shared = nn.Sequential(nn.Conv2d(channels, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.Hardswish())
        self.to_h = nn.Conv2d(mid, channels, 1)
        self.to_w = nn.Conv2d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        along_h = x.mean(3, keepdim=True)                                  # B×C×H×1
        along_w = x.mean(2, keepdim=True).transpose(2, 3)                  # B×C×W×1
        y = self.shared(torch.cat([along_h, along_w], 2))
        y_h, y_w = y.split([h, w], 2)
        return x * torch.sigmoid(self.to_h(y_h)) * torch.sigmoid(self.to_w(y_w.transpose(2, 3)))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1×1, three 3×3 at dilations 6/12/18 and a global-pool branch, concatenated and
    fused by a 3×3 conv. Not DeSTSeg's (see ``rdlib.methods.rdre.ASSUMPTIONS``, "ASPP layout")."""

    def __init__(self, channels: int, rates: tuple[int, ...] = (6, 12, 18)):
        super().__init__()

        def branch(k: int, d: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(channels, channels, k, padding=0 if k == 1 else d, dilation=d, bias=False),
                                 nn.BatchNorm2d(channels), nn.ReLU(inplace=True))

        self.branches = nn.ModuleList([branch(1, 1), *(branch(3, r) for r in rates)])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels, 1, bias=False), nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(nn.Conv2d(channels * (len(rates) + 2), channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [b(x) for b in self.branches]
        parts.append(self.pool(x).expand_as(parts[0]))
        return self.fuse(torch.cat(parts, 1))


class SegmentationHead(nn.Module):
    """discrepancy B×C_in×h×w → logits B×1×h×w (apply a sigmoid for probabilities). ``ca`` / ``aspp``: switch the
    coordinate attention and the ASPP off (rdlib's ablations; RD-RE Table 5 switches only the whole Seg sub-network)."""

    def __init__(self, in_channels: int, width: int = 256, ca: bool = True, aspp: bool = True):
        super().__init__()
        self.blocks = make_stage("basic", in_channels, width, 2)
        self.ca = CoordinateAttention(width) if ca else nn.Identity()
        self.aspp = ASPP(width) if aspp else nn.Identity()
        self.head = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True), nn.Conv2d(width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.aspp(self.ca(self.blocks(x))))
