"""One-class bottleneck embedding (OCBE) = multi-scale feature fusion (MFF) + one-class embedding (OCE).

RD paper §3.2 / official ``BN_layer``. For WideResNet50-2 at 256²::

    f1 256×64×64 ─conv3×3 s2→512─conv3×3 s2→1024─┐
    f2 512×32×32 ─conv3×3 s2→1024────────────────┼─ concat 3072×16×16 ─ OCE (3 Bottlenecks, s2) ─ φ 2048×8×8
    f3 1024×16×16 ────────────────────────────────┘

The paper's 1×1 conv after the concat (code: ``conv4/bn4``) is defined but never used by the official code; it is
left out here (no effect on outputs). Variants for RD Table 5: ``"pre"`` (the teacher's own pretrained next stage on
f3), ``"oce"`` (fresh OCE on f3, no MFF), ``"oce+mff"`` (full, default).
"""
from __future__ import annotations

import torch
from torch import nn

from rdlib.models.blocks import BLOCKS, conv3x3, init_weights, make_stage

VARIANTS = ("oce+mff", "oce", "pre")


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv3x3(cin, cout, 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class OCBE(nn.Module):
    """Input: teacher maps [f1, f2, f3] (channels c1, c2, c3); output φ: (2·c3)×(H/32)×(W/32) for "oce+mff"/"oce"."""

    def __init__(self, channels: list[int], block: str = "bottleneck", blocks: int = 3, base_width: int = 64,
                 variant: str = "oce+mff", pretrained_stage: nn.Module | None = None, pretrained_channels: int | None = None):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"bottleneck variant {variant!r}; choose from {VARIANTS}")
        c1, c2, c3 = channels
        self.variant = variant
        if variant == "pre":
            if pretrained_stage is None or pretrained_channels is None:
                raise ValueError("the 'pre' bottleneck needs the teacher's pretrained next stage (teacher_next_stage)")
            self.oce = pretrained_stage
            self.out_channels = pretrained_channels
            return
        if variant == "oce+mff":
            self.mff1 = nn.Sequential(_conv_bn_relu(c1, c2), _conv_bn_relu(c2, c3))   # f1: ÷4 in two stride-2 steps
            self.mff2 = _conv_bn_relu(c2, c3)                                        # f2: ÷2
        embed = 2 * c3
        expansion = BLOCKS[block].expansion
        inplanes = 3 * c3 if variant == "oce+mff" else c3
        self.oce = make_stage(block, inplanes, embed // expansion, blocks, stride=2, base_width=base_width)
        self.out_channels = embed
        init_weights(self)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        if self.variant == "oce+mff":
            fused = torch.cat([self.mff1(feats[0]), self.mff2(feats[1]), feats[2]], dim=1)  # MFF: concat at f3's scale
            return self.oce(fused)
        return self.oce(feats[2])
