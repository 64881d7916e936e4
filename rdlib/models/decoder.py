"""Student decoder: a ResNet run backwards (RD's ``de_resnet``).

Three upsampling stages (each starts with a ConvTranspose k2 s2 block) map φ back to the teacher's scales; the
outputs are returned shallow-first to pair with the teacher's [layer1, layer2, layer3]. WideResNet50-2: stages of
3, 4, 6 Bottlenecks (deep → shallow; not a true mirror of the teacher's 3, 4, 6, as in the official code).
"""
from __future__ import annotations

import torch
from torch import nn

from rdlib.models.blocks import BLOCKS, init_weights, make_stage


class Decoder(nn.Module):
    """Input φ: C_in×h×w; output [c1×8h, c2×4h, c3×2h] (shallow first)."""

    def __init__(self, in_channels: int, out_channels: list[int], block: str = "bottleneck",
                 blocks: tuple[int, int, int] = (3, 4, 6), base_width: int = 64):
        super().__init__()
        exp = BLOCKS[block].expansion
        c1, c2, c3 = out_channels
        for c in out_channels:
            if c % exp:
                raise ValueError(f"decoder: teacher channels {out_channels} must be divisible by the {block} expansion {exp}")
        self.stage_a = make_stage(block, in_channels, c3 // exp, blocks[0], 2, base_width, upsample=True)
        self.stage_b = make_stage(block, c3, c2 // exp, blocks[1], 2, base_width, upsample=True)
        self.stage_c = make_stage(block, c2, c1 // exp, blocks[2], 2, base_width, upsample=True)
        init_weights(self)

    def forward(self, phi: torch.Tensor) -> list[torch.Tensor]:
        a = self.stage_a(phi)
        b = self.stage_b(a)
        c = self.stage_c(b)
        return [c, b, a]
