"""RD (Deng & Li, CVPR 2022): frozen teacher encoder E → one-class bottleneck (OCBE) → student decoder D.

Shapes for WideResNet50-2 at 256²: E → [256×64², 512×32², 1024×16²] → OCBE → 2048×8² → D → [256×64², 512×32², 1024×16²].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rdlib.anomaly_map import AnomalyMap
from rdlib.models.bottleneck import OCBE
from rdlib.models.decoder import Decoder
from rdlib.models.encoders import TeacherEncoder, create_teacher, teacher_next_stage


@dataclass(frozen=True)
class RDArch:
    """Block type and counts of OCE and decoder (official RD architecture for the paper backbones)."""

    block: str
    oce_blocks: int
    decoder_blocks: tuple[int, int, int]   # stages deep → shallow
    base_width: int = 64


RD_ARCHS = {
    "wide_resnet50_2": RDArch("bottleneck", 3, (3, 4, 6), 128),
    "resnet50": RDArch("bottleneck", 3, (3, 4, 6), 64),
    "resnet18": RDArch("basic", 2, (2, 2, 2), 64),
}
# Other teachers (EfficientNet-Lite0: 24/40/112 channels) follow the ResNet18 rules with the teacher's channel counts.
DEFAULT_ARCH = RDArch("basic", 2, (2, 2, 2), 64)


class ReverseDistillation(nn.Module):
    """RD model.

    Args:
        teacher: teacher name (see :data:`rdlib.models.encoders.TEACHERS`) or a built :class:`TeacherEncoder`.
        weights: teacher weights ("imagenet", a file, or "random").
        bottleneck: "oce+mff" (paper/code), "oce" (no MFF), "pre" (pretrained next stage) — RD Table 5.
        image_size: input side (the anomaly map is produced at this size).
        levels: levels that feed the anomaly map (RD Table 7), default all three.
    """

    def __init__(self, teacher: str | TeacherEncoder = "efficientnet_lite0", weights: str = "imagenet",
                 bottleneck: str = "oce+mff", arch: RDArch | None = None, image_size: int = 256,
                 levels: tuple[int, ...] | None = None, sigma: float = 4.0, map_backend: str | None = None):
        super().__init__()
        self.teacher = teacher if isinstance(teacher, TeacherEncoder) else create_teacher(teacher, weights)
        self.arch = arch or RD_ARCHS.get(self.teacher.name, DEFAULT_ARCH)
        ch = self.teacher.channels
        pre, pre_ch = (teacher_next_stage(self.teacher.name, self.teacher.weights) if bottleneck == "pre" else (None, None))
        self.bottleneck = OCBE(ch, self.arch.block, self.arch.oce_blocks, self.arch.base_width, bottleneck, pre, pre_ch)
        self.decoder = Decoder(self.bottleneck.out_channels, ch, self.arch.block, self.arch.decoder_blocks, self.arch.base_width)
        self.anomaly_map = AnomalyMap(image_size, levels, sigma, map_backend)

    def student(self, teacher_feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """D(OCBE(E(x))): the student's reconstruction of the teacher maps."""
        return self.decoder(self.bottleneck(teacher_feats))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """x: B×3×S×S in [0,1] → (teacher maps, student maps)."""
        with torch.no_grad():
            t = self.teacher(x)
        return t, self.student(t)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x → (anomaly map B×1×S×S, image score B) with the σ=4 smoothed sum of cosine maps (max = score)."""
        t, s = self(x)
        return self.anomaly_map(t, s)

    def trainable_modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"bottleneck": self.bottleneck, "decoder": self.decoder})
