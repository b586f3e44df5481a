"""Semantic Synergy-Aware Encoding (SSAE).

Each layer refines video and text within each modality first, then across them:

1. ``F̃ = FFN(LN(F + DA(F + pos, F)))``: deformable self-attention on the snippets;
2. ``T̃ = LN(T + SA(T))``: self-attention over the K text tokens (no positional
   encoding, so the layer is equivariant to the class order);
3. text → vision (eq. 1): ``F̂ = FFN(LN(CA(F̃ + pos, T̃, T̃) + F̃))``;
4. vision → text (eq. 2): ``T̂ = FFN(LN(CA(T̃, F̃ + pos, F̃) + T̃))``, padded snippets
   masked out of the keys.

Steps 3 and 4 both read (F̃, T̃). A switched-off step passes its input through and
creates no parameters. Text parts whose output nobody reads are not built either:
vision-to-text of the last layer without text-to-query, and the whole text branch
when neither text-to-vision nor text-to-query is on (vision-to-text alone then has no
effect). The FFN blocks are post-norm with their own residual (DETR / TadTR).
"""

from __future__ import annotations

import torch
from torch import nn

from psftr_core.config import ModelConfig
from psftr_core.model.deformable_attention import DeformableAttention1D
from psftr_core.model.layers import FFN


class SSAELayer(nn.Module):
    """One SSAE layer; each text part is built only when its output is used."""

    def __init__(self, cfg: ModelConfig, text_self_attn: bool, text_to_vision: bool, vision_to_text: bool) -> None:
        super().__init__()
        d, heads, ffn, p = cfg.hidden_dim, cfg.num_heads, cfg.dim_feedforward, cfg.dropout
        self.deform_attn = DeformableAttention1D(d, heads, cfg.enc_points)
        self.dropout = nn.Dropout(p)
        self.norm_video = nn.LayerNorm(d)
        self.ffn_video = FFN(d, ffn, p)
        self.use_text_self_attn = text_self_attn
        self.use_text_to_vision = text_to_vision
        self.use_vision_to_text = vision_to_text
        if text_self_attn:
            self.text_self_attn = nn.MultiheadAttention(d, heads, dropout=p, batch_first=True)
            self.norm_text = nn.LayerNorm(d)
        if text_to_vision:
            self.text_to_vision = nn.MultiheadAttention(d, heads, dropout=p, batch_first=True)
            self.norm_t2v = nn.LayerNorm(d)
            self.ffn_t2v = FFN(d, ffn, p)
        if vision_to_text:
            self.vision_to_text = nn.MultiheadAttention(d, heads, dropout=p, batch_first=True)
            self.norm_v2t = nn.LayerNorm(d)
            self.ffn_v2t = FFN(d, ffn, p)

    def forward(
        self,
        video: torch.Tensor,
        pos: torch.Tensor,
        reference: torch.Tensor,
        mask: torch.Tensor,
        text: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """video/pos [B, T, d], reference [B, T, 1], mask [B, T], text [B or 1, K, d] or None."""
        # Intra-modal: deformable self-attention on video, self-attention on text.
        attended = self.deform_attn(video + pos, reference, video, mask)
        video = self.ffn_video(self.norm_video(video + self.dropout(attended)))
        if not self.use_text_self_attn or text is None:
            return video, text
        text = self.norm_text(text + self.dropout(self.text_self_attn(text, text, text, need_weights=False)[0]))
        B = video.shape[0]
        text_b = text.expand(B, -1, -1)

        # Cross-modal, both directions from the same (F̃, T̃).
        new_video, new_text = video, text
        if self.use_text_to_vision:
            f_a = self.text_to_vision(video + pos, text_b, text_b, need_weights=False)[0]
            new_video = self.ffn_t2v(self.norm_t2v(video + self.dropout(f_a)))
        if self.use_vision_to_text:
            t_a = self.vision_to_text(text_b, video + pos, video, key_padding_mask=mask, need_weights=False)[0]
            new_text = self.ffn_v2t(self.norm_v2t(text_b + self.dropout(t_a)))
        return new_video, new_text


class SSAEEncoder(nn.Module):
    """Stack of ``enc_layers`` SSAE layers; returns the memory F̂ and per-video text T̂."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers = []
        for i in range(cfg.enc_layers):
            # This layer's text output is read by the decoder (text-to-query) or by a
            # later layer's text-to-vision; otherwise vision-to-text here is dead code.
            text_out_used = cfg.use_text_to_query or (cfg.use_text_to_vision and i < cfg.enc_layers - 1)
            layers.append(
                SSAELayer(
                    cfg,
                    text_self_attn=cfg.use_text_to_vision or text_out_used,
                    text_to_vision=cfg.use_text_to_vision,
                    vision_to_text=cfg.use_vision_to_text and text_out_used,
                )
            )
        self.layers = nn.ModuleList(layers)

    def forward(
        self, video: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor, text: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """video/pos [B, T, d], mask [B, T], text [B or 1, K, d] -> ([B, T, d], [B or 1, K, d])."""
        B, T, _ = video.shape
        # Snippet t of a valid length T_v sits at (t + 0.5) / T_v of the valid part,
        # i.e. (t + 0.5) / T of the padded input (the valid-ratio scaling cancels).
        reference = ((torch.arange(T, device=video.device, dtype=video.dtype) + 0.5) / T).view(1, T, 1)
        reference = reference.expand(B, T, 1)
        for layer in self.layers:
            video, text = layer(video, pos, reference, mask, text)
        return video, text
