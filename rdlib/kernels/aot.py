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

import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rdlib.numerics import EPS

TESTED_TRITON = "3.8"


class AOTUnavailable(RuntimeError):
    """This Triton's internals do not match what :func:`compile_jit` was written for."""


@dataclass
class CompiledReport:
    """What one compilation produced. ``global_loads`` counts ``ld.global`` instructions by width in bits."""

    capability: int
    dtype: str
    flat_hw: bool
    launch: object                  # the LaunchPlan compiled
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

    Must run in a process without ``TRITON_INTERPRET=1`` (there, Triton's own ``@jit`` library functions such as
    ``tl.sum`` are interpreter objects the code generator cannot compile; the ``compile_*`` functions below hand the
    work to a child process then). Raises :class:`AOTUnavailable` when this Triton's internals differ from the version
    it was written for.
    """
    import triton

    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource, compile, make_backend
        from triton.runtime.jit import create_function_from_signature

        target = GPUTarget("cuda", capability, 32)
        backend = make_backend(target)
        binder = create_function_from_signature(kernel.signature, kernel.params, backend)
        bound, specialization, options = binder(*args, **kwargs)
        options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound, specialization, options)
    except (ImportError, AttributeError, TypeError, ValueError) as e:
        raise AOTUnavailable(f"compiling without a GPU uses Triton internals written against Triton {TESTED_TRITON}; "
                             f"this is Triton {triton.__version__} ({type(e).__name__}: {e})") from e
    return compile(ASTSource(kernel, signature, constexprs, attrs), target=target, options=options.__dict__).asm["ptx"]


def _describe(x: torch.Tensor) -> dict:
    return {"shape": list(x.shape), "stride": list(x.stride()), "offset": x.storage_offset(),
            "dtype": str(x.dtype).replace("torch.", "")}


def _materialise(d: dict) -> torch.Tensor:
    """An uninitialised CPU tensor with the described shape, strides and storage offset (hence alignment)."""
    extent = d["offset"] + sum((n - 1) * st for n, st in zip(d["shape"], d["stride"])) + 1
    buf = torch.empty(max(extent, 1), dtype=getattr(torch, d["dtype"]))
    return buf.as_strided(d["shape"], d["stride"], d["offset"])


def _compile_in_process(job: dict) -> dict:
    from rdlib.kernels.cosine_map import (LaunchPlan, _cosine_distance_kernel, _finish_split_kernel,
                                          kernel_arguments)

    cap = job["capability"]
    if job["kernel"] == "finish":
        n, split = job["n"], job["split"]
        part, out = torch.empty(3 * split * n), torch.empty(n)
        return {"ptx": compile_jit(_finish_split_kernel, (part, out, n, split, EPS), dict(BLOCK=1024, num_warps=4),
                                   cap)}
    t, s = _materialise(job["t"]), _materialise(job["s"])
    B, _, H, W = t.shape
    args, kwargs, _ = kernel_arguments(t, s, torch.empty(B * H * W), LaunchPlan(**job["launch"]))
    ptx = compile_jit(_cosine_distance_kernel, args, kwargs, cap)
    return {"ptx": ptx, "flat_hw": kwargs["FLAT_HW"]}


def _compile_jobs(jobs: list[dict]) -> list[dict]:
    """Compile in this process, or in a child without the interpreter when this process interprets kernels."""
    from rdlib.kernels import interpreter_enabled

    if not interpreter_enabled():
        return [_compile_in_process(j) for j in jobs]
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    res = subprocess.run([sys.executable, "-m", "rdlib.kernels.aot"], input=json.dumps(jobs), capture_output=True,
                         text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"compiling in a child process (python -m rdlib.kernels.aot) failed:\n{res.stderr[-4000:]}")
    out = json.loads(res.stdout)
    if isinstance(out, dict) and "aot_unavailable" in out:
        raise AOTUnavailable(out["aot_unavailable"])
    return out


def compile_cosine_kernels(cases: list[tuple]) -> list[CompiledReport]:
    """Compile the distance kernel for each ``(t, s, capability[, launch])``: shapes, dtypes and strides matter,
    the data and the device do not. Reports registers and spills (ptxas -v) and the global loads by width."""
    from rdlib.kernels.cosine_map import LaunchPlan, plan

    jobs = []
    for case in cases:
        t, s, cap, launch = (*case, None) if len(case) == 3 else case
        B, C, H, W = t.shape
        launch = launch or plan(B, C, H * W)
        jobs.append({"kernel": "main", "capability": cap, "t": _describe(t), "s": _describe(s), "launch": vars(launch)})
    reports = []
    for job, out in zip(jobs, _compile_jobs(jobs)):
        regs, spill_st, spill_ld = _ptxas_stats(out["ptx"], job["capability"])
        reports.append(CompiledReport(job["capability"], job["t"]["dtype"], out["flat_hw"], LaunchPlan(**job["launch"]), regs,
                                      spill_st, spill_ld, count_global_loads(out["ptx"]), out["ptx"]))
    return reports


def compile_finish_kernel(n: int, split: int, capability: int = 90) -> str:
    """PTX of the kernel that adds the partial sums of a channel split (``n`` = B·H·W pixels)."""
    return _compile_jobs([{"kernel": "finish", "capability": capability, "n": n, "split": split}])[0]["ptx"]


def _main() -> None:
    jobs = json.loads(sys.stdin.read())
    try:
        out = [_compile_in_process(j) for j in jobs]
    except AOTUnavailable as e:
        out = {"aot_unavailable": str(e)}
    sys.stdout.write(json.dumps(out))


__all__ = ["AOTUnavailable", "CompiledReport", "compile_cosine_kernels",
           "compile_finish_kernel", "compile_jit", "count_global_loads"]

if __name__ == "__main__":
    _main()
