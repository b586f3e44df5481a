"""Self-describing checkpoints.

A checkpoint is a dict of plain Python types and tensors only, so
``torch.load(path, weights_only=True)`` reads it without executing code::

    format: "psftr-checkpoint", format_version: 1, psftr_version: "0.1.0"
    model_state: {name: tensor}            # PSFTR state dict
    config: {model: {...}, train: {...}, data: {...}, inference: {...}}
    preset: "thumos14" | "anet"            # the base the config was built from
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
missing, truncated, foreign or newer-format file; :func:`check_feature_spec` refuses
features of another dimension or another CLIP model.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from psftr_core import __version__
from psftr_core.config import config_from_dict
from psftr_core.errors import InputError
from psftr_core.io.atomic import torch_save
from psftr_core.model import PSFTR
from psftr_core.features.clip import same_clip_model
from psftr_core.runtime.clip_source import builtin_clip, builtin_release, manifest_clip

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
    trained = ckpt["feature_spec"]
    if int(trained["feature_dim"]) != int(spec["feature_dim"]):
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
    """Read and validate a checkpoint with ``weights_only=True``."""
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
    return ckpt


def _torch_load(path: Path, map_location: Any) -> Any:
    """``torch.load(weights_only=True)`` with failures said in our words.

    torch's own messages suggest ``weights_only=False`` (unsafe for a file from elsewhere)
    and its warnings would reach the terminal; both stay inside.
    """
    if path.stat().st_size == 0:
        raise InputError(f"cannot read checkpoint {path}: the file is empty")
    if not zipfile.is_zipfile(path):
        # torch.save writes a zip archive; a truncated copy loses the archive's index too.
        raise InputError(f"cannot read checkpoint {path}: not a complete PyTorch checkpoint file "
                         "(truncated, damaged, or not a checkpoint written by `psftr train`)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(f"cannot read checkpoint {path}: it holds Python objects other than tensors and plain "
                         "data, which psftr never loads (a checkpoint from elsewhere, or a tampered file)") from None
    except Exception:  # a damaged zip: truncated copy, interrupted download
        raise InputError(f"cannot read checkpoint {path}: the file is damaged or truncated "
                         "(copy it again, or use another checkpoint of the run)") from None


def build_model(ckpt: dict, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Any]:
    """The PSFTR model of a checkpoint (eval mode) and its ``PSFTRConfig``."""
    cfg = config_from_dict(ckpt["config"])
    model = PSFTR(cfg.model)
    try:
        model.load_state_dict(ckpt["model_state"], strict=True)
    except RuntimeError as err:
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
