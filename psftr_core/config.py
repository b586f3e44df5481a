"""Typed configuration for PSFTR: model, training, data and inference settings.

A config is a :class:`PSFTRConfig` of four dataclass sections. It is built from a
preset (``preset("thumos14")`` / ``preset("anet")``, the values of Table 5 of the
method: one preset per built-in dataset, the overrides its descriptor in
``psftr_core.data.builtins`` holds), optionally merged with a YAML file (:func:`load_config`) and with dotted
command-line overrides (:func:`apply_overrides`, e.g. ``"model.dec_layers=3"``).
Checkpoints store :func:`config_to_dict` (plain Python types only, so
``torch.load(weights_only=True)`` can read them back) and rebuild it with
:func:`config_from_dict`.

Unknown keys and badly typed values raise :class:`~psftr_core.errors.InputError`
naming the key and listing the valid ones; numbers must be finite and within :data:`RANGES`
(:func:`validate_config`, run by every loader: YAML, ``--set``, a checkpoint's config). Echoed
values are cut (:func:`shown`); YAML is read by :mod:`psftr_core.io.yaml_file`, which refuses
alias bombs. This module does not import torch.

Choices not fixed by the method text (documented here once):

- ``train.set_cost_*`` (Hungarian matching costs) follow the TadTR defaults 6 / 5 / 2;
  GAP matches with a class cost of 2 (``train.set_cost_class=2``).
- ``train.cls_loss``: the method text trains the class logits with cross-entropy
  (``"ce"``); the default is the softmax focal loss (``"focal"``, γ = ``focal_gamma``),
  which down-weights queries already classified well. The matcher's class cost follows
  it (focal-style cost, or DETR's ``-p`` for ``"ce"``).
- ``train.lr_drop_epochs`` (one step decay ×0.1) are our choice: epoch 25 of 30 on
  THUMOS14, 16 of 20 on ActivityNet.
- ``train.lr_backbone``: the learning rate of the parameters whose name contains one of
  ``train.lr_backbone_names`` (the temporal convolution, the one layer that reads the
  raw CLIP features: PSFTR's stand-in for a backbone, the CLIP encoder itself being
  frozen). Table 5 lists 1e-5 (THUMOS14) and 1e-2 (ActivityNet) for the backbone; the
  presets leave it null, i.e. the base ``train.lr``, as earlier versions trained it.
- ``train.calibration_epochs``: epochs of the calibration model that chooses the
  inference settings on held-out seen classes (``psftr_core.train.calibration``); null =
  ``train.epochs``.
- ``data.resize_length`` for ActivityNet is 128 = ``slice_size`` of Table 5: every
  video is resized (nearest) to one window of 128 snippets.
- ``model.dim_feedforward`` 1024 and ``model.dropout`` 0.1 follow TadTR's THUMOS14
  setting; ``model.roi_logit_weight`` 0.5 mixes learned and ROI-CLIP logits equally.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import reprlib
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from psftr_core.config_ranges import RANGES
from psftr_core.data.builtins import builtin_dataset, builtin_known_as, builtin_names
from psftr_core.defaults import DEFAULT_PROMPT
from psftr_core.errors import InputError
from psftr_core.io.atomic import write_text
from psftr_core.io.yaml_file import read_yaml_file

SPDE_VARIANTS = ("none", "concat_mlp", "residual", "mlp_residual")
DEFAULT_PRESET = "thumos14"  # the dataclass defaults hold its values; datasets that are no built-in use it
SCORINGS = ("contrast", "model")  # inference.scoring (psftr_core.infer.scoring)
NMS_MODES = ("all", "cross_window")  # inference.nms
INFERENCE_METHODS = ("psftr", "localizer")  # inference.method
CLS_LOSSES = ("focal", "ce")  # train.cls_loss
SCORING_KEYS = ("scoring", "contrast_weight", "roi_weight")  # inference keys that score the model's detections
# Keys of older configs and checkpoints, still accepted (with a DeprecationWarning) and ignored.
REMOVED_KEYS = {"data.feature_stride": "nothing read it; the frames per feature are set when extracting (--stride)"}
# Values of older configs and checkpoints under their new name (with a DeprecationWarning):
# "calibrated" named the CLIP contrast scoring, which was easy to confuse with the
# held-out-class calibration of psftr train.
RENAMED_VALUES = {("inference.scoring", "calibrated"): "contrast"}
# Keys added after configs were first saved, with the value a saved config without them
# meant (its model was built before the key existed): config_from_dict fills them in.
ADDED_KEYS = {"model.use_visual_text_map": False, "train.calibration_folds": 1, "train.calibration_prior_margin": 0.0,
              "train.calibration_localizer_margin": 0.0}


@dataclass
class ModelConfig:
    """Architecture of :class:`psftr_core.model.PSFTR`.

    The vocabulary is an input of the model, so there is no ``num_classes``.
    """

    feature_dim: int = 512  # D of the input CLIP image features
    text_dim: int = 512  # width of the CLIP text embeddings
    hidden_dim: int = 512  # d of the transformer
    num_heads: int = 8  # heads of every SA / CA / DA (Table 6)
    enc_layers: int = 2
    dec_layers: int = 5
    num_queries: int = 40
    enc_points: int = 4  # P of the encoder deformable attention
    dec_points: int = 4  # P of the decoder deformable attention
    dim_feedforward: int = 1024
    dropout: float = 0.1
    num_groups: int = 32  # GroupNorm groups of the input projection
    logit_scale: float = 100.0  # τ of the scaled cosine class logits
    # Ablation switches (a path that is off creates no parameters).
    # eq. 1. Off by default (a departure from the paper; true = its architecture): on development
    # data the model scored better without it in 4 of 5 cells (docs/transfer_study.md).
    use_text_to_vision: bool = False
    use_vision_to_text: bool = True  # eq. 2
    use_text_to_query: bool = True  # eq. 3
    spde_variant: str = "mlp_residual"  # one of SPDE_VARIANTS (eq. 5-6, Table 3)
    use_actionness: bool = True
    use_saliency: bool = True
    # A learned map of the CLIP image features into the text space (x + Linear(x), starting
    # at the identity), trained by a snippet-level class loss on the seen classes; the
    # ROI-CLIP logits and the contrast curves at inference read the mapped features.
    # Off = the paper's architecture (raw CLIP features there).
    use_visual_text_map: bool = True
    # Inference-time ROI-CLIP logits (no parameters).
    use_roi_logits: bool = True
    roi_size: int = 16  # ROIalign_size: bins per segment
    roi_samples_per_bin: int = 2
    roi_logit_weight: float = 0.5  # final logits = (1-w)·learned + w·ROI

    @property
    def uses_text(self) -> bool:
        """Whether the transformer reads the text at all (else no text branch is built).

        Vision-to-text only changes the text, so without text-to-vision or
        text-to-query nothing reads its result.
        """
        return self.use_text_to_query or (self.use_text_to_vision and self.enc_layers > 0)


@dataclass
class TrainConfig:
    """Optimisation, loss and matching settings.

    The one source of the loss coefficients (``*_loss_coef``), the Hungarian matching
    costs (``set_cost_*``) and the focal parameters: ``psftr_core.train.losses.build_criterion``
    and ``psftr_core.train.matcher.build_matcher`` read them from here.
    """

    lr: float = 1e-4
    lr_backbone: float | None = None  # null = lr (see the module docstring)
    lr_backbone_names: tuple[str, ...] = ("temporal_conv",)
    lr_linear_proj_names: tuple[str, ...] = ("sampling_offsets", "reference_points")
    lr_linear_proj_mult: float = 0.1
    weight_decay: float = 1e-4
    clip_max_norm: float = 0.1
    epochs: int = 30
    lr_drop_epochs: tuple[int, ...] = (25,)
    lr_drop_factor: float = 0.1
    batch_size: int = 16
    cls_loss_coef: float = 2.0
    seg_loss_coef: float = 5.0
    iou_loss_coef: float = 2.0
    actionness_loss_coef: float = 3.0
    salient_loss_coef: float = 3.0
    snippet_cls_loss_coef: float = 1.0  # the visual→text map's snippet class loss (model.use_visual_text_map)
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    cls_loss: str = "focal"  # one of CLS_LOSSES: "focal" (softmax focal) or "ce" (cross-entropy, the paper's)
    set_cost_class: float = 6.0  # GAP: 2
    set_cost_seg: float = 5.0
    set_cost_iou: float = 2.0
    aux_loss: bool = True
    seed: int = 42
    calibration_epochs: int | None = None  # null = epochs (psftr_core.train.calibration)
    # Held-out class folds measured (disjoint; one calibration model each) and averaged:
    # cross-fitting (psftr_core.train.calibration, docs/calibration_rules.md).
    calibration_folds: int = 1
    # Shrinkage toward the prior choice (CLIP contrast): another setting must beat it on the
    # held-out classes by more than this much average mAP (a fraction: 0.02 = 2 points; 0 =
    # the held-out argmax; 1 = always the prior, the calibration then sets detect's threshold).
    # 1 by the calibration study on development data (docs/calibration_rules.md).
    calibration_prior_margin: float = 1.0
    # The same for the training-free localizer: it replaces the prior when it leads by more
    # than this (0.2 = 20 points: the smallest margin with no regret on development data).
    calibration_localizer_margin: float = 0.2
    # Class dropout in [0, 1]: each step drops each seen class absent from the batch's ground
    # truth from the text vocabulary with this probability (psftr_core.train.vocabulary_dropout); 0 = off.
    vocab_dropout: float = 0.0


@dataclass
class DataConfig:
    """Windowing and text-prompt settings."""

    slice_size: int = 128
    slice_overlap: float = 0.75  # training windows (stride 32)
    inference_slice_overlap: float = 0.25  # test windows (stride 96)
    resize_length: int | None = None  # resize each whole video to this many snippets
    min_instance_integrity: float = 0.75  # keep an instance in a window if ≥ this inside
    prompt: str = DEFAULT_PROMPT
    # Prompt ensembling for the class names (runtime.text_source.class_prompt): several
    # templates, and/or a file of descriptions per class (YAML / TSV / GAP's JSON, as
    # detect's --actions-file; a relative path is in the dataset folder). Each class's
    # embedding is then the normalised mean of its texts' embeddings.
    prompts: tuple[str, ...] = ()
    descriptions_file: str | None = None


@dataclass
class InferenceConfig:
    """How detections are made from a trained model: one family of scorings
    (``psftr_core.infer.scoring`` has the formula), NMS and what is kept.

    The score of (query q, class k) is ``σ(actionness_q) · ((1 − w_c)·P + w_c·C)`` with
    ``P = softmax_k((1 − w_r)·learned logits + w_r·ROI-CLIP logits)`` and ``C`` the
    CLIP contrast over the segment; ``w_r = roi_weight``,
    ``w_c = contrast_weight``. Special cases: ``w_c = 1`` the CLIP contrast scoring;
    ``w_c = 0`` with ``w_r = 0.5`` the paper's, ``w_r = 1`` ROI-pooled CLIP logits only
    (GAP-style), ``w_r = 0`` the learned logits only.
    """

    topk: int = 100  # (query, class) pairs kept per window or video
    nms_iou: float = 0.4  # class-wise NMS across window overlaps
    # Shorthand for contrast_weight while that is null: "contrast" = 1 (default),
    # "model" = 0 (the paper's σ(actionness) × softmax(learned [+ ROI] logits)).
    scoring: str = "contrast"
    # "all" = class-wise NMS over every detection of a video (default); "cross_window" =
    # the paper's NMS, only between detections of different (overlapping) windows.
    nms: str = "all"
    # w_r in [0, 1]; null = the model's own mix (model.roi_logit_weight when
    # model.use_roi_logits, else 0). ROI-CLIP logits need no parameters, so any model can use them.
    roi_weight: float | None = None
    # w_c in [0, 1]; null = from scoring. A number here wins over scoring.
    contrast_weight: float | None = None
    score_threshold: float = 0.0  # drop detections scoring below this (0 = keep all)
    # "psftr" = the trained model; "localizer" = the training-free localizer on the same
    # features and text (the model is not run), e.g. where no scoring of the model beats it.
    method: str = "psftr"


@dataclass
class PSFTRConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "train": TrainConfig,
    "data": DataConfig,
    "inference": InferenceConfig,
}


# ---------------------------------------------------------------------------
# Presets (Table 5)


# ``small``: a model for one's own small dataset (tens of short clips), trained in minutes on
# a CPU: THUMOS14's settings with a smaller transformer, fewer epochs and short windows (the
# values of examples/train_override.yaml). Not from the paper: its Table 5 sizes are for
# hundreds of long videos, and on 8 clips of 8 s they trained for 9 minutes on 2 cores.
SMALL_PRESET = "small"
SMALL_PRESET_OVERRIDES = {
    "model": {"hidden_dim": 128, "enc_layers": 1, "dec_layers": 2, "num_queries": 20, "dim_feedforward": 256},
    "train": {"epochs": 12, "lr_drop_epochs": [10], "batch_size": 8},
    "data": {"slice_size": 64},
    "inference": {"topk": 50},
}
SMALL_DATASET_VIDEOS = 100  # a dataset that is no built-in, with fewer training videos, gets ``small``


def preset_names() -> tuple[str, ...]:
    """The valid preset names: those of the built-in datasets (``psftr_core.data.builtins``)
    and ``small``."""
    return (*builtin_names(), SMALL_PRESET)


def preset_for_dataset(dataset_name: str, train_videos: int | None = None) -> str:
    """The preset a dataset uses unless told otherwise: that of the built-in its name (or an
    alias, e.g. ``ActivityNet``) names; else ``small`` when it has fewer than
    ``SMALL_DATASET_VIDEOS`` training videos (``train_videos``, when known); else
    ``DEFAULT_PRESET``."""
    kind = builtin_known_as(dataset_name)
    if kind is not None:
        return kind.name
    if train_videos is not None and train_videos < SMALL_DATASET_VIDEOS:
        return SMALL_PRESET
    return DEFAULT_PRESET


def preset(name: str) -> PSFTRConfig:
    """The configuration of Table 5 for ``"thumos14"``, ``"anet"`` or another built-in (a fresh
    copy): the default config with the overrides of the built-in's descriptor; ``"small"``:
    THUMOS14's with :data:`SMALL_PRESET_OVERRIDES`."""
    if name == SMALL_PRESET:
        return validate_config(_merge(preset(DEFAULT_PRESET), SMALL_PRESET_OVERRIDES))
    kind = builtin_dataset(name)
    if kind is None:
        raise InputError(f"unknown preset {name!r}; valid presets: {', '.join(preset_names())}")
    return validate_config(_merge(PSFTRConfig(), {section: dict(values) for section, values in kind.preset.items()}))


# ---------------------------------------------------------------------------
# Type coercion from YAML values and override strings


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def number_type(tp: Any) -> type | None:
    """``int`` or ``float`` for a numeric field type (also optional, or a tuple of them), else None."""
    tp = _optional_inner(tp) or tp
    tp = typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else tp
    return tp if tp in (int, float) else None


def numeric_fields() -> dict[str, type]:
    """``{"section.key": int or float}`` for every numeric field of the config sections."""
    return {f"{section}.{name}": kind for section, cls in SECTIONS.items()
            for name, tp in _field_types(cls).items() if (kind := number_type(tp)) is not None}


SHOWN_CHARS = 80  # longest value echoed in an error message
_short_repr = reprlib.Repr()
_short_repr.maxstring = _short_repr.maxother = SHOWN_CHARS


def shown(value: Any, as_text: bool = False) -> str:
    """``repr(value)`` (``str`` with ``as_text``) cut to :data:`SHOWN_CHARS` characters: a value
    from a user file may be huge (reprlib bounds the work too, not just the text)."""
    text = str(value) if as_text else _short_repr.repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _type_name(tp: Any) -> str:
    if _optional_inner(tp) is not None:
        return f"{_type_name(_optional_inner(tp))} or null"
    if typing.get_origin(tp) is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _optional_inner(tp: Any) -> Any:
    """``X`` for ``Optional[X]`` / ``X | None``, else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (from YAML, or a string from an override) to type ``tp``."""

    def bad() -> InputError:
        return InputError(f"bad value {shown(value)} for config key {key}: expected {_type_name(tp)}")

    inner = _optional_inner(tp)
    if inner is not None:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "~", "")):
            return None
        return _coerce(value, inner, key)
    if typing.get_origin(tp) is tuple:
        item_tp = typing.get_args(tp)[0]
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("[") and text.endswith("]"):
                text = text[1:-1]
            items = [part.strip() for part in text.split(",") if part.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise bad()
        try:
            return tuple(_coerce(item, item_tp, key) for item in items)
        except InputError:
            raise bad() from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise bad()
    if tp in (int, float):
        # An int is a valid float, not the other way round; YAML 1.1 reads "1e-4" as a string.
        accepted = (int,) if tp is int else (int, float)
        try:
            if isinstance(value, accepted) and not isinstance(value, bool):
                return tp(value)
            if isinstance(value, str):
                return tp(value.strip())
        except (ValueError, OverflowError):  # OverflowError: an int too big for a float
            raise bad() from None
        raise bad()
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad()
    raise bad()  # pragma: no cover - every field uses one of the types above


def _merge_section(obj: Any, values: Any, section: str) -> Any:
    """A copy of dataclass ``obj`` with the keys of mapping ``values`` replaced."""
    if not isinstance(values, dict):
        raise InputError(f"config section {section!r} must be a mapping of keys to values, got {shown(values)}")
    hints = _field_types(type(obj))
    changes = {}
    for key, value in values.items():
        dotted = f"{section}.{key}"
        if dotted in REMOVED_KEYS:  # an older config or checkpoint: load it, without the key
            warnings.warn(f"config key {dotted} is no longer used and was dropped: {REMOVED_KEYS[dotted]}",
                          DeprecationWarning, stacklevel=2)
            continue
        renamed = RENAMED_VALUES.get((dotted, value)) if isinstance(value, str) else None
        if renamed is not None:
            warnings.warn(f"config value {dotted}={value} is now {dotted}={renamed}", DeprecationWarning, stacklevel=2)
            value = renamed
        if key not in hints:
            raise InputError(f"unknown config key {section}.{shown(key, as_text=True)}; "
                             f"valid keys of {section!r}: {', '.join(hints)}")
        changes[key] = _coerce(value, hints[key], f"{section}.{key}")
    return dataclasses.replace(obj, **changes)


def _merge(cfg: PSFTRConfig, data: Any) -> PSFTRConfig:
    if not isinstance(data, dict):
        raise InputError(f"a config must be a mapping with sections {', '.join(SECTIONS)}, got {type(data).__name__}")
    out = copy.deepcopy(cfg)
    for section, values in data.items():
        if section not in SECTIONS:
            raise InputError(f"unknown config section {shown(section)}; valid sections: {', '.join(SECTIONS)}")
        if values is None:
            continue
        setattr(out, section, _merge_section(getattr(out, section), values, section))
    return out


# ---------------------------------------------------------------------------
# Validation


# The string settings that name one of a few choices.
CHOICES = {"model.spde_variant": SPDE_VARIANTS, "train.cls_loss": CLS_LOSSES, "inference.scoring": SCORINGS,
           "inference.nms": NMS_MODES, "inference.method": INFERENCE_METHODS}


def validate_config(cfg: PSFTRConfig) -> PSFTRConfig:
    """Raise InputError for values no model or run can use; return ``cfg``: numbers finite
    and within :data:`RANGES`, choices among :data:`CHOICES`, then what relates several keys."""
    for key, kind in numeric_fields().items():
        value = _value_at(cfg, key)
        for item in value if isinstance(value, tuple) else (value,):
            if item is not None:
                _check_number(key, item, kind, value)
    for key, choices in CHOICES.items():
        value = _value_at(cfg, key)
        _need(value in choices, f"{key} must be one of {', '.join(choices)}, got {shown(value)}")
    _validate_model(cfg.model)
    _need("{}" in cfg.data.prompt, f"data.prompt must contain '{{}}' for the class name, got {shown(cfg.data.prompt)}")
    for template in cfg.data.prompts:
        _need("{}" in template, f"data.prompts: each template must contain '{{}}', got {shown(template)}")
    return cfg


def _value_at(cfg: PSFTRConfig, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


def _check_number(key: str, item: Any, kind: type, value: Any) -> None:
    """``item`` (one value of ``key``, whose whole value is ``value``, shown in messages)."""
    accepted = (int,) if kind is int else (int, float)
    _need(isinstance(item, accepted) and not isinstance(item, bool),
          f"config key {key} must be a {'whole number' if kind is int else 'number'}, got {shown(value)}")
    _need(math.isfinite(item), f"config key {key} must be a finite number, got {shown(value)}")
    allowed = RANGES.get(key)
    _need(allowed is None or item in allowed, f"config key {key} must be in {allowed}, got {shown(value)}")


def _validate_model(m: ModelConfig) -> None:
    for divisor in ("num_heads", "num_groups"):
        _need(m.hidden_dim % getattr(m, divisor) == 0,
              f"model.hidden_dim ({m.hidden_dim}) must be divisible by model.{divisor} ({getattr(m, divisor)})")
    if m.spde_variant != "none" or m.use_roi_logits or m.use_visual_text_map:
        _need(m.feature_dim == m.text_dim,
              f"model.feature_dim ({m.feature_dim}) must equal model.text_dim ({m.text_dim}) when SPDE or "
              "ROI logits or the visual→text map compare video features with text embeddings")


# ---------------------------------------------------------------------------
# Public loading / saving helpers


def _resolve_base(base: PSFTRConfig | str | None) -> PSFTRConfig:
    if base is None:
        return PSFTRConfig()
    if isinstance(base, str):
        return preset(base)
    return copy.deepcopy(base)


def load_config(path: str | Path, base: PSFTRConfig | str | None = None) -> PSFTRConfig:
    """Read a YAML config and merge it onto a base config.

    The file holds any of the sections ``model``, ``train``, ``data``, ``inference``
    (each a partial mapping) and optionally ``preset: thumos14|anet``. The base is the
    file's ``preset`` if given, else ``base`` (a preset name or a config), else the
    defaults (= the THUMOS14 preset).
    """
    path = Path(path)
    data = read_yaml_file(path, "config file")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    data = dict(data)
    if "preset" in data:
        name = data.pop("preset")
        if not isinstance(name, str):
            raise InputError(f"config key preset must be one of {', '.join(preset_names())}, got {shown(name)}")
        base = name
    try:
        return validate_config(_merge(_resolve_base(base), data))
    except InputError as err:
        raise InputError(f"{path}: {err}") from None


def save_config(cfg: PSFTRConfig, path: str | Path) -> None:
    """Write ``cfg`` as YAML (atomic); :func:`load_config` reads it back unchanged."""
    write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def apply_overrides(cfg: PSFTRConfig, overrides: list[str] | tuple[str, ...]) -> PSFTRConfig:
    """A copy of ``cfg`` with ``"section.key=value"`` overrides applied.

    Values are parsed by the field's type: ``true/false`` for booleans, ``null`` for
    optional values, comma-separated (optionally bracketed) lists for tuples, the raw
    text for strings. Two inference rules keep a stored choice (e.g. a calibration's)
    from silently winning over what is asked: ``inference.scoring`` is the shorthand of
    a null ``inference.contrast_weight``, so setting it without
    ``inference.contrast_weight`` also resets that to null; and setting a scoring key
    (``scoring``, ``contrast_weight``, ``roi_weight``) without ``inference.method``
    means the model: ``inference.method=psftr``.
    """
    out = copy.deepcopy(cfg)
    keys = {str(item).split("=", 1)[0].strip() for item in overrides}
    if "inference.scoring" in keys and "inference.contrast_weight" not in keys:
        out.inference = dataclasses.replace(out.inference, contrast_weight=None)
    if keys & {f"inference.{k}" for k in SCORING_KEYS} and "inference.method" not in keys:
        out.inference = dataclasses.replace(out.inference, method="psftr")
    for item in overrides:
        if "=" not in item:
            raise InputError(f"bad override {item!r}: expected section.key=value, e.g. model.dec_layers=3")
        dotted, value = item.split("=", 1)
        dotted = dotted.strip()
        parts = dotted.split(".")
        if len(parts) != 2 or parts[0] not in SECTIONS:
            raise InputError(
                f"bad override key {dotted!r}: expected section.key with section one of {', '.join(SECTIONS)}"
            )
        section, key = parts
        setattr(out, section, _merge_section(getattr(out, section), {key: value}, section))
    return validate_config(out)


def config_to_dict(cfg: PSFTRConfig) -> dict[str, dict[str, Any]]:
    """Plain nested dict (str/int/float/bool/None/list only), e.g. for checkpoints."""

    def plain(value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value

    return {
        section: {f.name: plain(getattr(getattr(cfg, section), f.name)) for f in dataclasses.fields(cls)}
        for section, cls in SECTIONS.items()
    }


def config_from_dict(data: dict[str, Any]) -> PSFTRConfig:
    """Inverse of :func:`config_to_dict`. Keys missing from ``data`` take the defaults, except
    those of :data:`ADDED_KEYS` in a section that ``data`` has (a config saved before the key
    existed): they take the value that config meant."""
    data = {section: dict(values) if isinstance(values, dict) else values for section, values in data.items()}
    for dotted, old in ADDED_KEYS.items():
        section, key = dotted.split(".", 1)
        if isinstance(data.get(section), dict) and key not in data[section]:
            data[section][key] = old
    return validate_config(_merge(PSFTRConfig(), data))
