"""RD (Deng & Li, CVPR 2022): frozen teacher encoder E → one-class bottleneck (OCBE) → student decoder D.

Shapes for WideResNet50-2 at 256²: E → [256×64², 512×32², 1024×16²] → OCBE → 2048×8² → D → [256×64², 512×32², 1024×16²].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rdlib.anomaly_map import AnomalyMap
from rdlib.models.encoders import TeacherEncoder, create_teacher
from rdlib.models.student import RDArch, build_student


class ReverseDistillation(nn.Module):
    """RD model. ``forward(x)`` returns (teacher maps, student maps) in train mode and (anomaly map B×1×S×S,
    image score B) in eval mode.

    Args:
        teacher: teacher name (see :data:`rdlib.models.encoders.TEACHERS`) or a built :class:`TeacherEncoder`.
        weights: teacher weights ("imagenet", a file, or "random").
        bottleneck: "oce+mff" (paper/code), "oce" (no MFF), "pre" (pretrained next stage) — RD Table 5.
        image_size: input side (the anomaly map is produced at this size).
        levels: levels that feed the anomaly map (RD Table 7), default all three.
        teacher_activation: "none" (the teacher's stage outputs as they are: RD's ResNets end each stage with a
            ReLU) or "relu" (a ReLU applied to them; EfficientNet-Lite0's stages end in a linear bottleneck, so
            its maps are signed, about half negative). Not in the paper (a no-op for its teachers); the book's
            profiles use "relu" for Lite0 (RD chapter, "Why RD trails the nearest-neighbour reference here").
    """

    def __init__(self, teacher: str | TeacherEncoder = "efficientnet_lite0", weights: str = "imagenet",
                 bottleneck: str = "oce+mff", arch: RDArch | None = None, image_size: int = 256,
                 levels: tuple[int, ...] | None = None, sigma: float = 4.0,
                 teacher_activation: str = "none"):
        super().__init__()
        self.teacher = teacher if isinstance(teacher, TeacherEncoder) else create_teacher(
            teacher, weights, activation=teacher_activation)
        self.bottleneck, self.decoder = build_student(self.teacher, bottleneck, arch)
        self.anomaly_map = AnomalyMap(image_size, levels, sigma)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """E(x): the frozen teacher's maps [f_E^1, f_E^2, f_E^3] (no gradient), after its ``teacher_activation``."""
        return self.teacher(x)

    def student(self, teacher_feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """D(OCBE(E(x))): the student's reconstruction [f_D^1, f_D^2, f_D^3] of the teacher maps."""
        return self.decoder(self.bottleneck(teacher_feats))

    @torch.no_grad()
    def level_distances(self, x: torch.Tensor) -> torch.Tensor:
        """x B×3×S×S → B×K: per image and level, the flattened loss term 1 − cos(vec f_E^k, vec f_D^k) (call in
        eval mode: how well the trained student rebuilds the teacher, level by level)."""
        t = self.encode(x)
        s = self.student(t)
        return torch.stack([1 - F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1) for a, b in zip(t, s)], 1)

    def forward(self, x: torch.Tensor | None = None, teacher_features: list[torch.Tensor] | None = None):
        """x: B×3×S×S in [0,1] (or precomputed ``teacher_features``) → features (train) or (map, score) (eval)."""
        t = teacher_features if teacher_features is not None else self.encode(x)
        s = self.student(t)
        if self.training:
            return t, s
        return self.anomaly_map(t, s)
