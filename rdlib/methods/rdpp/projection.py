"""RD++'s projection layers (Tien et al., CVPR 2023, Sec. 3; official ``utils/utils_train.py``, ``MultiProjectionLayer``): one per teacher level, between the frozen teacher and the OCBE.

    P_k = 4 × [conv3×3 → InstanceNorm → LeakyReLU],  channels C → C/2 → C/4 → C/2 → C      (official ``ProjLayer``)

They are trained to map a noisy image's features onto the clean image's projection (reconstruction), away from the
noisy raw features (contrast) and towards a compact distribution over the batch (SSOT); the student then decodes
from P(E(x)) and is compared with the *raw* teacher maps E(x).
"""
from __future__ import annotations

import torch
from torch import nn


class ProjectionLayer(nn.Sequential):
    """B×C×h×w → B×C×h×w through the widths C → C/2 → C/4 → C/2 → C (each conv3×3 + InstanceNorm + LeakyReLU)."""

    def __init__(self, channels: int):
        widths = [channels, channels // 2, channels // 4, channels // 2, channels]
        if min(widths) < 1:
            raise ValueError(f"a projection layer needs at least 4 channels (C/4 >= 1), got {channels}")
        layers = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, 1, 1), nn.InstanceNorm2d(c_out), nn.LeakyReLU()]
        super().__init__(*layers)


class MultiProjection(nn.Module):
    """One :class:`ProjectionLayer` per teacher level; ``forward(feats)`` → [P_1(f_1), P_2(f_2), P_3(f_3)]."""

    def __init__(self, channels: list[int]):
        super().__init__()
        self.layers = nn.ModuleList(ProjectionLayer(c) for c in channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) != len(self.layers):
            raise ValueError(f"{len(feats)} feature maps for {len(self.layers)} projection layers")
        return [p(f) for p, f in zip(self.layers, feats)]
