"""The values every numeric setting of the config may take (``psftr_core.config`` checks
every int and float field against :data:`RANGES`: presets, ``--config``, ``--set``,
checkpoint configs)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """``low`` to ``high``, each end included unless open; ``str`` writes it as ``[0, 1)``."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        return (value > self.low if self.low_open else value >= self.low) and (
            value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        low, high = (str(int(end)) if float(end).is_integer() else repr(end) for end in (self.low, self.high))
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


_FRACTION, _OPEN_FRACTION, _FRACTION_BELOW_1 = Range(0, 1), Range(0, 1, low_open=True), Range(0, 1, high_open=True)
_COEFFICIENT = Range(0, 10_000)  # loss coefficients and matching costs: 0 = off
_EPOCHS, _LR = Range(1, 100_000), Range(0, 10, low_open=True)

# Every int and float field (a tuple field: each item; null is allowed where the type is optional); nan and
# inf are refused everywhere. The upper bounds are far above any real use and keep a typo (a few extra
# zeros) from reaching the allocator: 10^9 queries would ask for terabytes.
RANGES: dict[str, Range] = {
    "model.feature_dim": Range(1, 16_384), "model.text_dim": Range(1, 16_384), "model.hidden_dim": Range(1, 8_192),
    "model.num_heads": Range(1, 256), "model.enc_layers": Range(0, 64), "model.dec_layers": Range(1, 64),
    "model.num_queries": Range(1, 10_000), "model.enc_points": Range(1, 64), "model.dec_points": Range(1, 64),
    "model.dim_feedforward": Range(1, 65_536), "model.dropout": _FRACTION_BELOW_1, "model.num_groups": Range(1, 8_192),
    "model.logit_scale": Range(0, 10_000, low_open=True), "model.roi_size": Range(1, 1_024),
    "model.roi_samples_per_bin": Range(1, 64), "model.roi_logit_weight": _FRACTION,
    "train.lr": _LR, "train.lr_backbone": _LR, "train.lr_linear_proj_mult": Range(0, 1_000),
    "train.weight_decay": Range(0, 100), "train.clip_max_norm": Range(0, 1e6),  # 0 = no clipping
    "train.epochs": _EPOCHS, "train.lr_drop_epochs": _EPOCHS, "train.lr_drop_factor": _OPEN_FRACTION,
    "train.batch_size": Range(1, 65_536), "train.focal_alpha": _FRACTION, "train.focal_gamma": Range(0, 100),
    **{f"train.{n}_loss_coef": _COEFFICIENT for n in ("cls", "seg", "iou", "actionness", "salient", "snippet_cls")},
    **{f"train.set_cost_{n}": _COEFFICIENT for n in ("class", "seg", "iou")},
    "train.seed": Range(-(2**63), 2**64 - 1),  # what torch.manual_seed accepts
    "train.calibration_epochs": _EPOCHS, "train.vocab_dropout": _FRACTION,
    "train.calibration_folds": Range(1, 3), "train.calibration_prior_margin": _FRACTION,
    "train.calibration_localizer_margin": _FRACTION,
    "data.slice_size": Range(1, 65_536), "data.slice_overlap": _FRACTION_BELOW_1,
    "data.inference_slice_overlap": _FRACTION_BELOW_1, "data.resize_length": Range(1, 65_536),
    "data.min_instance_integrity": _OPEN_FRACTION,
    "inference.topk": Range(1, 100_000), "inference.nms_iou": _OPEN_FRACTION, "inference.roi_weight": _FRACTION,
    "inference.contrast_weight": _FRACTION, "inference.score_threshold": _FRACTION,
}
