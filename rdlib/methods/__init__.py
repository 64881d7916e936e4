"""Methods (what the training loop trains) and their registry: ``create_method("rd", teacher=...)``."""
from __future__ import annotations

from rdlib.methods.base import Method, Stage
from rdlib.methods.rd import PROFILES as RD_PROFILES
from rdlib.methods.rd import RDMethod

METHODS = {"rd": RDMethod}
PROFILES = {"rd": RD_PROFILES}


def create_method(name: str, **options) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {sorted(METHODS)}")
    return METHODS[name](**options)


__all__ = ["Method", "Stage", "RDMethod", "METHODS", "PROFILES", "create_method"]
