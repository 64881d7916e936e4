"""Shared network parts: teacher encoders (timm ``features_only``), OCBE, decoder, residual blocks.

Each paper's own model lives in its package (``rdlib.methods.<paper>.model``); ``rdlib.methods.get_model("rd", ...)``
builds one by name.
"""
from __future__ import annotations

from rdlib.models.bottleneck import OCBE
from rdlib.models.decoder import Decoder
from rdlib.models.encoders import TEACHERS, TeacherEncoder, TeacherWeightsError, create_classifier, create_teacher
from rdlib.models.student import DEFAULT_ARCH, RD_ARCHS, RDArch, arch_for, build_student

__all__ = ["OCBE", "Decoder", "TEACHERS", "TeacherEncoder", "TeacherWeightsError", "create_classifier", "create_teacher",
           "DEFAULT_ARCH", "RD_ARCHS", "RDArch", "arch_for", "build_student"]
