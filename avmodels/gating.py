"""Context gating (Miech et al., LOUPE): y = x * sigmoid(BN(x W)), a learnable soft feature gate."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["ContextGating"]


class ContextGating(nn.Module):
    """Re-weights each activation by a gate computed from all activations of the same sample.

    As in LOUPE, the gate pre-activations go through batch norm (``batch_norm=True``), or get a
    learnable bias instead. Weights are drawn from N(0, 1/sqrt(dim)) like LOUPE's.
    """

    def __init__(self, dim: int, batch_norm: bool = True) -> None:
        super().__init__()
        self.dim = int(dim)
        std = 1.0 / math.sqrt(self.dim)
        self.weight = nn.Parameter(torch.randn(self.dim, self.dim) * std)  # (dim, dim)
        if batch_norm:
            self.bn: nn.BatchNorm1d | None = nn.BatchNorm1d(self.dim)
            self.register_parameter("bias", None)
        else:
            self.bn = None
            self.bias = nn.Parameter(torch.randn(self.dim) * std)

    def forward(self, x: Tensor) -> Tensor:
        """(B, dim) -> (B, dim)."""
        gates = x @ self.weight  # (B, dim)
        gates = self.bn(gates) if self.bn is not None else gates + self.bias
        return x * torch.sigmoid(gates)
