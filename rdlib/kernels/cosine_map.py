"""Triton kernel for the per-level cosine distance 1 − cos(f_T, f_S) along channels.

Each program owns ``BLOCK_HW`` pixels of one image and a range of channels, which it walks in ``BLOCK_C`` chunks,
accumulating ⟨t,s⟩, ‖t‖², ‖s‖² in fp32 registers: both feature tensors are read exactly once, in any strides and
in fp32, fp16 or bf16, and no normalised copies are materialised. It writes a B×h×w fp32 map, 1/C of the bytes it
read.

Two layouts of the pixel index:

* ``FLAT_HW``: when H and W merge into one axis (``stride_h == W · stride_w``: NCHW-contiguous and channels-last
  tensors, and most views), a pixel's offset is ``hw · stride_hw``. Triton specialises a unit stride to the
  constant 1, so for NCHW tensors it sees BLOCK_HW consecutive addresses and emits 128-bit vector loads
  (checked on compiled PTX in ``tests/test_kernels.py``).
* otherwise ``h · stride_h + w · stride_w`` with h, w from a division: still correct for any strides, but the
  compiler cannot prove contiguity and loads element by element.

Channel split: deep levels have few pixels and many channels (WRN50-2 level 3 at batch 1: 256 pixels × 1024
channels), so one program per pixel block would leave most of a GPU idle. With ``split > 1`` the channel axis is cut
into ``split`` ranges, each program writes its three partial sums, and a second kernel adds them in a fixed order
(deterministic, no atomics) and finishes the map. :func:`plan` picks the blocks and the split.

The rest of the anomaly map (bilinear upsampling, sum over levels, Gaussian blur) is a linear operator on these
small maps and runs as two matrix products per level (:func:`rdlib.anomaly_map.upsample_sum_blur`): it touches
C× fewer bytes than this kernel, and a custom kernel could not fold in the blur as the matrices do.
Inference only, no backward: the training losses use the PyTorch code in :mod:`rdlib.losses`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import triton
import triton.language as tl

from rdlib.numerics import EPS
from rdlib.kernels import interpreter_enabled


@triton.jit
def _cosine_distance_kernel(t_ptr, s_ptr, out_ptr, part_ptr, C, HW, W,
                            t_sb, t_sc, t_sh, t_sw, s_sb, s_sc, s_sh, s_sw, c_per_split, eps,
                            BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, FLAT_HW: tl.constexpr,
                            SPLIT_C: tl.constexpr):
    b = tl.program_id(0)
    hw = tl.program_id(1) * BLOCK_HW + tl.arange(0, BLOCK_HW)
    k = tl.program_id(2)                                        # channel range of this program (0 unless SPLIT_C)
    hw_mask = hw < HW
    if FLAT_HW:                                                 # 64-bit offsets: large channels-last maps pass 2³¹
        t_pix = b.to(tl.int64) * t_sb + hw.to(tl.int64) * t_sw  # t_sw is the stride of the merged h·W + w axis
        s_pix = b.to(tl.int64) * s_sb + hw.to(tl.int64) * s_sw
    else:
        h = (hw // W).to(tl.int64)
        w = (hw % W).to(tl.int64)
        t_pix = b.to(tl.int64) * t_sb + h * t_sh + w * t_sw
        s_pix = b.to(tl.int64) * s_sb + h * s_sh + w * s_sw
    c_lo = k * c_per_split
    c_hi = tl.minimum(c_lo + c_per_split, C)
    dot = tl.zeros([BLOCK_HW], dtype=tl.float32)
    tt = tl.zeros([BLOCK_HW], dtype=tl.float32)
    ss = tl.zeros([BLOCK_HW], dtype=tl.float32)
    for c0 in range(c_lo, c_hi, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        m = (c[:, None] < c_hi) & hw_mask[None, :]
        t = tl.load(t_ptr + t_pix[None, :] + c[:, None].to(tl.int64) * t_sc, mask=m, other=0.0).to(tl.float32)
        s = tl.load(s_ptr + s_pix[None, :] + c[:, None].to(tl.int64) * s_sc, mask=m, other=0.0).to(tl.float32)
        dot += tl.sum(t * s, axis=0)                            # ⟨t, s⟩
        tt += tl.sum(t * t, axis=0)                             # ‖t‖²
        ss += tl.sum(s * s, axis=0)                             # ‖s‖²
    if SPLIT_C:                                                 # partial sums, laid out [3, split, B·HW]
        n = tl.num_programs(0) * HW
        sn = tl.num_programs(2) * n
        base = k * n + b * HW + hw
        tl.store(part_ptr + base, dot, mask=hw_mask)
        tl.store(part_ptr + sn + base, tt, mask=hw_mask)
        tl.store(part_ptr + 2 * sn + base, ss, mask=hw_mask)
    else:
        denom = tl.maximum(tl.sqrt(tt) * tl.sqrt(ss), eps)      # zero vector ⇒ cos = 0 ⇒ distance 1
        tl.store(out_ptr + b * HW + hw, 1.0 - dot / denom, mask=hw_mask)


@triton.jit
def _finish_split_kernel(part_ptr, out_ptr, N, split, eps, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = i < N
    dot = tl.zeros([BLOCK], dtype=tl.float32)
    tt = tl.zeros([BLOCK], dtype=tl.float32)
    ss = tl.zeros([BLOCK], dtype=tl.float32)
    for k in range(split):                                      # fixed order: the result does not depend on timing
        dot += tl.load(part_ptr + k * N + i, mask=mask, other=0.0)
        tt += tl.load(part_ptr + (split + k) * N + i, mask=mask, other=0.0)
        ss += tl.load(part_ptr + (2 * split + k) * N + i, mask=mask, other=0.0)
    denom = tl.maximum(tl.sqrt(tt) * tl.sqrt(ss), eps)
    tl.store(out_ptr + i, 1.0 - dot / denom, mask=mask)


@dataclass(frozen=True)
class LaunchPlan:
    """Block sizes and channel split of one launch (see :func:`plan`)."""

    block_c: int
    block_hw: int
    split: int = 1
    num_warps: int = 4


def merged_hw_stride(x: torch.Tensor) -> int | None:
    """Stride of the merged H·W axis of a B×C×H×W tensor, or None when H and W do not merge."""
    _, _, H, W = x.shape
    _, _, sh, sw = x.stride()
    if H == 1:
        return sw
    if W == 1:
        return sh
    return sw if sh == W * sw else None


@lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def plan(B: int, C: int, HW: int, sm_count: int | None = None, interpreter: bool = False) -> LaunchPlan:
    """Launch plan for a B×C×H×W level (HW = H·W).

    GPU: pixel blocks of up to 128 (one 128-bit load per thread per channel row in fp32), tiles of 2,048 elements
    per tensor, 4 warps. If the pixel blocks alone give fewer than 4 programs per SM, the channel axis is split
    until they do, keeping at least 4 chunks of ``block_c`` channels per program so that the partial sums (12 bytes
    per pixel per split) stay small next to what the program reads. These are reasoned defaults, not tuned ones:
    ``benchmarks/bench_cosine_map.py --tune`` measures alternatives on a GPU.

    Interpreter: few, large programs (each program is a Python-level step there).
    """
    if interpreter:
        return LaunchPlan(min(triton.next_power_of_2(C), 256), min(triton.next_power_of_2(HW), 4096))
    block_hw = min(128, max(16, triton.next_power_of_2(HW)))
    block_c = max(1, min(2048 // block_hw, triton.next_power_of_2(C)))
    programs = B * triton.cdiv(HW, block_hw)
    target = 4 * (sm_count or 132)
    split = 1
    if programs < target:
        split = max(1, min(triton.cdiv(target, programs), triton.cdiv(C, block_c) // 4))
    return LaunchPlan(block_c, block_hw, split)


def kernel_arguments(t: torch.Tensor, s: torch.Tensor, out: torch.Tensor, launch: LaunchPlan,
                     eps: float = EPS) -> tuple[tuple, dict, int]:
    """Arguments of ``_cosine_distance_kernel`` for ``t``, ``s`` and a plan: (positional, keyword, channel split).

    The split actually used may be smaller than ``launch.split``: every range holds a multiple of ``block_c``
    channels, so only the last one has a ragged end. The partial-sum buffer is allocated here when split > 1.
    """
    B, C, H, W = t.shape
    split = max(1, min(launch.split, triton.cdiv(C, launch.block_c)))
    c_per_split = triton.cdiv(triton.cdiv(C, split), launch.block_c) * launch.block_c
    split = triton.cdiv(C, c_per_split)
    t_hw, s_hw = merged_hw_stride(t), merged_hw_stride(s)
    flat = t_hw is not None and s_hw is not None
    t_strides = (t.stride(0), t.stride(1), t.stride(2), t_hw if flat else t.stride(3))
    s_strides = (s.stride(0), s.stride(1), s.stride(2), s_hw if flat else s.stride(3))
    part = torch.empty(3 * split * B * H * W if split > 1 else 1, device=t.device, dtype=torch.float32)
    args = (t, s, out, part, C, H * W, W, *t_strides, *s_strides, c_per_split, eps)
    meta = dict(BLOCK_C=launch.block_c, BLOCK_HW=launch.block_hw, FLAT_HW=flat, SPLIT_C=split > 1,
                num_warps=launch.num_warps)
    return args, meta, split


def cosine_distance_triton(t: torch.Tensor, s: torch.Tensor, eps: float = EPS,
                           launch: LaunchPlan | None = None) -> torch.Tensor:
    """1 − cos along channels of B×C×H×W tensors (any strides) → B×1×H×W fp32.

    ``launch`` overrides :func:`plan` (for tuning and tests); results do not depend on it beyond fp32 rounding.
    """
    if t.shape != s.shape or t.dim() != 4:
        raise ValueError(f"expected two B×C×H×W tensors of one shape, got {tuple(t.shape)} and {tuple(s.shape)}")
    if t.device != s.device:
        raise ValueError(f"teacher and student features are on different devices ({t.device}, {s.device})")
    B, C, H, W = t.shape
    HW = H * W
    out = torch.empty(B, 1, H, W, device=t.device, dtype=torch.float32)
    if out.numel() == 0:
        return out
    if C == 0:
        return out.fill_(1.0)                                   # no channels: both vectors are zero ⇒ distance 1
    if launch is None:
        sms = None
        if t.device.type == "cuda":
            sms = _sm_count(t.device.index if t.device.index is not None else torch.cuda.current_device())
        launch = plan(B, C, HW, sm_count=sms, interpreter=interpreter_enabled())
    args, meta, split = kernel_arguments(t, s, out, launch, eps)
    grid = (B, triton.cdiv(HW, launch.block_hw), split)
    _cosine_distance_kernel[grid](*args, **meta)
    part = args[3]                                              # the partial-sum buffer
    if split > 1:
        n = B * HW
        block = 1024 if not interpreter_enabled() else min(triton.next_power_of_2(n), 4096)
        _finish_split_kernel[(triton.cdiv(n, block),)](part, out, n, split, eps, BLOCK=block, num_warps=4)
    return out
