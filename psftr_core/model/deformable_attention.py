"""1-D (temporal) deformable attention in plain PyTorch, one feature level.

Each query looks at P sampled positions per head instead of all T snippets. For head
m and point p the module predicts an offset Δ and a weight A (softmax over the P
points), samples the head's value sequence at ``loc = reference + offset`` by linear
interpolation and returns ``W_o Σ_p A_p V_m(loc_p)`` concatenated over heads.

Sampling uses ``F.grid_sample`` on a ``[B·M, d/M, 1, T]`` value map: bilinear, zero
padding, ``align_corners=False`` and ``x = 2·loc − 1``, ``y = 0`` (the centre of the
single row, so the vertical interpolation weight is exactly 1). With these settings
snippet t sits at ``loc = (t + 0.5) / T``, a location between two snippet centres is
linearly interpolated, and anything beyond the sequence (or on padded snippets, whose
values are zeroed) contributes zeros. No compiled extension; CPU and CUDA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def deformable_attention_1d(value: torch.Tensor, locations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted sum of linearly interpolated samples, per head.

    Args:
        value: [B, T, M, C] per-head values (zero them at padded snippets beforehand).
        locations: [B, Nq, M, P] sampling locations in [0, 1] of the T snippets
            (snippet t has its centre at (t + 0.5) / T; outside [0, 1] reads zeros).
        weights: [B, Nq, M, P] attention weights (normally softmax over P).

    Returns:
        [B, Nq, M·C]: for each head m, ``Σ_p weights[..., m, p] · value_m(loc_p)``.
    """
    B, T, M, C = value.shape
    _, Nq, _, P = locations.shape
    value_map = value.permute(0, 2, 3, 1).reshape(B * M, C, 1, T)
    x = 2.0 * locations - 1.0  # grid_sample's normalised coordinate
    grid = torch.stack((x, torch.zeros_like(x)), dim=-1)  # [B, Nq, M, P, 2]
    grid = grid.permute(0, 2, 1, 3, 4).reshape(B * M, Nq, P, 2)
    sampled = F.grid_sample(value_map, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # sampled: [B·M, C, Nq, P]
    w = weights.permute(0, 2, 1, 3).reshape(B * M, 1, Nq, P)
    out = (sampled * w).sum(dim=-1)  # [B·M, C, Nq]
    return out.view(B, M, C, Nq).permute(0, 3, 1, 2).reshape(B, Nq, M * C)


class DeformableAttention1D(nn.Module):
    """Multi-head 1-D deformable attention with a centre or segment reference.

    Sampling location of head m, point p (Δ in snippet units, predicted from the query):

    - centre reference r (shape [..., 1]): ``r + Δ / T``;
    - segment reference (c, w) (shape [..., 2]): ``c + (Δ / P) · (w / 2)``.

    References are fractions of the (padded) input length T; callers scale
    valid-length references by ``T_valid / T``.

    Initialisation: ``sampling_offsets.weight = 0`` and a bias that places point p of
    head m at ``±(p + 1)`` snippets (``+`` for even heads, ``−`` for odd heads), i.e.
    spread on both sides of a centre and up to the ends of a segment;
    ``attention_weights = 0`` (uniform over points); value / output projections Xavier.
    """

    def __init__(self, dim: int, num_heads: int, num_points: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.num_points = num_points
        self.sampling_offsets = nn.Linear(dim, num_heads * num_points)
        self.attention_weights = nn.Linear(dim, num_heads * num_points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.sampling_offsets.weight)
        direction = torch.tensor([1.0 if m % 2 == 0 else -1.0 for m in range(self.num_heads)])
        distance = torch.arange(1, self.num_points + 1, dtype=torch.float32)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_((direction[:, None] * distance[None, :]).flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def sampling_locations(self, query: torch.Tensor, reference: torch.Tensor, length: int) -> torch.Tensor:
        """[B, Nq, M, P] locations in [0, 1] of ``length`` snippets."""
        B, Nq, _ = query.shape
        offsets = self.sampling_offsets(query).view(B, Nq, self.num_heads, self.num_points)
        if reference.shape[-1] == 1:
            return reference[..., None] + offsets / length
        if reference.shape[-1] == 2:
            centre, width = reference[..., :1, None], reference[..., 1:, None]
            return centre + offsets / self.num_points * width * 0.5
        raise ValueError(f"reference must end in 1 (centre) or 2 (centre, width), got {tuple(reference.shape)}")

    def forward(
        self,
        query: torch.Tensor,
        reference: torch.Tensor,
        value: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query [B, Nq, d], reference [B, Nq, 1|2], value [B, T, d], mask [B, T] (True = pad) -> [B, Nq, d]."""
        B, Nq, _ = query.shape
        T = value.shape[1]
        v = self.value_proj(value)
        if padding_mask is not None:
            v = v.masked_fill(padding_mask[..., None], 0.0)
        v = v.view(B, T, self.num_heads, self.dim // self.num_heads)
        weights = self.attention_weights(query).view(B, Nq, self.num_heads, self.num_points).softmax(-1)
        locations = self.sampling_locations(query, reference, T)
        return self.output_proj(deformable_attention_1d(v, locations, weights))
