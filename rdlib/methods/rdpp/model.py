"""RD++ model: frozen teacher E → projection P → OCBE → student decoder D; the map compares D's output with the
*raw* teacher maps E(x), so the projection is part of the inference path (as in the official ``test.py``).

    f_E = E(x);  f_P = P(f_E);  f_D = D(OCBE(f_P));  map = Σ_k up(1 − cos_c(f_E^k, f_D^k)),  score = max(map)
"""
from __future__ import annotations

import torch
from torch import nn

from rdlib.anomaly_map import AnomalyMap
from rdlib.methods.rdpp.projection import MultiProjection
from rdlib.models.encoders import TeacherEncoder, create_teacher
from rdlib.models.student import RDArch, build_student


class RDPlusPlus(nn.Module):
    """``forward(x)``: (teacher maps, student maps) in train mode, (anomaly map B×1×S×S, score B) in eval mode.
    :meth:`project` gives the projected maps the loss needs. Args as :class:`rdlib.methods.rd.ReverseDistillation`."""

    def __init__(self, teacher: str | TeacherEncoder = "efficientnet_lite0", weights: str = "imagenet",
                 bottleneck: str = "oce+mff", arch: RDArch | None = None, image_size: int = 256,
                 levels: tuple[int, ...] | None = None, sigma: float = 4.0, map_backend: str | None = None,
                 teacher_activation: str = "none"):
        super().__init__()
        self.teacher = teacher if isinstance(teacher, TeacherEncoder) else create_teacher(
            teacher, weights, activation=teacher_activation)
        self.projection = MultiProjection(list(self.teacher.channels))
        self.bottleneck, self.decoder = build_student(self.teacher, bottleneck, arch)
        self.anomaly_map = AnomalyMap(image_size, levels, sigma, backend=map_backend)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """E(x): the frozen teacher's raw maps (the distillation target)."""
        return self.teacher(x)

    def project(self, teacher_feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """P(E(x)) level by level."""
        return self.projection(teacher_feats)

    def student(self, projected: list[torch.Tensor]) -> list[torch.Tensor]:
        """D(OCBE(P(E(x))))."""
        return self.decoder(self.bottleneck(projected))

    def forward(self, x: torch.Tensor):
        t = self.encode(x)
        s = self.student(self.project(t))
        if self.training:
            return t, s
        return self.anomaly_map(t, s)
