"""PSFTR in plain PyTorch (imports torch: import this package lazily from the CLI)."""

from psftr_core.model.deformable_attention import DeformableAttention1D, deformable_attention_1d
from psftr_core.model.layers import MaskedGroupNorm
from psftr_core.model.position_encoding import sine_position_encoding
from psftr_core.model.psftr import PAD_SALIENCY_LOGIT, PSFTR
from psftr_core.model.roi_align import roi_align_1d
from psftr_core.model.spde import SPDE, prototype_attention

__all__ = [
    "PSFTR",
    "PAD_SALIENCY_LOGIT",
    "DeformableAttention1D",
    "deformable_attention_1d",
    "roi_align_1d",
    "MaskedGroupNorm",
    "sine_position_encoding",
    "SPDE",
    "prototype_attention",
]
