"""Semantics-Guided Query Generation (SGQG).

Learnable queries ``Q = Embedding(Nq, 2d)`` split into a positional part ``q_pos`` and
a content part ``q_c``; the first reference centre is ``r = σ(Linear(q_pos))``.
Each layer:

1. query self-attention, ``q = k = q_c + q_pos``: ``Q̄ = LN(q_c + SA)``;
2. Semantic Prompt Infusion (eq. 3): ``Q̃ = FFN(LN(CA(Q̄ + q_pos, T̂, T̂) + q_c))``,
   the residual taken from the layer's content query as the method states
   (switched off: ``Q̃ = Q̄`` and no parameters);
3. Contextual Visual Anchoring (eq. 4): ``Q̂ = FFN(LN(DA(Q̃ + q_pos, F̂, ref) + Q̃))``;
4. segment refinement: a per-layer MLP(d→d→d→2) adds (Δc, Δw) to the reference in
   inverse-sigmoid space. Layer 0 has a centre reference only, so its width is
   ``σ(Δw)`` (bias −2 at init). The new segment is this layer's prediction and,
   detached, the next layer's reference.

Segments are (centre, width) as fractions of each video's valid length; the
deformable attention gets them scaled by ``T_valid / T``.
"""

from __future__ import annotations

import torch
from torch import nn

from psftr_core.config import ModelConfig
from psftr_core.model.deformable_attention import DeformableAttention1D
from psftr_core.model.layers import FFN, MLP, inverse_sigmoid


class SGQGLayer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, heads, ffn, p = cfg.hidden_dim, cfg.num_heads, cfg.dim_feedforward, cfg.dropout
        self.dropout = nn.Dropout(p)
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=p, batch_first=True)
        self.norm_self = nn.LayerNorm(d)
        self.use_text_to_query = cfg.use_text_to_query
        if cfg.use_text_to_query:
            self.text_cross_attn = nn.MultiheadAttention(d, heads, dropout=p, batch_first=True)
            self.norm_text = nn.LayerNorm(d)
            self.ffn_text = FFN(d, ffn, p)
        self.deform_attn = DeformableAttention1D(d, heads, cfg.dec_points)
        self.norm_video = nn.LayerNorm(d)
        self.ffn_video = FFN(d, ffn, p)

    def forward(
        self,
        content: torch.Tensor,
        query_pos: torch.Tensor,
        reference: torch.Tensor,
        memory: torch.Tensor,
        mask: torch.Tensor,
        text: torch.Tensor | None,
    ) -> torch.Tensor:
        """content/query_pos [B, Nq, d], reference [B, Nq, 1|2] (padded-length fractions),
        memory [B, T, d], mask [B, T], text [B, K, d] or None -> Q̂ [B, Nq, d]."""
        q = content + query_pos
        q_bar = self.norm_self(content + self.dropout(self.self_attn(q, q, content, need_weights=False)[0]))
        if self.use_text_to_query:
            q_a = self.text_cross_attn(q_bar + query_pos, text, text, need_weights=False)[0]
            q_tilde = self.ffn_text(self.norm_text(content + self.dropout(q_a)))
        else:
            q_tilde = q_bar
        q_da = self.deform_attn(q_tilde + query_pos, reference, memory, mask)
        return self.ffn_video(self.norm_video(q_tilde + self.dropout(q_da)))


class SGQGDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.hidden_dim
        self.hidden_dim = d
        self.query_embed = nn.Embedding(cfg.num_queries, 2 * d)
        self.reference_points = nn.Linear(d, 1)
        self.layers = nn.ModuleList(SGQGLayer(cfg) for _ in range(cfg.dec_layers))
        self.segment_heads = nn.ModuleList(MLP(d, d, 2, 3) for _ in range(cfg.dec_layers))
        nn.init.xavier_uniform_(self.reference_points.weight)
        nn.init.zeros_(self.reference_points.bias)
        for head in self.segment_heads:
            nn.init.zeros_(head.layers[-1].weight)
            nn.init.zeros_(head.layers[-1].bias)
        nn.init.constant_(self.segment_heads[0].layers[-1].bias[1:], -2.0)

    def forward(
        self, memory: torch.Tensor, mask: torch.Tensor, valid_ratio: torch.Tensor, text: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """memory [B, T, d], mask [B, T], valid_ratio [B], text [B, K, d] or None.

        Returns per layer the query features Q̂ [B, Nq, d] and segments [B, Nq, 2]
        ((centre, width) in [0, 1] of the valid length).
        """
        B = memory.shape[0]
        query_pos, content = self.query_embed.weight.split(self.hidden_dim, dim=1)
        query_pos = query_pos[None].expand(B, -1, -1)
        content = content[None].expand(B, -1, -1)
        reference = self.reference_points(query_pos).sigmoid()  # [B, Nq, 1] centre
        if text is not None:
            text = text.expand(B, -1, -1)
        scale = valid_ratio.view(B, 1, 1)
        hidden, segments = [], []
        for layer, head in zip(self.layers, self.segment_heads):
            content = layer(content, query_pos, reference * scale, memory, mask, text)
            delta = head(content)
            if reference.shape[-1] == 1:  # first layer: refine the centre, predict the width
                logits = torch.cat((delta[..., :1] + inverse_sigmoid(reference), delta[..., 1:]), dim=-1)
            else:
                logits = delta + inverse_sigmoid(reference)
            segment = logits.sigmoid()
            hidden.append(content)
            segments.append(segment)
            reference = segment.detach()
        return hidden, segments
