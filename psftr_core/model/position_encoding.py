"""Sine positional encoding over the valid snippets of each sequence."""

from __future__ import annotations

import math

import torch


def sine_position_encoding(mask: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """DETR-style 1-D sine encoding, normalised so the valid part spans [0, 2π].

    mask: [B, T] bool, True = padding. Returns [B, T, dim] (sin / cos interleaved).
    The position of snippet t is ``(t + 0.5) / T_valid · 2π``, so the encoding of a
    valid snippet does not depend on how much padding follows it. Padded positions get
    the encoding of the last valid one; they are masked everywhere downstream.
    """
    not_mask = (~mask).to(torch.float32)
    count = not_mask.sum(dim=1, keepdim=True)  # [B, 1]
    position = (not_mask.cumsum(dim=1) - 0.5) / count * (2 * math.pi)  # [B, T]
    i = torch.arange(dim, dtype=torch.float32, device=mask.device)
    freq = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / dim)  # [dim]
    angle = position[..., None] / freq  # [B, T, dim]
    return torch.where(i % 2 == 0, angle.sin(), angle.cos())
