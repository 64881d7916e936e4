"""Methods, one package per paper (``rdlib/methods/<paper>/``), and the one registry they fill.

    from rdlib.methods import create_method, get_model, list_methods, method_profile
    method = create_method("rd", teacher="efficientnet_lite0")      # a trainable Method
    model = get_model("rd", teacher="resnet18", weights="random")   # just its nn.Module (method.model)

A package registers its method with :func:`register_method`, which records the class, its hyper-parameter
profiles (``ci``, ``book``, ``paper``: method options plus training-loop settings, defined once, in the package)
and, through the class, its data configuration. Sub-packages of ``rdlib.methods`` are imported on first use of the
registry, so adding a paper means adding its package and nothing else.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field

from torch import nn

from rdlib import smoke
from rdlib.methods.base import DataConfig, Method, OptionError, Stage


@dataclass(frozen=True)
class MethodEntry:
    name: str
    cls: type
    profiles: dict = field(default_factory=dict)     # profile → {"options", "fit"[, "category_options"]}
    summary: str = ""


_REGISTRY: dict[str, MethodEntry] = {}
_DISCOVERED = False


def register_method(name: str, profiles: dict | None = None, summary: str = ""):
    """Class decorator: ``@register_method("rd", profiles=PROFILES)``. Profiles are validated against the class."""
    def deco(cls):
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"register_method({name!r}) decorates a Method subclass, got {cls!r}")
        if name in _REGISTRY and _REGISTRY[name].cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"method name {name!r} is already registered by {_REGISTRY[name].cls.__module__}")
        for pname, prof in (profiles or {}).items():
            extra = set(prof) - {"options", "fit", "category_options"}
            if extra:
                raise ValueError(f"{name} profile {pname!r}: unknown section(s) {sorted(extra)} "
                                 "(options, fit, category_options)")
            cls.validate_options(prof.get("options", {}))
            for cat_opts in prof.get("category_options", {}).values():   # e.g. URD: 10k steps for cable
                cls.validate_options({**prof.get("options", {}), **cat_opts})
        cls.name = name
        _REGISTRY[name] = MethodEntry(name, cls, dict(profiles or {}), summary or (cls.__doc__ or "").split("\n")[0])
        return cls
    return deco


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:
            importlib.import_module(f"{__name__}.{info.name}")


def list_methods() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def method_entry(name: str) -> MethodEntry:
    _discover()
    if name not in _REGISTRY:
        raise OptionError(f"unknown method {name!r}; available: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def method_class(name: str) -> type:
    return method_entry(name).cls


def method_profile(name: str, profile: str, category: str | None = None) -> dict:
    """``{"options": {...}, "fit": {...}}`` of a method's profile (copies; KeyError-free: a clear error instead).
    With ``category``, the profile's options for that category (e.g. URD's paper budget: 10k steps for cable and
    transistor, 5k for the others) override the general ones. With ``RDLIB_SMOKE=1`` every budget is one unit and
    the teacher's weights random (:mod:`rdlib.smoke`)."""
    entry = method_entry(name)
    if profile not in entry.profiles:
        raise OptionError(f"method {name!r} has no profile {profile!r}; choose from {sorted(entry.profiles)}")
    prof = entry.profiles[profile]
    if smoke.active():                                    # RDLIB_SMOKE=1: the same path, budgets cut to one unit
        prof = smoke.scaled_profile(prof)
    per_category = prof.get("category_options", {}).get(category, {}) if category is not None else {}
    return {"options": {**prof.get("options", {}), **per_category}, "fit": dict(prof.get("fit", {}))}


def create_method(name: str, **options) -> Method:
    """A fresh method with validated options."""
    cls = method_class(name)
    cls.validate_options(options)
    return cls(**options)


def get_model(name: str, **options) -> nn.Module:
    """The method's network alone (``create_method(name, **options).model``), e.g. to inspect shapes."""
    return create_method(name, **options).model


__all__ = ["DataConfig", "Method", "MethodEntry", "OptionError", "Stage", "create_method", "get_model",
           "list_methods", "method_class", "method_entry", "method_profile", "register_method"]
