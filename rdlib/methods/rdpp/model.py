"""RD++ model: RD (:class:`rdlib.methods.rd.ReverseDistillation`) with a projection P between the frozen teacher
and the OCBE. The map compares D's output with the *raw* teacher maps E(x), so the projection is part of the
inference path (as in the official ``utils/utils_test.py``):

    f_E = E(x);  f_P = P(f_E);  f_D = D(OCBE(f_P));  map = Σ_k up(1 − cos_c(f_E^k, f_D^k)),  score = max(map)
"""
from __future__ import annotations

import torch

from rdlib.methods.rd.model import ReverseDistillation
from rdlib.methods.rdpp.projection import MultiProjection


class RDPlusPlus(ReverseDistillation):
    """RD's model plus ``projection``; ``forward`` as RD's: (teacher maps, student maps) in train mode, (anomaly map
    B×1×S×S, score B) in eval mode. Args as :class:`~rdlib.methods.rd.ReverseDistillation`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.projection = MultiProjection(list(self.teacher.channels))

    def project(self, teacher_feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """P(E(x)) level by level."""
        return self.projection(teacher_feats)

    def decode(self, projected: list[torch.Tensor]) -> list[torch.Tensor]:
        """D(OCBE(f_P)) from projected maps."""
        return self.decoder(self.bottleneck(projected))

    def student(self, teacher_feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """D(OCBE(P(E(x)))): the student's reconstruction of the raw teacher maps."""
        return self.decode(self.project(teacher_feats))
