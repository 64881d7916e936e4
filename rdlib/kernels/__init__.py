"""Triton kernels with a safe dispatch.

The kernel module is imported lazily: ``TRITON_INTERPRET=1`` must be in the environment before ``@triton.jit``
runs (tests set it in ``conftest.py``), and importing rdlib must never require Triton.
"""
from __future__ import annotations

import os

import torch


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_supported(x: torch.Tensor, allow_interpreter: bool = False) -> tuple[bool, str]:
    """Can the fused cosine-map kernel run on tensors like ``x``? Returns (ok, reason when not)."""
    if not triton_available():
        return False, "Triton is not installed"
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return False, f"dtype {x.dtype} is not supported (float32, float16, bfloat16)"
    if x.device.type == "cpu":
        if allow_interpreter and interpreter_enabled():
            return True, ""
        return False, "CPU tensor: the kernel needs a CUDA GPU (or TRITON_INTERPRET=1 with backend='triton' for testing)"
    if x.device.type != "cuda":
        return False, f"device {x.device.type} is not supported"
    if interpreter_enabled():
        return False, "TRITON_INTERPRET=1 interprets every kernel, also on a GPU; unset it to compile"
    return capability_supported(torch.cuda.get_device_capability(x.device), x.dtype)


def capability_supported(capability: tuple[int, int], dtype: torch.dtype) -> tuple[bool, str]:
    """The GPU rule of the dispatch: compute capability ≥ 7.5, and ≥ 8.0 for bfloat16 (Colab's T4 is 7.5)."""
    major, minor = capability
    if (major, minor) < (7, 5):
        return False, f"compute capability {major}.{minor} < 7.5"
    if dtype == torch.bfloat16 and major < 8:
        return False, f"bfloat16 needs compute capability >= 8.0 (this GPU: {major}.{minor}; e.g. Colab's T4)"
    return True, ""


def cosine_distance_triton(t: torch.Tensor, s: torch.Tensor, **kwargs) -> torch.Tensor:
    """1 − cos along channels (B×C×H×W → B×1×H×W fp32) in the Triton kernel (imported on first use)."""
    from rdlib.kernels.cosine_map import cosine_distance_triton as _impl

    return _impl(t, s, **kwargs)


__all__ = ["triton_available", "interpreter_enabled", "triton_supported", "capability_supported",
           "cosine_distance_triton"]
