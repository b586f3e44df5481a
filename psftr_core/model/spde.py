"""Semantic Prototype-Driven Enhancement (SPDE) (eq. 5-6 of the paper).

Prototype attention (eq. 5): for each class k, ``V̂_k = Σ_t softmax_t(Tx_k · V_t) V_t``
over the valid snippets of the raw CLIP features, one text-conditioned visual
prototype per class. Their mean over classes, ``p = MeanPool_k(V̂)``, enhances the
decoder queries before classification (eq. 6), by variant (Table 3):

- ``none``: ``Q̂_cls = Q̂`` (no parameters);
- ``concat_mlp``: ``Q̂_cls = MLP([Q̂ ; p])`` (2-layer, (d + D) → d → d);
- ``residual``: ``Q̂_cls = Q̂ + Linear(p)``;
- ``mlp_residual``: ``Q̂_cls = Q̂ + MLP(p)`` (2-layer, D → d → d; the paper's best).

The mean over classes makes ``p`` independent of the class order.
"""

from __future__ import annotations

import torch
from torch import nn

from psftr_core.model.layers import MLP


def prototype_attention(text: torch.Tensor, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 5. text [B or 1, K, D], video [B, T, D] (zeros at padding), mask [B, T] -> V̂ [B, K, D]."""
    scores = torch.matmul(text, video.transpose(1, 2))  # [B, K, T]
    scores = scores.masked_fill(mask[:, None, :], float("-inf"))
    return torch.matmul(scores.softmax(dim=-1), video)


class SPDE(nn.Module):
    def __init__(self, variant: str, feature_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.variant = variant
        if variant == "concat_mlp":
            self.fuse = MLP(hidden_dim + feature_dim, hidden_dim, hidden_dim, 2)
        elif variant == "residual":
            self.fuse = nn.Linear(feature_dim, hidden_dim)
        elif variant == "mlp_residual":
            self.fuse = MLP(feature_dim, hidden_dim, hidden_dim, 2)
        elif variant != "none":
            raise ValueError(f"unknown SPDE variant {variant!r}")

    def prototype(self, text: torch.Tensor, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The pooled prototype p [B, D] (eq. 5 + MeanPool over classes)."""
        return prototype_attention(text, video, mask).mean(dim=1)

    def forward(self, queries: torch.Tensor, prototype: torch.Tensor | None) -> torch.Tensor:
        """queries Q̂ [B, Nq, d], prototype p [B, D] -> Q̂_cls [B, Nq, d] (eq. 6)."""
        if self.variant == "none":
            return queries
        p = prototype[:, None, :]
        if self.variant == "concat_mlp":
            return self.fuse(torch.cat((queries, p.expand(-1, queries.shape[1], -1)), dim=-1))
        return queries + self.fuse(p)
