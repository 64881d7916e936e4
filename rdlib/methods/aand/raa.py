"""Residual Anomaly Amplification (RAA), AAND stage 1 (paper §III-B; code ``recons_net.RAR_single``).

One RAA per teacher level, as a side branch: the backbone keeps computing F_T^{k+1} from the vanilla F_T^k, and the
advanced teacher's feature is

    F_A = F_T + w ⊙ Δ                                                                        (paper Eq. 1)

* **MRG** (matching-based residual gate): a query q = MLP_q(F_T + PE) (PE: fixed 2-D sin/cos position encoding) is
  matched against a learnable memory of 2L items (L normal, then L anomalous); w = Σ_{j ∈ anomalous half}
  softmax_j(cos(q, m_j) / τ) ∈ [0, 1], τ = 0.2 (code only)                                   (Eq. 2–4)
* **ARG** (attribute-scaling residual generator): Δ = clamp(tanh(MLP_Δ(F_T)), −1, 1) ⊙ F_T        (Eq. 5)

While stage 1 trains, w is replaced by the ground-truth mask pooled to the level (so Δ is learned only on the
synthetic anomalies); at test time the predicted w is used. Table V and VII variants: ``gate="none"`` (w ≡ 1, ARG
without a gate) and ``residual="sigmoid" | "learnable"`` (Δ = sigmoid(MLP_Δ(F_T)) ⊙ F_T, or Δ = MLP_Δ(F_T)).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

RESIDUALS = ("tanh", "sigmoid", "learnable")
GATES = ("mrg", "none")


def positional_encoding_2d(channels: int, height: int, width: int) -> torch.Tensor:
    """Fixed 2-D sin/cos encoding, C×H×W: the first C/2 channels encode the column x, the last C/2 the row y, each
    as interleaved sin/cos pairs at frequencies 10000^(−2i/(C/2)) (the CS-Flow layout AAND's code uses)."""
    if channels % 4:
        raise ValueError(f"the 2-D position encoding needs channels divisible by 4, got {channels}")
    half = channels // 2
    freq = torch.exp(torch.arange(0, half, 2, dtype=torch.float32) * (-math.log(10000.0) / half))   # half/2 values
    x = torch.arange(width, dtype=torch.float32)[:, None] * freq          # W × half/2
    y = torch.arange(height, dtype=torch.float32)[:, None] * freq         # H × half/2
    pe = torch.zeros(channels, height, width)
    pe[0:half:2] = x.sin().T[:, None, :].expand(-1, height, -1)
    pe[1:half:2] = x.cos().T[:, None, :].expand(-1, height, -1)
    pe[half::2] = y.sin().T[:, :, None].expand(-1, -1, width)
    pe[half + 1::2] = y.cos().T[:, :, None].expand(-1, -1, width)
    return pe


def conv_mlp(channels: int, hidden: int | None = None) -> nn.Sequential:
    """Three 1×1 convolutions C → h → h → C with ReLU between; h = min(2C, 1024) as in the code."""
    h = hidden or min(2 * channels, 1024)
    return nn.Sequential(nn.Conv2d(channels, h, 1), nn.ReLU(inplace=True), nn.Conv2d(h, h, 1), nn.ReLU(inplace=True),
                         nn.Conv2d(h, channels, 1))


class RAA(nn.Module):
    """RAA of one level. ``forward(F_T, gate=None)`` → (F_A, w, Δ), all B×C×h×w except w: B×1×h×w.

    Args:
        channels: C of the level.
        memory_items: L (AAND: 50 normal + 50 anomalous items; Fig. 7 varies it).
        temperature: τ of the memory softmax (code: 0.2).
        residual: "tanh" (paper/code) | "sigmoid" | "learnable" (Table VII).
        gate: "mrg" (paper/code) | "none" (w ≡ 1: ARG without a gate, Table V (b)).
    """

    def __init__(self, channels: int, memory_items: int = 50, temperature: float = 0.2, residual: str = "tanh",
                 gate: str = "mrg"):
        super().__init__()
        if residual not in RESIDUALS:
            raise ValueError(f"residual={residual!r}; choose from {list(RESIDUALS)} ('tanh' = paper and code)")
        if gate not in GATES:
            raise ValueError(f"gate={gate!r}; choose from {list(GATES)} ('mrg' = paper and code, 'none' = Table V (b))")
        if memory_items < 1 or temperature <= 0:
            raise ValueError(f"memory_items must be >= 1 and temperature > 0, got {memory_items}, {temperature}")
        self.channels, self.memory_items, self.temperature = channels, memory_items, temperature
        self.residual_mode, self.gate_mode = residual, gate
        positional_encoding_2d(channels, 1, 1)                         # fail early on channels not divisible by 4
        if gate == "mrg":
            self.query = conv_mlp(channels)                            # MLP_q
            self.memory = nn.Parameter(torch.randn(2 * memory_items, channels))   # [L normal | L anomalous] items
        self.residual_mlp = conv_mlp(channels)                         # MLP_Δ
        for m in self.modules():      # official code: its ResNet's init loop runs after the RAA modules are built, so
            if isinstance(m, nn.Conv2d):                      # their convolutions get Kaiming-normal (fan_out, ReLU)
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def gate(self, f: torch.Tensor) -> torch.Tensor:
        """w: B×1×h×w, the softmax mass of the anomalous memory half (Eq. 2–4); ones without MRG."""
        b, c, h, w = f.shape
        if self.gate_mode == "none":
            return f.new_ones(b, 1, h, w)
        pe = positional_encoding_2d(c, h, w).to(f.device, f.dtype)
        q = F.normalize(self.query(f + pe).flatten(2).transpose(1, 2), dim=-1)            # B×N×C, q = MLP_q(F_T + PE)
        m = F.normalize(self.memory, dim=-1)                                               # 2L×C
        attention = torch.softmax(q @ m.T / self.temperature, dim=-1)                      # softmax_j(cos(q, m_j) / τ)
        return attention[..., self.memory_items:].sum(-1).view(b, 1, h, w)                 # Σ over anomalous items

    def residual(self, f: torch.Tensor) -> torch.Tensor:
        """Δ (Eq. 5): clamp(tanh(MLP_Δ(F_T)), −1, 1) ⊙ F_T, or the Table VII variants."""
        r = self.residual_mlp(f)
        if self.residual_mode == "tanh":
            return torch.tanh(r).clamp(-1, 1) * f
        if self.residual_mode == "sigmoid":
            return torch.sigmoid(r) * f
        return r                                                       # learnable residual, no scale restriction

    def forward(self, f: torch.Tensor, gate: torch.Tensor | None = None):
        """``gate``: B×1×h×w replacing the predicted w (the pooled mask while stage 1 trains; ignored without MRG)."""
        delta = self.residual(f)
        w = self.gate(f)
        use = w if (gate is None or self.gate_mode == "none") else gate
        return f + use * delta, w, delta                               # F_A = F_T + w ⊙ Δ      (Eq. 1; Eq. 6 while the gate is the mask)
