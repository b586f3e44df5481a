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
    split: {dataset, ratio, index, seen, unseen}
    epoch: completed epochs                # of epochs_total
    epochs_total: int
    metrics: {...}                         # last epoch's mean losses, eval mAP if tracked
    train_state: {optimizer, scaler, rng, seed}   # only for resuming; may be absent

Loading validates the structure and raises ``InputError`` with one clear line for a
missing, truncated, foreign or newer-format file; :func:`check_feature_spec` refuses
features of another dimension or another CLIP model.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from psftr_core import __version__
from psftr_core.config import config_from_dict
from psftr_core.errors import InputError
from psftr_core.io.atomic import torch_save
from psftr_core.model import PSFTR

FORMAT = "psftr-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("model_state", "config", "feature_spec", "vocabulary", "split", "epoch")

# Feature releases whose CLIP model is known by construction: (model, pretrained, weights id).
BUILTIN_CLIP = {
    "thumos14": ("ViT-B-16", "openai", "tag:openai"),
    "anet": ("ViT-B-16", "openai", "tag:openai"),
}
MANIFEST_NAME = "manifest.json"  # written by `psftr extract` next to the features


def _manifest_clip(root: Path) -> tuple[str | None, str | None, str | None]:
    """(model name, pretrained tag or file, weights id) from ``psftr extract``'s manifest."""
    path = root / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None, None
    clip = data.get("clip") if isinstance(data, dict) else None
    if not isinstance(clip, dict) or not isinstance(clip.get("model_name"), str):
        return None, None, None

    def text(key: str) -> str | None:
        value = clip.get(key)
        return value if isinstance(value, str) else None

    return clip["model_name"], text("pretrained"), text("weights_id")


def feature_spec_of(dataset: Any) -> dict[str, Any]:
    """What the features of ``dataset`` are: D, rate and (when known) the CLIP model.

    The CLIP model is known for the built-in releases (ViT-B/16, OpenAI weights) and for
    folders written by ``psftr extract`` (its ``manifest.json``); otherwise it is None
    and only the dimension can be checked.
    """
    clip_model = clip_pretrained = weights_id = None
    if str(dataset.name).lower() in BUILTIN_CLIP and str(getattr(dataset, "split_source", "")).startswith("standard:"):
        clip_model, clip_pretrained, weights_id = BUILTIN_CLIP[str(dataset.name).lower()]
    root = getattr(dataset, "root", None)
    if clip_model is None and root is not None:
        clip_model, clip_pretrained, weights_id = _manifest_clip(Path(root))
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
    if a and b and _norm_model(a) != _norm_model(b):
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


def _norm_model(name: str) -> str:
    # open_clip spells OpenAI's ViT-B/16 as ViT-B-16 or ViT-B-16-quickgelu: same features.
    return name.replace("/", "-").lower().removesuffix("-quickgelu")


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
        raise InputError(f"checkpoint {path} does not exist (train one with `psftr train`)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, non-allowed globals
        detail = " ".join(str(err).split())[:200]
        raise InputError(f"cannot read checkpoint {path}: not a valid psftr checkpoint ({detail})") from None
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
