"""URD (Liu et al., AAAI 2025): an expert E guides a trainable teacher T; the student S = RD's OCBE + decoder with
Guided Information Injection rebuilds T's features.

    E: frozen pretrained encoder (training only)     T: the same network and weights, trainable
    S(T(x)) = GIIDecoder(OCBE(T(x)), T(x))           anomaly map: Σ_k up(1 − cos(T(x)_k, S(T(x))_k)), σ = 4, max

At inference E is not used: the cost is RD's plus the two GII modules. Shapes as in RD (``rdlib.methods.rd.model``).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from rdlib.anomaly_map import AnomalyMap
from rdlib.methods.urd.gii import GIIDecoder
from rdlib.models.encoders import create_teacher
from rdlib.models.student import build_student


def xavier_init(module: nn.Module) -> None:
    """The URD code re-initialises every Conv2d of the student with Xavier-normal (ConvTranspose keeps its default)."""
    for m in module.modules():
        if type(m) is nn.Conv2d:
            nn.init.xavier_normal_(m.weight)


class URD(nn.Module):
    """URD model. ``forward(x)``: (T(x), S(T(x))) in train mode, (anomaly map B×1×S×S, score B) in eval mode.

    Args:
        teacher, weights: the network E and T share (see :data:`rdlib.models.encoders.TEACHERS`).
        gii: "sc" (released code: plain concatenation), "sa" (paper: similarity attention), "none" (no GII).
        expert: True: E–T–S (T trainable, guided by the frozen E); False: T–S (T frozen, no E), URD Table 6.
        image_size, levels, sigma: the anomaly map, as RD's.
        teacher_activation: "none" | "relu" on E's and T's maps, as RD's option (a no-op for the paper's ResNets).
    """

    def __init__(self, teacher: str = "efficientnet_lite0", weights: str = "imagenet", gii: str = "sc",
                 expert: bool = True, image_size: int = 256, levels: tuple[int, ...] | None = None, sigma: float = 4.0,
                 teacher_activation: str = "none"):
        super().__init__()
        self.teacher = create_teacher(teacher, weights, frozen=not expert, activation=teacher_activation)
        self.expert = None
        if expert:
            self.expert = copy.deepcopy(self.teacher)                 # the same ImageNet weights, frozen
            self.expert.frozen = True
            self.expert.requires_grad_(False).eval()
        self.bottleneck, decoder = build_student(self.teacher, "oce+mff")
        self.decoder = GIIDecoder(decoder, self.teacher.channels, gii)
        xavier_init(self.bottleneck)
        xavier_init(self.decoder)
        self.anomaly_map = AnomalyMap(image_size, levels, sigma)

    @torch.no_grad()
    def expert_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """E(x) (training only)."""
        if self.expert is None:
            raise RuntimeError("this URD variant has no expert (expert=False)")
        return self.expert(x)

    def student(self, teacher_feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """S(T(x)) = GIIDecoder(OCBE(T(x)), T(x)): [f_S^1, f_S^2, f_S^3]."""
        return self.decoder(self.bottleneck(teacher_feats), teacher_feats)

    def forward(self, x: torch.Tensor):
        if self.training:
            t = self.teacher(x)
            return t, self.student(t)
        with torch.no_grad():
            t = self.teacher(x)
            return self.anomaly_map(t, self.student(t))
