"""ASSA — adaptive sparse self-attention on windows (RD-RE §3.3, from AST, CVPR 2024), and CAAMS-FF around it.

Tokens of each M×M window (M = 8 in the paper, Table 7) attend to each other with H heads and a learned relative
position bias B. Two branches share Q, K, V:

    DSA = Softmax(QKᵀ/√d + B)           dense
    SSA = ReLU²(QKᵀ/√d + B)             sparse: only positive affinities, squared
    A   = (w₁·SSA + w₂·DSA) V,          (w₁, w₂) = softmax of two learned scalars (AST's code)

heads concatenated → W_O. CAAMS-FF (context-aware adaptive multi-scale feature fusion, Fig. 3) as built here:
x + ASSA(LN(x)), then the refinement y + LN(W₄ DWConv(W₃ y)), then a residual block. The paper draws more than it
specifies: heads (4), the refinement's expansion (2) and the order of the parts are assumptions (the package docstring
lists them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rdlib.models.blocks import BasicBlock


def windows(x: torch.Tensor, m: int) -> torch.Tensor:
    """B×C×H×W → (B·nW)×M²×C tokens of the non-overlapping M×M windows (H, W divisible by M)."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // m, m, w // m, m).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(-1, m * m, c)


def unwindows(t: torch.Tensor, b: int, h: int, w: int, m: int) -> torch.Tensor:
    """Inverse of :func:`windows`."""
    c = t.shape[-1]
    x = t.view(b, h // m, w // m, m, m, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, h, w)


class ASSA(nn.Module):
    """Window attention with dense and sparse branches. ``forward(x)``: B×C×H×W → B×C×H×W. A window larger than the
    feature is clipped to it (a 16×16 window on a 16² map is global attention)."""

    def __init__(self, channels: int, window: int = 8, heads: int = 4):
        super().__init__()
        if channels % heads:
            raise ValueError(f"ASSA: {channels} channels do not split into {heads} heads")
        self.window, self.heads = window, heads
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)                           # W_O
        self.branch_logits = nn.Parameter(torch.zeros(2))                   # (sparse, dense) before the softmax
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)

    def relative_bias(self, m: int) -> torch.Tensor:
        """B: heads × M² × M² from the (2M−1)² table of the built window (indexed by the offset (Δy, Δx))."""
        coords = torch.stack(torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")).flatten(1)  # 2×M²
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (self.window - 1)               # M²×M²×2
        index = rel[..., 0] * (2 * self.window - 1) + rel[..., 1]
        return self.bias_table[index.to(self.bias_table.device)].permute(2, 0, 1)

    def branch_weights(self) -> torch.Tensor:
        """(w₁, w₂) for (sparse, dense)."""
        return torch.softmax(self.branch_logits, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        m = min(self.window, h, w)
        if h % m or w % m:
            raise ValueError(f"ASSA window {m} does not tile a {h}×{w} feature")
        t = windows(x, m)                                                   # (B·nW)×M²×C
        q, k, v = self.qkv(t).view(t.shape[0], m * m, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-2, -1) / (c // self.heads) ** 0.5 + self.relative_bias(m)   # QKᵀ/√d + B
        w1, w2 = self.branch_weights()
        attn = w1 * F.relu(logits) ** 2 + w2 * torch.softmax(logits, -1)   # w₁·SSA + w₂·DSA
        out = (attn @ v).transpose(1, 2).reshape(t.shape[0], m * m, c)      # heads concatenated
        return unwindows(self.proj(out), b, h, w, m)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a B×C×H×W map."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class CAAMSFF(nn.Module):
    """CAAMS-FF: x + ASSA(LN x) → y + LN(W₄ DWConv(W₃ y)) → residual block. Shape-preserving."""

    def __init__(self, channels: int, window: int = 8, heads: int = 4, expansion: int = 2):
        super().__init__()
        hidden = channels * expansion
        self.norm = ChannelLayerNorm(channels)
        self.attention = ASSA(channels, window, heads)
        self.w3 = nn.Conv2d(channels, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.w4 = nn.Conv2d(hidden, channels, 1)
        self.refine_norm = ChannelLayerNorm(channels)
        self.block = BasicBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + self.attention(self.norm(x))
        y = y + self.refine_norm(self.w4(self.dwconv(self.w3(y))))        # y + F_out, F_out = LN(W₄ DWConv(W₃ y)); the skip is ours
        return self.block(y)
