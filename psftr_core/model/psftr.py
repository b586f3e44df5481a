"""The full PSFTR model: input projection, SSAE encoder, SGQG decoder, SPDE and heads.

Inputs: CLIP image features ``[B, T, D]`` with a padding mask
``[B, T]`` (True = padding, padding only after the valid snippets) and CLIP text
embeddings of the K candidate classes, ``[K, D_text]`` (one vocabulary for the batch)
or ``[B, K, D_text]``. The vocabulary is an input, not a parameter: the same weights
run with any K and any class order, and the class logits follow that order.

Padding never influences the valid outputs: padded features are zeroed before the
temporal convolution (which then sees exactly the zero padding of an unpadded
sequence), the input GroupNorm takes its statistics over valid snippets only, the
positional encoding and all references are fractions of the valid length, deformable
attention reads zeros at padded snippets, and every attention over snippets masks
them. A video thus gives the same outputs whatever the padding of its batch.

The forward pass returns raw outputs; turning them into scored detections is
inference's job (:class:`psftr_core.infer.scoring.PostProcess`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from psftr_core.config import ModelConfig, PSFTRConfig, validate_config
from psftr_core.errors import InputError
from psftr_core.model.decoder import SGQGDecoder
from psftr_core.model.encoder import SSAEEncoder
from psftr_core.model.layers import MaskedGroupNorm
from psftr_core.model.position_encoding import sine_position_encoding
from psftr_core.model.spde import SPDE

PAD_SALIENCY_LOGIT = -1e4  # saliency logit written at padded snippets (σ ≈ 0); mask them in losses


class PSFTR(nn.Module):
    """Progressive Semantic Fusion Transformer for zero-shot temporal action localization.

    ``forward(features, mask, text)`` returns a dict:

    - ``pred_logits`` [B, Nq, K]: ``τ · cos(Linear(Q̂_cls), text_k)`` of the last layer;
    - ``pred_segments`` [B, Nq, 2]: (centre, width) in [0, 1] of each window's valid
      length (for an unpadded window, of the window);
    - ``pred_actionness`` [B, Nq, 1]: actionness logits (absent when
      ``use_actionness`` is off);
    - ``saliency_logits`` [B, T]: one logit per snippet, ``PAD_SALIENCY_LOGIT`` at
      padding (absent when ``use_saliency`` is off);
    - ``clip_features`` [B, T, D_text] and ``snippet_logits`` [B, T, K] (only with
      ``use_visual_text_map``): the features mapped into the text space (zeros at padding)
      and ``τ · cos(mapped_t, text_k)`` per snippet, the map's training signal;
    - ``aux_outputs``: one dict with ``pred_logits`` / ``pred_segments`` /
      ``pred_actionness`` per decoder layer but the last.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        validate_config(PSFTRConfig(model=cfg))
        self.cfg = cfg
        D, d = cfg.feature_dim, cfg.hidden_dim
        self.temporal_conv = nn.Conv1d(D, D, kernel_size=3, padding=1)  # Ṽ: temporal context
        self.input_proj = nn.Linear(D, d)  # the 1×1 Conv1d input projection
        self.input_norm = MaskedGroupNorm(cfg.num_groups, d)
        nn.init.xavier_uniform_(self.input_proj.weight)
        nn.init.zeros_(self.input_proj.bias)
        if cfg.uses_text:
            self.text_proj = nn.Linear(cfg.text_dim, d)
        self.encoder = SSAEEncoder(cfg)
        self.decoder = SGQGDecoder(cfg)
        self.spde = SPDE(cfg.spde_variant, D, d)
        self.class_proj = nn.Linear(d, cfg.text_dim)
        if cfg.use_actionness:
            self.actionness_head = nn.Linear(d, 1)
            nn.init.constant_(self.actionness_head.bias, -math.log(99.0))  # prior 0.01
        if cfg.use_visual_text_map:
            # Residual on the identity, starting at zero: the map begins as raw CLIP space
            # (where raw similarity works) and learns only what the seen classes teach.
            self.visual_text_map = nn.Linear(D, cfg.text_dim)
            nn.init.zeros_(self.visual_text_map.weight)
            nn.init.zeros_(self.visual_text_map.bias)
        if cfg.use_saliency:
            self.saliency_head = nn.Sequential(
                nn.Conv1d(d, d, kernel_size=3, padding=1), nn.LeakyReLU(), nn.Conv1d(d, 1, kernel_size=1)
            )

    # ------------------------------------------------------------------ inputs

    def check_inputs(
        self, features: torch.Tensor, mask: torch.Tensor | None, text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validate shapes; returns (features, mask [B, T] bool, text [B or 1, K, D_text])."""
        cfg = self.cfg
        if features.dim() != 3 or features.shape[-1] != cfg.feature_dim or features.shape[1] < 1:
            raise InputError(
                f"video features must have shape [batch, snippets, {cfg.feature_dim}], got {tuple(features.shape)}; "
                "check that the features come from the CLIP model the checkpoint was trained with"
            )
        B, T, _ = features.shape
        if mask is None:
            mask = torch.zeros(B, T, dtype=torch.bool, device=features.device)
        if mask.shape != (B, T) or mask.dtype != torch.bool:
            raise InputError(
                f"padding mask must be a bool tensor of shape {(B, T)}, got {tuple(mask.shape)} {mask.dtype}"
            )
        lengths = (~mask).sum(dim=1)
        if bool((lengths == 0).any()):
            raise InputError("every video in the batch needs at least one valid (unpadded) snippet")
        if not torch.equal(mask, torch.arange(T, device=mask.device)[None, :] >= lengths[:, None]):
            raise InputError("padding must come after the valid snippets of each video (mask = [False..., True...])")
        if text.dim() == 2:
            text = text[None]
        if text.dim() != 3 or text.shape[-1] != cfg.text_dim or text.shape[1] < 1 or text.shape[0] not in (1, B):
            raise InputError(
                f"text embeddings must have shape [classes, {cfg.text_dim}] or [{B}, classes, {cfg.text_dim}] "
                f"with at least one class, got {tuple(text.shape)}"
            )
        return features, mask, text.to(features.dtype)

    # ------------------------------------------------------------------ stages

    def encode(
        self, features: torch.Tensor, mask: torch.Tensor | None, text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Input projection + SSAE. Returns memory F̂ [B, T, d] and text T̂ [B or 1, K, d] (None without text)."""
        features, mask, text = self.check_inputs(features, mask, text)
        return self._encode(features.masked_fill(mask[..., None], 0.0), mask, text)

    def _encode(
        self, video: torch.Tensor, mask: torch.Tensor, text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.temporal_conv(video.transpose(1, 2)).transpose(1, 2)
        x = self.input_norm(self.input_proj(x.masked_fill(mask[..., None], 0.0)), mask)
        pos = sine_position_encoding(mask, self.cfg.hidden_dim).to(x.dtype)
        text_hidden = self.text_proj(text) if self.cfg.uses_text else None
        return self.encoder(x, pos, mask, text_hidden)

    def to_text_space(self, features: torch.Tensor) -> torch.Tensor:
        """CLIP image features [..., D] as the inference-time CLIP scores read them: ``x + Linear(x)``
        with ``use_visual_text_map``, else ``x`` unchanged. Per snippet, so a whole video maps
        as its windows do."""
        if not self.cfg.use_visual_text_map:
            return features
        return features + self.visual_text_map(features)

    def class_logits(self, queries: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """τ · cos(Linear(queries), text): queries [B, Nq, d], text [B or 1, K, D_text] -> [B, Nq, K]."""
        q = F.normalize(self.class_proj(queries), dim=-1)
        t = F.normalize(text, dim=-1)
        return self.cfg.logit_scale * torch.matmul(q, t.transpose(1, 2))

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None, text: torch.Tensor) -> dict:
        """features [B, T, D], mask [B, T] bool (True = padding) or None, text [K, D_text] or [B, K, D_text]."""
        features, mask, text = self.check_inputs(features, mask, text)
        video = features.masked_fill(mask[..., None], 0.0)
        memory, text_hidden = self._encode(video, mask, text)
        valid_ratio = (~mask).sum(dim=1).to(memory.dtype) / mask.shape[1]
        hidden, segments = self.decoder(memory, mask, valid_ratio, text_hidden if self.cfg.use_text_to_query else None)
        prototype = self.spde.prototype(text, video, mask) if self.cfg.spde_variant != "none" else None

        layers = []
        for h, seg in zip(hidden, segments):
            out = {"pred_logits": self.class_logits(self.spde(h, prototype), text), "pred_segments": seg}
            if self.cfg.use_actionness:
                out["pred_actionness"] = self.actionness_head(h)
            layers.append(out)
        outputs = dict(layers[-1])
        if self.cfg.use_visual_text_map:
            mapped = self.to_text_space(video).masked_fill(mask[..., None], 0.0)
            outputs["clip_features"] = mapped
            outputs["snippet_logits"] = self.cfg.logit_scale * torch.matmul(
                F.normalize(mapped, dim=-1), F.normalize(text, dim=-1).transpose(1, 2))
        if self.cfg.use_saliency:
            m = memory.masked_fill(mask[..., None], 0.0).transpose(1, 2)
            saliency = self.saliency_head(m).squeeze(1)
            outputs["saliency_logits"] = saliency.masked_fill(mask, PAD_SALIENCY_LOGIT)
        outputs["aux_outputs"] = layers[:-1]
        return outputs
