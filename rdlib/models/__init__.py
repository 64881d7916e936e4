"""Models and a tiny registry: ``get_model("rd", teacher="wide_resnet50_2")``."""
from __future__ import annotations

from typing import Callable

from torch import nn

from rdlib.models.bottleneck import OCBE
from rdlib.models.decoder import Decoder
from rdlib.models.encoders import TEACHERS, TeacherEncoder, TeacherWeightsError, create_classifier, create_teacher
from rdlib.models.rd import RD_ARCHS, RDArch, ReverseDistillation

_MODELS: dict[str, Callable[..., nn.Module]] = {"rd": ReverseDistillation}


def register_model(name: str):
    def deco(fn):
        _MODELS[name] = fn
        return fn
    return deco


def list_models() -> list[str]:
    return sorted(_MODELS)


def get_model(name: str, **kwargs) -> nn.Module:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {list_models()}")
    return _MODELS[name](**kwargs)


__all__ = ["OCBE", "Decoder", "TEACHERS", "TeacherEncoder", "TeacherWeightsError", "create_classifier", "create_teacher",
           "RD_ARCHS", "RDArch", "ReverseDistillation", "get_model", "list_models", "register_model"]
