"""Self-describing checkpoints.

A checkpoint is a dict of plain Python types and tensors only, so
``torch.load(path, weights_only=True)`` reads it without executing code::

    format: "psftr-checkpoint", format_version: 1, psftr_version: "0.1.0", torch_version: "2.x"
    model_state: {name: tensor}            # PSFTR state dict
    config: {model: {...}, train: {...}, data: {...}, inference: {...}}
    preset: "thumos14" | "anet" | "small"  # the base the config was built from
    feature_spec: {feature_dim, feature_fps, frames_per_feature, clip_model, clip_pretrained,
                   clip_weights_id, text_source}
    vocabulary: [seen class names]         # text the model was trained with, in order
    text_clip: {model_name, pretrained, weights_id, config, config_sha256, embed_dim} | None
                                           # the CLIP text tower of the class names (config:
                                           # a custom architecture's open_clip config);
                                           # None: a text_embeddings table (or an older file)
    split: {dataset, ratio, index, seen, unseen}
    epoch: completed epochs                # of epochs_total
    epochs_total: int
    metrics: {...}                         # last epoch's mean losses, eval mAP if tracked
    calibration: {...} | None              # how the inference settings in config were chosen on
                                           # held-out seen classes (psftr_core.train.calibration);
                                           # None: not calibrated (--no-calibrate, older files)
    train_state: {optimizer, scaler, rng, seed}   # only for resuming; may be absent

Loading validates the structure and raises ``InputError`` with one clear line for a
missing, truncated, foreign or newer-format file, a file holding other Python objects
(``psftr_core.io.safe_load``), a field of the wrong type or range (:data:`CHECKPOINT_SCHEMA`:
the line names the file and the field, e.g. ``feature_spec must be a mapping, got a
list``) and weights that do not fit the config (missing, unexpected or reshaped tensors,
found before the model is built); :func:`check_feature_spec` refuses
features of another dimension or another CLIP model.
"""

from __future__ import annotations

import math
import operator
import os
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from psftr_core import __version__
from psftr_core.config import SECTIONS, config_from_dict
from psftr_core.errors import InputError
from psftr_core.io.atomic import torch_save
from psftr_core.model import PSFTR
from psftr_core.features.clip import same_clip_model
from psftr_core.runtime.clip_source import builtin_clip, builtin_release, manifest_clip
from psftr_core.io.safe_load import load_tensors

FORMAT = "psftr-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("model_state", "config", "feature_spec", "vocabulary", "split", "epoch")


def feature_spec_of(dataset: Any) -> dict[str, Any]:
    """What the features of ``dataset`` are: D, rate and (when known) the CLIP model.

    The CLIP model is known for folders written by ``psftr extract`` (its
    ``manifest.json``) and for the built-in releases (ViT-B/16, OpenAI weights, by
    convention); otherwise it is None and only the dimension can be checked.
    """
    clip_model = clip_pretrained = weights_id = None
    record, release = manifest_clip(getattr(dataset, "root", None)), builtin_release(dataset)
    if record is not None:  # what `psftr extract` recorded beats a convention
        clip_model, clip_pretrained, weights_id = (_text(record, key)
                                                   for key in ("model_name", "pretrained", "weights_id"))
    elif release is not None:
        clip_model, clip_pretrained, weights_id = builtin_clip(release)
    fps = getattr(dataset, "feature_fps", None)
    return {
        "feature_dim": int(dataset.feature_dim),
        "feature_fps": float(fps) if fps else None,
        "frames_per_feature": getattr(dataset, "frames_per_feature", None),
        "clip_model": clip_model,
        "clip_pretrained": clip_pretrained,
        "clip_weights_id": weights_id,
        "text_source": "file" if getattr(dataset, "text_embeddings", None) else "clip",
    }


def check_feature_spec(ckpt: dict, spec: dict, where: str = "the dataset") -> None:
    """Raise InputError when ``spec`` (the features at hand) cannot feed the checkpoint's model."""
    trained = dict(ckpt["feature_spec"])
    # hand-made or early checkpoints may lack it: the model's own input width says the same
    trained.setdefault("feature_dim", ckpt["config"]["model"].get("feature_dim"))
    if trained["feature_dim"] is not None and int(trained["feature_dim"]) != int(spec["feature_dim"]):
        raise InputError(
            f"the checkpoint was trained on {trained['feature_dim']}-d features{_clip_words(trained)}, but "
            f"{where} has {spec['feature_dim']}-d features; use features from the same CLIP model or retrain"
        )
    a, b = trained.get("clip_model"), spec.get("clip_model")
    if a and b and not same_clip_model(a, b):
        raise InputError(
            f"the checkpoint was trained on features of CLIP {a}, but {where} has features of CLIP {b}; "
            "extract features with the checkpoint's CLIP model or retrain"
        )
    # Weights: compare the content id (tag or file hash), not the path of a weights file.
    wa = trained.get("clip_weights_id") or trained.get("clip_pretrained")
    wb = spec.get("clip_weights_id") or spec.get("clip_pretrained")
    if a and b and wa and wb and wa != wb:
        raise InputError(
            f"the checkpoint was trained on CLIP {a} features with weights {wa}, but {where} used weights {wb}; "
            "extract features with the same weights or retrain"
        )


def _text(record: dict, key: str) -> str | None:
    value = record.get(key)
    return value if isinstance(value, str) else None


def _clip_words(spec: dict) -> str:
    return f" (CLIP {spec['clip_model']})" if spec.get("clip_model") else ""


# --------------------------------------------------------------------------- RNG state


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as plain types and tensors."""
    version, py_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- save / load


def make_checkpoint(
    *,
    model: torch.nn.Module,
    config: dict,
    preset: str,
    feature_spec: dict,
    vocabulary: list[str],
    split: dict,
    epoch: int,
    epochs_total: int,
    metrics: dict | None = None,
    train_state: dict | None = None,
    text_clip: dict | None = None,
    calibration: dict | None = None,
) -> dict[str, Any]:
    """Assemble a checkpoint dict (see the module docstring)."""
    module = model.module if hasattr(model, "module") else model
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "psftr_version": __version__,
        "torch_version": str(torch.__version__),  # str: TorchVersion is no plain type
        "model_state": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
        "config": config,
        "preset": preset,
        "feature_spec": dict(feature_spec),
        "vocabulary": list(vocabulary),
        "split": dict(split),
        "epoch": int(epoch),
        "epochs_total": int(epochs_total),
        "metrics": dict(metrics or {}),
        "text_clip": dict(text_clip) if text_clip else None,
        "calibration": calibration,
    }
    if train_state is not None:
        ckpt["train_state"] = train_state
    return ckpt


def save_checkpoint(path: str | os.PathLike, ckpt: dict) -> None:
    """Write atomically: an interrupted save leaves the previous file intact."""
    torch_save(path, ckpt)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint with ``weights_only=True``: its format, every field's
    type (:func:`validate_checkpoint`) and that its weights fit its config, so that
    nothing of the wrong kind reaches the model; each problem is an ``InputError``
    naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise InputError(f"checkpoint {path} {what} (train one with `psftr train`)")
    ckpt = _torch_load(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputError(f"{path} is not a psftr checkpoint (no 'format: {FORMAT}' entry)")
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError(
            f"checkpoint {path} has format version {version}, newer than this psftr ({__version__}) reads; "
            "upgrade psftr"
        )
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise InputError(f"checkpoint {path} is incomplete: missing {', '.join(missing)}")
    validate_checkpoint(ckpt, path)
    return ckpt


def _torch_load(path: Path, map_location: Any) -> Any:
    """``torch.load(weights_only=True)`` with failures said in our words (``safe_load``)."""
    if path.stat().st_size and not zipfile.is_zipfile(path):
        # torch.save writes a zip archive; a truncated copy loses the archive's index too.
        raise InputError(f"cannot read checkpoint {path}: not a complete PyTorch checkpoint file "
                         "(truncated, damaged, or not a checkpoint written by `psftr train`)")
    return load_tensors(path, "checkpoint", map_location,
                        damaged_hint=" (copy it again, or use another checkpoint of the run)")


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Field:
    """What one field of a checkpoint must be (the schema :func:`validate_checkpoint` checks)."""

    kind: str  # a key of _KINDS
    nullable: bool = False  # None is allowed
    items: Field | None = None  # what each element of a list / value of a mapping must be
    keys: dict[str, Field] | None = None  # a mapping's known keys (absent ones: older files)
    required: tuple[str, ...] = ()  # keys of ``keys`` that must be there
    bound: str | None = None  # a number's range: "> 0", ">= 1"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "mapping": ("a mapping", lambda v: isinstance(v, dict)),
    "list": ("a list", lambda v: isinstance(v, (list, tuple))),
    "string": ("a string", lambda v: isinstance(v, str)),
    "integer": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "number": ("a number", _is_number),
    "tensor": ("a tensor", lambda v: isinstance(v, torch.Tensor)),
}
_BOUNDS = {">": operator.gt, ">=": operator.ge}

_TEXT = Field("string", nullable=True)
_NAMES = Field("list", items=Field("string"))
CHECKPOINT_SCHEMA = Field("mapping", required=REQUIRED_KEYS, keys={
    "psftr_version": Field("string"),
    "torch_version": _TEXT,
    "model_state": Field("mapping", items=Field("tensor")),
    "config": Field("mapping", keys={section: Field("mapping") for section in SECTIONS}),
    "preset": _TEXT,
    "feature_spec": Field("mapping", keys={
        "feature_dim": Field("integer", bound=">= 1"),
        "feature_fps": Field("number", nullable=True, bound="> 0"),
        "frames_per_feature": Field("integer", nullable=True, bound=">= 1"),
        "clip_model": _TEXT, "clip_pretrained": _TEXT, "clip_weights_id": _TEXT, "text_source": _TEXT,
    }),
    "vocabulary": _NAMES,
    "split": Field("mapping", keys={"dataset": Field("string"), "ratio": Field("string"),
                                    "index": Field("integer", bound=">= 0"), "seen": _NAMES, "unseen": _NAMES}),
    "epoch": Field("integer", bound=">= 0"),
    "epochs_total": Field("integer", bound=">= 0"),
    "metrics": Field("mapping", nullable=True),
    "text_clip": Field("mapping", nullable=True, keys={
        "model_name": _TEXT, "pretrained": _TEXT, "weights_id": _TEXT, "config": Field("mapping", nullable=True),
        "config_sha256": _TEXT, "embed_dim": Field("integer", nullable=True, bound=">= 1"),
    }),
    "calibration": Field("mapping", nullable=True),
    "train_state": Field("mapping", keys={
        "optimizer": Field("mapping"), "scaler": Field("mapping"), "rng": Field("mapping"),
        "seed": Field("integer", nullable=True), "best_score": Field("number"),
        "epoch_losses": Field("list", items=Field("number")),
    }),
})


def validate_checkpoint(ckpt: Any, path: str | os.PathLike) -> None:
    """Raise ``InputError`` naming ``path`` and the field when a field of ``ckpt`` has the
    wrong type or range (:data:`CHECKPOINT_SCHEMA`) or its weights do not fit its config."""
    problem = schema_problem(ckpt, CHECKPOINT_SCHEMA)
    if problem is not None:
        raise InputError(f"checkpoint {path}: {problem}")
    _check_weights_fit(ckpt, path)


def schema_problem(value: Any, field: Field, name: str = "") -> str | None:
    """What is wrong with ``value`` as ``field`` ("feature_spec must be a mapping, got a
    list"), or None; ``name`` is its dotted place in the checkpoint."""
    if value is None:
        return None if field.nullable else f"{name} must be {_KINDS[field.kind][0]}, got null"
    words, fits = _KINDS[field.kind]
    if not fits(value):
        return f"{name} must be {words}, got {_what(value)}"
    if field.bound is not None and not _within(value, field.bound):
        return f"{name} must be {field.bound}, got {value}"
    if field.kind == "mapping":
        return _mapping_problem(value, field, name)
    if field.kind == "list" and field.items is not None:
        return next((p for i, item in enumerate(value)
                     if (p := schema_problem(item, field.items, f"{name}[{i}]")) is not None), None)
    return None


def _mapping_problem(value: dict, field: Field, name: str) -> str | None:
    prefix = f"{name}." if name else ""
    missing = [key for key in field.required if key not in value]
    if missing:
        return f"{prefix}{missing[0]} is missing"
    for key, item in value.items():
        inner = (field.keys or {}).get(key, field.items)
        if inner is not None and (problem := schema_problem(item, inner, f"{prefix}{key}")) is not None:
            return problem
    return None


def _within(value: float, bound: str) -> bool:
    op, limit = bound.split()
    return bool(_BOUNDS[op](value, float(limit)))  # False for NaN: NaN is in no range


def _what(value: Any) -> str:
    """``value``'s kind in words, with the value when it is short ("an integer: 3")."""
    kind = next((words for key, (words, fits) in _KINDS.items() if key != "number" and fits(value)), None)
    if kind is None:
        kind = "a number" if _is_number(value) else "a boolean" if isinstance(value, bool) else (
            f"a {type(value).__name__}")
    shown = repr(value)
    return f"{kind}: {shown}" if isinstance(value, (str, int, float, bool)) and len(shown) <= 40 else kind


def _check_weights_fit(ckpt: dict, path: str | os.PathLike) -> None:
    """The model the config describes has exactly the checkpoint's tensors, of the same shapes."""
    try:
        cfg = config_from_dict(ckpt["config"])
    except InputError as err:
        raise InputError(f"checkpoint {path}: config: {err}") from None
    expected = _model_tensors(cfg)
    if expected is None:
        return  # the model cannot be laid out without memory: build_model checks it
    state = ckpt["model_state"]
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing:
        which = f"lacks {len(missing)} tensor(s) of its config's model ({', '.join(missing[:3])})"
    elif unexpected:
        which = f"has {len(unexpected)} tensor(s) its config's model lacks ({', '.join(map(str, unexpected[:3]))})"
    if missing or unexpected:
        raise InputError(f"checkpoint {path}: model_state {which}: its weights do not fit its config")
    for key, want in expected.items():
        got = state[key]
        if tuple(got.shape) != tuple(want.shape) or got.is_floating_point() != want.is_floating_point():
            raise InputError(
                f"checkpoint {path}: model_state.{key} is a {got.dtype} tensor of shape {list(got.shape)}, but its "
                f"config's model needs {want.dtype} {list(want.shape)}: its weights do not fit its config"
            )


def _model_tensors(cfg: Any) -> dict[str, torch.Tensor] | None:
    """Name -> tensor (for its shape and dtype) of the model ``cfg`` describes; None when it
    cannot be built. The weights are allocated but not initialised (:class:`_UnfilledInit`):
    fast, and no random numbers are drawn."""
    try:
        with _UnfilledInit(), torch.no_grad():
            return dict(PSFTR(cfg.model).state_dict())
    except Exception:  # e.g. out of memory: build_model says it then
        return None


class _UnfilledInit(TorchFunctionMode):
    """Skips the in-place random initialisers (``nn.init.*_``, ``Tensor.normal_/uniform_``):
    the tensors keep their shapes. (The meta device would need no memory, but its first
    use imports seconds of torch internals.)"""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if _is_initialiser(func):
            return args[0] if args else next(iter((kwargs or {}).values()))
        return func(*args, **(kwargs or {}))


def _is_initialiser(func: Any) -> bool:
    name = getattr(func, "__name__", "")
    return (name.endswith("_") and vars(torch.nn.init).get(name) is func) or name in ("normal_", "uniform_")


def build_model(ckpt: dict, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Any]:
    """The PSFTR model of a checkpoint (eval mode) and its ``PSFTRConfig``."""
    cfg = config_from_dict(ckpt["config"])
    model = PSFTR(cfg.model)
    try:
        model.load_state_dict(ckpt["model_state"], strict=True)
    except RuntimeError as err:  # a dict not read by load_checkpoint (which checks the fit first)
        first = str(err).splitlines()[0] if str(err) else "state mismatch"
        raise InputError(f"checkpoint weights do not fit its model config ({first})") from None
    return model.to(device).eval(), cfg


def default_score_threshold(ckpt: dict) -> float | None:
    """``psftr detect``'s default score threshold for a checkpoint: the one its
    calibration chose on held-out seen classes (``best_f1_threshold``), or None (no
    calibration, skipped, or no match there: use the built-in default)."""
    record = ckpt.get("calibration") if isinstance(ckpt, dict) else None
    value = record.get("score_threshold") if isinstance(record, dict) else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


# --------------------------------------------------------------------------- description

INFERENCE_KEYS = ("method", "scoring", "contrast_weight", "roi_weight", "nms", "nms_iou", "score_threshold", "topk")


def describe_checkpoint(ckpt: dict) -> dict[str, Any]:
    """What a loaded checkpoint is, in plain types (``psftr checkpoint info``; its
    ``--json`` schema is in docs/formats.md): where it was trained, on which features and
    text, how its inference was chosen, and its size. Unrecorded facts are None."""
    split, spec = ckpt.get("split") or {}, ckpt.get("feature_spec") or {}
    config = ckpt.get("config") or {}
    state = ckpt.get("model_state") or {}
    return {
        "format_version": ckpt.get("format_version"),
        "psftr_version": ckpt.get("psftr_version"),
        "torch_version": ckpt.get("torch_version"),  # recorded by newer writers only
        "preset": ckpt.get("preset"),
        "dataset": split.get("dataset"),
        "split": {"ratio": split.get("ratio"), "index": split.get("index"),
                  "seen": len(split.get("seen") or []), "unseen": len(split.get("unseen") or [])},
        "vocabulary": {"size": len(ckpt.get("vocabulary") or []), "names": list(ckpt.get("vocabulary") or [])},
        "clip": {"model": spec.get("clip_model"), "pretrained": spec.get("clip_pretrained"),
                 "weights_id": spec.get("clip_weights_id")},
        "text_clip": dict(ckpt["text_clip"]) if ckpt.get("text_clip") else None,
        "features": {"dim": spec.get("feature_dim", (config.get("model") or {}).get("feature_dim")),
                     "fps": spec.get("feature_fps"), "frames_per_feature": spec.get("frames_per_feature"),
                     "text_source": spec.get("text_source")},
        "inference": {key: (config.get("inference") or {}).get(key) for key in INFERENCE_KEYS},
        "calibration": _describe_calibration(ckpt.get("calibration")),
        "epochs": {"completed": ckpt.get("epoch"), "total": ckpt.get("epochs_total")},
        "parameters": int(sum(t.numel() for t in state.values() if isinstance(t, torch.Tensor))),
        "bytes": int(sum(t.numel() * t.element_size() for t in state.values() if isinstance(t, torch.Tensor))),
        "resumable": isinstance(ckpt.get("train_state"), dict) and "optimizer" in ckpt["train_state"],
    }


def _describe_calibration(record: Any) -> dict[str, Any]:
    """The calibration's outcome: ``status`` calibrated / skipped / none, and its choice."""
    if not isinstance(record, dict):
        return {"status": "none", "skipped": None, "chosen": None, "held_out_average_map": None,
                "score_threshold": None, "held_out_classes": None}
    chosen = record.get("chosen") if isinstance(record.get("chosen"), dict) else {}
    return {
        "status": "skipped" if record.get("skipped") else "calibrated",
        "skipped": record.get("skipped"),
        "chosen": chosen.get("name"),
        "held_out_average_map": chosen.get("average_map"),
        "score_threshold": default_score_threshold(ckpt={"calibration": record}),
        "held_out_classes": len(record["held_out_classes"]) if isinstance(record.get("held_out_classes"), list)
        else None,
    }
