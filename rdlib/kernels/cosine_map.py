"""Triton kernels for the multi-level cosine anomaly map Σ_k Ψ(1 − cos(f_T^k, f_S^k)).

Two kernels, four launches for K = 3 levels:

1. ``_cosine_distance_kernel`` (one launch per level): each program owns BLOCK_HW pixels of one image and walks the
   channel axis in BLOCK_C chunks, accumulating ⟨t,s⟩, ‖t‖², ‖s‖² in fp32 registers. Both feature tensors are read
   exactly once; no normalised copies are materialised. Writes a B×h×w fp32 map (1/C of the bytes it read).
2. ``_upsample_sum_kernel`` (one launch): for each output pixel, bilinear (align_corners=True) samples of every
   level's small map, summed. It reads K tiny maps (cache-resident) and writes the B×H×W output once.

Fusing (2) into (1) would need every program to see its neighbours' results (bilinear taps cross program
boundaries); since the maps are ≥ C× smaller than the features, (2) costs little and is kept separate.
Inference only: no backward (training losses use the PyTorch code in :mod:`rdlib.losses`).
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


@triton.jit
def _bilinear_tap(ptr, b, y, x, h, w, scale_y, scale_x, mask):
    """Bilinear sample (align_corners=True) of a contiguous B×h×w fp32 map at output coords (y, x)."""
    sy = y.to(tl.float32) * scale_y
    sx = x.to(tl.float32) * scale_x
    y0 = tl.minimum(sy.to(tl.int32), h - 1)
    x0 = tl.minimum(sx.to(tl.int32), w - 1)
    y1 = tl.minimum(y0 + 1, h - 1)
    x1 = tl.minimum(x0 + 1, w - 1)
    fy = sy - y0.to(tl.float32)
    fx = sx - x0.to(tl.float32)
    base = ptr + b * h * w
    v00 = tl.load(base + y0 * w + x0, mask=mask, other=0.0)
    v01 = tl.load(base + y0 * w + x1, mask=mask, other=0.0)
    v10 = tl.load(base + y1 * w + x0, mask=mask, other=0.0)
    v11 = tl.load(base + y1 * w + x1, mask=mask, other=0.0)
    top = v00 + (v01 - v00) * fx
    bot = v10 + (v11 - v10) * fx
    return top + (bot - top) * fy


@triton.jit
def _upsample_sum_kernel(out_ptr, OH, OW,
                         m0, h0, w0, sy0, sx0, m1, h1, w1, sy1, sx1, m2, h2, w2, sy2, sx2, m3, h3, w3, sy3, sx3,
                         NUM_LEVELS: tl.constexpr, BLOCK: tl.constexpr):
    b = tl.program_id(0)
    p = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = p < OH * OW
    y = p // OW
    x = p % OW
    acc = _bilinear_tap(m0, b, y, x, h0, w0, sy0, sx0, mask)
    if NUM_LEVELS > 1:
        acc += _bilinear_tap(m1, b, y, x, h1, w1, sy1, sx1, mask)
    if NUM_LEVELS > 2:
        acc += _bilinear_tap(m2, b, y, x, h2, w2, sy2, sx2, mask)
    if NUM_LEVELS > 3:
        acc += _bilinear_tap(m3, b, y, x, h3, w3, sy3, sx3, mask)
    tl.store(out_ptr + b * OH * OW + p, acc, mask=mask)


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


def upsample_sum_triton(maps: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
    """Σ_k bilinear(align_corners=True) upsampling of B×1×h_k×w_k fp32 maps (1 ≤ K ≤ 4) → B×1×H×W."""
    if not 1 <= len(maps) <= 4:
        raise ValueError(f"upsample_sum_triton takes 1 to 4 levels, got {len(maps)}")
    B = maps[0].shape[0]
    OH, OW = out_size
    out = torch.empty(B, 1, OH, OW, device=maps[0].device, dtype=torch.float32)
    args = []
    for k in range(4):
        m = maps[min(k, len(maps) - 1)].contiguous()
        h, w = m.shape[-2:]
        sy = (h - 1) / (OH - 1) if OH > 1 else 0.0
        sx = (w - 1) / (OW - 1) if OW > 1 else 0.0
        args += [m, h, w, sy, sx]
    block = min(triton.next_power_of_2(OH * OW), 65536 if interpreter_enabled() else 512)
    grid = (B, triton.cdiv(OH * OW, block))
    _upsample_sum_kernel[grid](out, OH, OW, *args, NUM_LEVELS=len(maps), BLOCK=block, num_warps=4)
    return out


def fused_cosine_map_triton(teacher: list[torch.Tensor], student: list[torch.Tensor], out_size: tuple[int, int],
                            eps: float = EPS) -> torch.Tensor:
    """Triton version of :func:`rdlib.anomaly_map.fused_map_reference`."""
    maps = [cosine_distance_triton(t, s, eps) for t, s in zip(teacher, student)]
    return upsample_sum_triton(maps, tuple(out_size))
