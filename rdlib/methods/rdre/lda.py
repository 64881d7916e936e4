"""LDA — Locally-aware Dynamic Attention (RD-RE §3.2): channel weights from window-level contrast.

The encoder feature F (B×C×H×W) is cut into non-overlapping k×k windows; each window gives, per channel, the
difference between its maximum and its mean (the paper's operator is lost in the text, its prose says "difference"):
a B×C×N descriptor over the N windows. Channel weights

    c = Sigmoid(W₁ ReLU(W₂ LayerNorm(W₃ d)))        W₃: N → 1 per channel; W₂, W₁: a C → C/r → C bottleneck

scale F channel-wise: LDA(F) = F ⊗ c. W₃'s input size fixes N, so an LDA is built for one feature size (the model
knows it from the image size). Assumptions (the paper gives neither): W₃ is a linear map over the window axis and
r = 4 (``reduction``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LDA(nn.Module):
    """``forward(F)`` → F ⊗ c, same shape. ``size``: the feature side H = W; ``window``: k (H divisible by k)."""

    def __init__(self, channels: int, size: int, window: int, reduction: int = 4):
        super().__init__()
        if window < 1 or size % window:
            raise ValueError(f"LDA window k={window} must divide the feature size {size}")
        self.window, self.size = window, size
        windows = (size // window) ** 2
        hidden = max(1, channels // reduction)
        self.w3 = nn.Linear(windows, 1)                                    # W₃: windows → one value per channel
        self.norm = nn.LayerNorm(channels)
        self.w2 = nn.Linear(channels, hidden)
        self.w1 = nn.Linear(hidden, channels)

    def descriptor(self, f: torch.Tensor) -> torch.Tensor:
        """B×C×H×W → B×C×N: per k×k window, max − mean."""
        if f.shape[-1] != self.size or f.shape[-2] != self.size:
            raise ValueError(f"LDA built for {self.size}×{self.size} features, got {tuple(f.shape[-2:])}")
        d = F.max_pool2d(f, self.window) - F.avg_pool2d(f, self.window)
        return d.flatten(2)

    def weights(self, f: torch.Tensor) -> torch.Tensor:
        """c: B×C in (0, 1)."""
        z = self.w3(self.descriptor(f)).squeeze(-1)                        # W₃ d: B×C
        return torch.sigmoid(self.w1(F.relu(self.w2(self.norm(z)))))       # Sigmoid(W₁ ReLU(W₂ LN(·)))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f * self.weights(f)[..., None, None]                        # F ⊗ c
