"""RD's student side, shared by RD, URD and AAND: OCBE + decoder built for a teacher (official block counts).

``build_student(teacher, variant)`` returns ``(OCBE, Decoder)`` with the official RD architecture for the paper
backbones; other teachers (EfficientNet-Lite0: 24/40/112 channels) follow the ResNet18 rules with their own channel
counts.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from rdlib.models.bottleneck import OCBE
from rdlib.models.decoder import Decoder
from rdlib.models.encoders import TeacherEncoder, teacher_next_stage


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
DEFAULT_ARCH = RDArch("basic", 2, (2, 2, 2), 64)


def arch_for(teacher_name: str) -> RDArch:
    return RD_ARCHS.get(teacher_name, DEFAULT_ARCH)


def build_student(teacher: TeacherEncoder, bottleneck: str = "oce+mff", arch: RDArch | None = None) -> tuple[nn.Module, nn.Module]:
    """(OCBE, decoder) for ``teacher``; ``bottleneck`` in {"oce+mff", "oce", "pre"} (RD Table 5)."""
    arch = arch or arch_for(teacher.name)
    ch = teacher.channels
    pre, pre_ch = teacher_next_stage(teacher.name, teacher.weights) if bottleneck == "pre" else (None, None)
    ocbe = OCBE(ch, arch.block, arch.oce_blocks, arch.base_width, bottleneck, pre, pre_ch)
    decoder = Decoder(ocbe.out_channels, ch, arch.block, arch.decoder_blocks, arch.base_width)
    return ocbe, decoder
