"""AAND (Tang et al., IEEE TIP 2026): a vanilla teacher made an *advanced* teacher by residual anomaly amplification
(stage 1), then RD's OCBE + decoder distilled from it on normal images (stage 2).

    F_T = E(x)                       frozen pretrained teacher, levels 1–3 (the backbone path is never altered)
    F_A^k = F_T^k + w^k ⊙ Δ^k        one RAA per level (``rdlib.methods.aand.raa``)
    F_S = D(OCBE(F_A))               anomaly map: Σ_k up(1 − cos(F_A^k, F_S^k)), score = max (Eq. 13–14; the σ = 4 blur is the code's)

Shapes as RD's (``rdlib.methods.rd.model``); the RAA modules keep each level's shape.
"""
from __future__ import annotations

import torch
from torch import nn

from rdlib.anomaly_map import AnomalyMap, upsample_sum_blur
from rdlib.methods.aand.raa import RAA
from rdlib.models.encoders import create_teacher
from rdlib.models.student import build_student

MAP_SOURCES = ("distill", "gate")


class AAND(nn.Module):
    """AAND model. ``forward(x)``: (F_A, F_S) in train mode; (anomaly map B×1×S×S, score B) in eval mode.

    Args:
        teacher, weights, teacher_activation: the frozen teacher, as RD's.
        raa: False drops stage 1 (F_A = F_T: Table V "base" and (d)).
        memory_items, temperature, residual, gate: the RAA options (see :class:`RAA`).
        image_size, levels, sigma: the anomaly map, as RD's.
        map_source: "distill" (the paper's map, Eq. 14) or "gate" (Σ_k up(w^k), the "MRG score only" row of
            Table V (a), blurred and scored like the distillation map).
    """

    def __init__(self, teacher: str = "efficientnet_lite0", weights: str = "imagenet", raa: bool = True,
                 memory_items: int = 50, temperature: float = 0.2, residual: str = "tanh", gate: str = "mrg",
                 image_size: int = 256, levels: tuple[int, ...] | None = None, sigma: float = 4.0,
                 teacher_activation: str = "none", map_source: str = "distill"):
        super().__init__()
        self.teacher = create_teacher(teacher, weights, activation=teacher_activation)
        self.raa = nn.ModuleList(RAA(c, memory_items, temperature, residual, gate) for c in self.teacher.channels) \
            if raa else None
        self.bottleneck, self.decoder = build_student(self.teacher, "oce+mff")
        self.anomaly_map = AnomalyMap(image_size, levels, sigma)
        self.map_source = self.check_map_source(map_source)

    @staticmethod
    def check_map_source(source: str) -> str:
        if source not in MAP_SOURCES:
            raise ValueError(f"map_source={source!r}; choose from {list(MAP_SOURCES)}")
        return source

    def advance(self, f_t: list[torch.Tensor], gates: list[torch.Tensor] | None = None):
        """F_T → (F_A, w, Δ) per level; ``gates`` (the pooled masks while stage 1 trains) replace the predicted w.
        Without RAA: F_A = F_T, w = 0, Δ = 0."""
        if self.raa is None:
            return list(f_t), [f.new_zeros(f.shape[0], 1, *f.shape[-2:]) for f in f_t], [torch.zeros_like(f) for f in f_t]
        out = [raa(f, None if gates is None else g) for raa, f, g in zip(self.raa, f_t, gates or [None] * len(f_t))]
        return [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The advanced teacher's features F_A of ``x`` with the predicted gates (no gradient)."""
        return self.advance(self.teacher(x))[0]

    def student(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """F_S = D(OCBE(F_A))."""
        return self.decoder(self.bottleneck(features))

    def forward(self, x: torch.Tensor | None = None, teacher_features: list[torch.Tensor] | None = None):
        if self.training:
            t = teacher_features if teacher_features is not None else self.encode(x)
            return t, self.student(t)
        with torch.no_grad():
            f_a, w, _ = self.advance(self.teacher(x)) if teacher_features is None else (teacher_features, None, None)
            if self.map_source == "gate":
                if w is None:
                    raise ValueError("map_source='gate' needs images, not precomputed features")
                levels = self.anomaly_map.levels
                amap = upsample_sum_blur([w[i] for i in (levels or range(len(w)))], self.anomaly_map.out_size,
                                         self.anomaly_map.sigma)
                return amap, self.anomaly_map.image_score(amap)
            return self.anomaly_map(f_a, self.student(f_a))
