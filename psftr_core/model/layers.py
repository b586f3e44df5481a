"""Small building blocks shared by the encoder, decoder and heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """logit(x) with x clamped away from 0 and 1."""
    x = x.clamp(0.0, 1.0)
    return torch.log(x.clamp(min=eps) / (1.0 - x).clamp(min=eps))


class MLP(nn.Module):
    """``num_layers`` Linear layers with ReLU in between (none after the last)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class FFN(nn.Module):
    """Post-norm feed-forward block: ``LN(x + W2·drop(ReLU(W1·x)))``."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class MaskedGroupNorm(nn.Module):
    """GroupNorm over channels-last sequences whose statistics skip padded positions.

    ``nn.GroupNorm`` averages over every time step, so the padding of a batch would
    change the normalisation of the valid snippets. Here mean and variance of each
    (sample, group) are taken over the valid positions only; with no padding the
    result equals ``nn.GroupNorm``.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"num_channels {num_channels} not divisible by num_groups {num_groups}")
        self.num_groups = num_groups
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: [B, T, C]; mask: [B, T] bool, True = padding. Returns [B, T, C], 0 at padding."""
        B, T, C = x.shape
        G = self.num_groups
        valid = (~mask).to(x.dtype).view(B, T, 1, 1)
        xg = x.masked_fill(mask[..., None], 0.0).view(B, T, G, C // G)
        count = valid.sum(dim=(1, 3), keepdim=True) * (C // G)  # [B, 1, 1, 1]
        mean = xg.sum(dim=(1, 3), keepdim=True) / count  # [B, 1, G, 1]
        var = (((xg - mean) * valid) ** 2).sum(dim=(1, 3), keepdim=True) / count
        out = ((xg - mean) / torch.sqrt(var + self.eps)).view(B, T, C)
        out = out * self.weight + self.bias
        return out.masked_fill(mask[..., None], 0.0)
