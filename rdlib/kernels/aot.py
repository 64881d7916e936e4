"""Compile the cosine-distance kernel for a GPU architecture without a GPU, and read what the compiler made of it.

Triton's front end, its LLVM back end and the ``ptxas`` it ships all run on a CPU, so the exact code a given GPU
would execute can be produced and inspected anywhere: that the kernel compiles for Turing (sm_75), Ampere (sm_80)
and Hopper (sm_90) in each dtype, how wide its global loads are, how many registers it needs and whether it
spills. The interpreter tests check the kernel's arithmetic; this checks the compiled form, which the interpreter
never builds.

The arguments are specialised the way Triton's launcher does it (16-byte alignment, divisibility by 16, strides
equal to 1 become constants) from real tensors, which may live on the CPU. This leans on two Triton internals
(``create_function_from_signature`` and ``JITFunction._pack_args``); ``constraints-local.txt`` pins the Triton
version it is tested with.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rdlib.anomaly_map import EPS

TESTED_TRITON = "3.8"


class AOTUnavailable(RuntimeError):
    """This Triton's internals do not match what :func:`compile_jit` was written for."""


@dataclass
class CompiledReport:
    """What one compilation produced. ``global_loads`` counts ``ld.global`` instructions by width in bits."""

    capability: int
    dtype: str
    flat_hw: bool
    launch: object
    registers: int
    spill_stores: int
    spill_loads: int
    global_loads: Counter = field(default_factory=Counter)
    ptx: str = field(default="", repr=False)

    @property
    def widest_load_bits(self) -> int:
        return max(self.global_loads, default=0)


_LOAD = re.compile(r"\bld\.global(?:\.[a-z]+)*?(?:\.v(\d))?\.(?:b|f|u|s)(\d+)\b")


def count_global_loads(ptx: str) -> Counter:
    """Histogram of ``ld.global`` instructions by total width (vector length × element bits)."""
    widths = Counter()
    for m in _LOAD.finditer(ptx):
        widths[int(m.group(1) or 1) * int(m.group(2))] += 1
    return widths


def _ptxas_stats(ptx: str, capability: int) -> tuple[int, int, int]:
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    arch = sm_arch_from_capability(capability)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "k.ptx"
        src.write_text(ptx)
        res = subprocess.run([get_ptxas(capability).path, "-v", f"--gpu-name={arch}", str(src), "-o",
                              str(Path(d) / "k.cubin")], capture_output=True, text=True, check=True)
    log = res.stdout + res.stderr
    regs = int(re.search(r"Used (\d+) registers", log).group(1))
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    return regs, int(spills.group(1)), int(spills.group(2))


def compile_jit(kernel, args: tuple, kwargs: dict, capability: int) -> str:
    """PTX of ``kernel[grid](*args, **kwargs)`` for ``sm_<capability>``, specialised as Triton's launcher would.

    Raises :class:`AOTUnavailable` when this Triton's internals differ from the version it was written for.
    """
    import triton

    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource, compile, make_backend
        from triton.runtime.jit import JITFunction, create_function_from_signature

        if not isinstance(kernel, JITFunction):        # under TRITON_INTERPRET=1 @triton.jit gives an interpreter
            kernel = JITFunction(kernel.fn)             # wrapper: compile the very same Python function
        target = GPUTarget("cuda", capability, 32)
        backend = make_backend(target)
        binder = create_function_from_signature(kernel.signature, kernel.params, backend)
        bound, specialization, options = binder(*args, **kwargs)
        options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound, specialization, options)
    except (ImportError, AttributeError, TypeError, ValueError) as e:
        raise AOTUnavailable(f"compiling without a GPU uses Triton internals written against Triton {TESTED_TRITON}; "
                             f"this is Triton {triton.__version__} ({type(e).__name__}: {e})") from e
    compiled = compile(ASTSource(kernel, signature, constexprs, attrs), target=target, options=options.__dict__)
    return compiled.asm["ptx"]


def compile_cosine_kernel(t: torch.Tensor, s: torch.Tensor, capability: int = 90, launch=None) -> CompiledReport:
    """Compile the distance kernel for ``t``, ``s`` (shapes, dtypes, strides; any device) on ``sm_<capability>``."""
    from rdlib.kernels.cosine_map import _cosine_distance_kernel, kernel_arguments, plan

    B, C, H, W = t.shape
    launch = launch or plan(B, C, H * W)
    args, kwargs, _ = kernel_arguments(t, s, torch.empty(B * H * W, dtype=torch.float32), launch)
    flat = kwargs["FLAT_HW"]
    ptx = compile_jit(_cosine_distance_kernel, args, kwargs, capability)
    regs, spill_st, spill_ld = _ptxas_stats(ptx, capability)
    return CompiledReport(capability, str(t.dtype).replace("torch.", ""), flat, launch, regs, spill_st, spill_ld,
                          count_global_loads(ptx), ptx)


def compile_finish_kernel(n: int, split: int, capability: int = 90) -> str:
    """PTX of the kernel that adds the partial sums of a channel split (``n`` = B·H·W pixels)."""
    from rdlib.kernels.cosine_map import _finish_split_kernel

    part = torch.empty(3 * split * n, dtype=torch.float32)
    out = torch.empty(n, dtype=torch.float32)
    return compile_jit(_finish_split_kernel, (part, out, n, split, EPS), dict(BLOCK=1024, num_warps=4), capability)


__all__ = ["AOTUnavailable", "CompiledReport", "compile_cosine_kernel", "compile_finish_kernel", "compile_jit", "count_global_loads"]
