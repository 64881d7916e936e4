"""Triton kernel for the per-level cosine distance 1 − cos(f_T, f_S) along channels.

Each program owns BLOCK_HW pixels of one image and walks the channel axis in BLOCK_C chunks, accumulating
⟨t,s⟩, ‖t‖², ‖s‖² in fp32 registers: both feature tensors are read exactly once, in any strides and in fp32, fp16
or bf16, and no normalised copies are materialised. It writes a B×h×w fp32 map, 1/C of the bytes it read.

The rest of the anomaly map (bilinear upsampling, sum over levels, Gaussian blur) is a linear operator on these
small maps and runs as two matrix products per level (:func:`rdlib.anomaly_map.upsample_sum_blur`): it touches
C× fewer bytes than this kernel, and a custom kernel could not fold in the blur as the matrices do.
Inference only, no backward: the training losses use the PyTorch code in :mod:`rdlib.losses`.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from rdlib.anomaly_map import EPS
from rdlib.kernels import interpreter_enabled


@triton.jit
def _cosine_distance_kernel(t_ptr, s_ptr, out_ptr, C, H, W,
                            t_sb, t_sc, t_sh, t_sw, s_sb, s_sc, s_sh, s_sw, eps,
                            BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    b = tl.program_id(0)
    pid = tl.program_id(1)
    hw = pid * BLOCK_HW + tl.arange(0, BLOCK_HW)
    hw_mask = hw < H * W
    h = hw // W
    w = hw % W
    t_pix = b.to(tl.int64) * t_sb + h * t_sh + w * t_sw
    s_pix = b.to(tl.int64) * s_sb + h * s_sh + w * s_sw
    dot = tl.zeros([BLOCK_HW], dtype=tl.float32)
    tt = tl.zeros([BLOCK_HW], dtype=tl.float32)
    ss = tl.zeros([BLOCK_HW], dtype=tl.float32)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        m = (c[:, None] < C) & hw_mask[None, :]
        t = tl.load(t_ptr + t_pix[None, :] + c[:, None].to(tl.int64) * t_sc, mask=m, other=0.0).to(tl.float32)
        s = tl.load(s_ptr + s_pix[None, :] + c[:, None].to(tl.int64) * s_sc, mask=m, other=0.0).to(tl.float32)
        dot += tl.sum(t * s, axis=0)
        tt += tl.sum(t * t, axis=0)
        ss += tl.sum(s * s, axis=0)
    denom = tl.maximum(tl.sqrt(tt) * tl.sqrt(ss), eps)          # zero vector ⇒ cos = 0 ⇒ distance 1
    tl.store(out_ptr + b * H * W + hw, 1.0 - dot / denom, mask=hw_mask)


def _blocks(C: int, HW: int) -> tuple[int, int, int]:
    """(BLOCK_C, BLOCK_HW, num_warps). The interpreter wants few, large programs; a GPU wants many small ones."""
    if interpreter_enabled():
        return min(triton.next_power_of_2(C), 256), min(triton.next_power_of_2(HW), 4096), 4
    block_hw = 64 if HW >= 4096 else 32
    return min(triton.next_power_of_2(C), 32), block_hw, 4


def cosine_distance_triton(t: torch.Tensor, s: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """1 − cos along channels of B×C×H×W tensors (any strides) → B×1×H×W fp32."""
    if t.shape != s.shape or t.dim() != 4:
        raise ValueError(f"expected two B×C×H×W tensors of one shape, got {tuple(t.shape)} and {tuple(s.shape)}")
    B, C, H, W = t.shape
    out = torch.empty(B, 1, H, W, device=t.device, dtype=torch.float32)
    block_c, block_hw, warps = _blocks(C, H * W)
    grid = (B, triton.cdiv(H * W, block_hw))
    _cosine_distance_kernel[grid](t, s, out, C, H, W, *t.stride(), *s.stride(), eps,
                                  BLOCK_C=block_c, BLOCK_HW=block_hw, num_warps=warps)
    return out
