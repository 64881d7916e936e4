"""RD-RE (Fu & Lin, Computers 2026): a frozen teacher on the normal image, a student encoder–decoder on the synthetic
image with cross-stage fusion (LDA + CAAMS-FF), and a segmentation sub-network on their discrepancy.

    teacher  E(I_n)  → [t₁, t₂, t₃]                          strides 4, 8, 16 (ResNet18: 64², 32², 16² at 256²)
    student  S_e(I_a) → [e₁, e₂, e₃, e₄]                      a randomly initialised copy of the teacher's network
             decoder, deepest first: d₁ (stride 32) → d₂ (16) → d₃ (8) → d₄ (4), two residual blocks per stage
             fusion at encoder layer L (default L = 2, 3): d ← d + CAAMS-FF(LDA(e_L) + Up(d_deeper))
    seg      σ(Head(discrepancy([t], [d₄, d₃, d₂])))         anomaly map; score = mean of the top 100 pixels

The paper's fusion equation indexes the features inconsistently; the reading used (consistent with the paper's Table 6 and its LDA window sizes) fuses each
encoder feature into the decoder stage of the same resolution, which matches Table 6 ("layers 2 and 3").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rdlib.anomaly_map import AnomalyMap
from rdlib.methods.rdre.assa import CAAMSFF
from rdlib.methods.rdre.lda import LDA
from rdlib.methods.rdre.seg import SegmentationHead, discrepancy
from rdlib.models.blocks import conv1x1, make_stage
from rdlib.models.encoders import create_teacher


class Fusion(nn.Module):
    """g(f(e_L) + Up(d_deeper)) for one encoder layer: f = LDA (or identity), g = CAAMS-FF (or identity); a 1×1
    projection brings the deeper decoder feature to e_L's channels."""

    def __init__(self, channels: int, deeper_channels: int, size: int, lda: bool, caams: bool, lda_window: int,
                 window: int, heads: int):
        super().__init__()
        self.proj = conv1x1(deeper_channels, channels)
        self.lda = LDA(channels, size, lda_window) if lda else nn.Identity()
        # window 0: no partition, one window the size of the map (our reading of Table 7's "0")
        self.caams = CAAMSFF(channels, window or size, heads) if caams else nn.Identity()

    def forward(self, encoder: torch.Tensor, deeper: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.proj(deeper), size=encoder.shape[-2:], mode="bilinear", align_corners=False)
        return self.caams(self.lda(encoder) + up)


class FusionDecoder(nn.Module):
    """[e₁, e₂, e₃, e₄] → [d₄, d₃, d₂] (strides 4, 8, 16: the teacher's three levels), with fusion at ``fuse``."""

    def __init__(self, channels: list[int], sizes: list[int], fuse: tuple[int, ...] = (2, 3), lda: bool = True,
                 caams: bool = True, lda_windows: tuple[int, int, int] = (8, 4, 2), window: int = 8, heads: int = 4):
        super().__init__()
        bad = sorted(set(fuse) - {1, 2, 3})
        if bad:
            raise ValueError(f"fuse={tuple(fuse)}: encoder layers to fuse are among 1, 2, 3 (got {bad})")
        c1, c2, c3, c4 = channels
        self.fuse = tuple(sorted(fuse))
        self.stages = nn.ModuleList([make_stage("basic", c4, c4, 2), make_stage("basic", c4, c3, 2),
                                     make_stage("basic", c3, c2, 2), make_stage("basic", c2, c1, 2)])
        deeper = {3: c4, 2: c3, 1: c2}
        self.fusions = nn.ModuleDict({str(layer): Fusion(channels[layer - 1], deeper[layer], sizes[layer - 1], lda, caams,
                                                         lda_windows[layer - 1], window, heads) for layer in self.fuse})

    def forward(self, enc: list[torch.Tensor]) -> list[torch.Tensor]:
        d = self.stages[0](enc[3])                                          # d₁, stride 32
        outs = []
        for i, layer in enumerate((3, 2, 1)):                               # d₂ (stride 16), d₃ (8), d₄ (4)
            nxt = self.stages[i + 1](F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False))
            if layer in self.fuse:
                nxt = nxt + self.fusions[str(layer)](enc[layer - 1], d)     # + g(f(e_L) + Up(d_deeper))
            outs.append(nxt)
            d = nxt
        return outs[::-1]                                                   # shallow first, as the teacher's levels


MAP_SOURCES = ("seg", "distill")


class RDRE(nn.Module):
    """RD-RE model. Train mode: :meth:`distill` (stage 1) and :meth:`segment` (stage 2); eval mode ``forward(x)`` →
    (anomaly map B×1×S×S, score B) from the segmentation head (``map_source="seg"``, needs ``seg=True``) or from
    the teacher–student cosine distance Σ_k up(1 − cos) (``map_source="distill"``: Table 5's rows without Seg).

    Args:
        teacher, weights, teacher_activation: the frozen teacher (paper: ResNet18, ImageNet).
        student_weights: "random" (DeSTSeg; the paper does not say) or "imagenet" for the student encoder.
        fuse, lda, caams, lda_windows, window, heads: the decoder's fusion (Tables 5–7, Fig. 10); ``window=0``: no
            window partition (global attention over each fused map).
        seg, ca, aspp: the segmentation sub-network and its coordinate attention / ASPP (Table 5's Seg; the paper does not ablate CA and ASPP separately).
        seg_width: the head's channels (DeSTSeg: 256; its ASPP is most of a CPU step, the book uses 64).
        image_size, top_k: the map's size and the image score (mean of the top-k pixels, DeSTSeg's rule).
    """

    def __init__(self, teacher: str = "resnet18", weights: str = "imagenet", student_weights: str = "random",
                 fuse: tuple[int, ...] = (2, 3), lda: bool = True, caams: bool = True,
                 lda_windows: tuple[int, int, int] = (8, 4, 2), window: int = 8, heads: int = 4, seg: bool = True,
                 ca: bool = True, aspp: bool = True, image_size: int = 256, top_k: int = 100,
                 teacher_activation: str = "none", seg_width: int = 256,
                 map_source: str | None = None):
        super().__init__()
        self.teacher = create_teacher(teacher, weights, activation=teacher_activation)
        self.student_encoder = create_teacher(teacher, student_weights, out_indices=(1, 2, 3, 4), frozen=False)
        channels = list(self.student_encoder.channels)
        sizes = [image_size // r for r in self.student_encoder.reductions]
        if channels[:3] != list(self.teacher.channels):
            raise ValueError(f"student encoder channels {channels[:3]} differ from the teacher's {self.teacher.channels}")
        self.decoder = FusionDecoder(channels, sizes, fuse, lda, caams, lda_windows, window, heads)
        self.seg = SegmentationHead(sum(self.teacher.channels), seg_width, ca=ca, aspp=aspp) if seg else None
        self.anomaly_map = AnomalyMap(image_size, sigma=0.0, score="topk", top_k=top_k)
        self.map_source = self.check_map_source(map_source or ("seg" if seg else "distill"))

    def check_map_source(self, source: str) -> str:
        if source not in MAP_SOURCES:
            raise ValueError(f"map_source={source!r}; choose from {list(MAP_SOURCES)}")
        if source == "seg" and self.seg is None:
            raise ValueError("map_source='seg' needs the segmentation head (seg=True)")
        return source

    def student(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[d₄, d₃, d₂]: the student's features of ``x`` (the teacher's levels 1–3)."""
        return self.decoder(self.student_encoder(x))

    def distill(self, x_normal: torch.Tensor, x_synthetic: torch.Tensor):
        """Stage 1: (E(I_n) without gradient, S(I_a))."""
        with torch.no_grad():
            t = self.teacher(x_normal)
        return t, self.student(x_synthetic)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Stage 2 (and inference): anomaly probabilities B×1×h₁×w₁; teacher and student frozen, no gradient."""
        with torch.no_grad():
            d = discrepancy(self.teacher(x), self.student(x))
        return torch.sigmoid(self.seg(d))

    def forward(self, x: torch.Tensor):
        if self.training:
            raise RuntimeError("RD-RE trains through distill() and segment(); call forward in eval mode")
        with torch.no_grad():
            if self.map_source == "seg":
                return self.anomaly_map.from_map(self.segment(x))            # map upsampled to S, top-k score
            return self.anomaly_map(self.teacher(x), self.student(x))         # Σ_k up(1 − cos), top-k score
