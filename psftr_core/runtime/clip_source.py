"""Which CLIP model made a dataset's features, and so which text tower encodes its names.

This is part (c) of the one text rule of ``psftr_core.runtime.text_source`` (used by
train, evaluate and detect alike): whether a tower is needed at all (a table with every
name needs none) and what a table that lacks names means is decided there; *which*
tower, here. The class-name embeddings must come from the text tower of the CLIP model
that made the image features. Where that model is known (the first record that applies
decides):

- a checkpoint: ``text_clip`` records the tower it was trained with, so evaluation and
  detection encode new names in the same space (:func:`checkpoint_text_tower`).
- a folder written by ``psftr extract``: its ``manifest.json`` records the model, the
  weights (tag or file, with the file's sha256) and, for a custom architecture, the
  open_clip config itself (:func:`recorded_dataset_tower`).
- the built-in releases (``thumos14``, ``anet``): GAP's ViT-B/16 with OpenAI's weights,
  by convention (no manifest). ``--clip-model`` or ``--clip-config`` replace the
  convention (e.g. features made with another CLIP).
- a checkpoint without ``text_clip`` (trained on a table, or older): the model and
  weights of its feature spec (:func:`recorded_tower`).
- otherwise nothing is recorded: the flags, else ViT-B-16 openai.

A record is authoritative: ``--clip-model`` or ``--clip-pretrained`` naming other
weights, or ``--clip-config`` with another config, is an InputError naming both
(:func:`with_request`). ``--clip-pretrained PATH`` with the *same* weights (same
sha256) is how a machine without the original file points at its copy; where the
record names a tag (``openai``) the file is a local copy of those weights, taken on
trust (:func:`local_copy`: built with QuickGELU, as OpenAI's weights need, whatever the
file is called). Loading the tower checks its weights id and config hash against the
record (``psftr_core.features.text.load_text_tower``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psftr_core.data.builtins import builtin_dataset
from psftr_core.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED
from psftr_core.errors import InputError
from psftr_core.features.clip import same_clip_model
from psftr_core.features.clip_weights import looks_like_path
from psftr_core.features.text import TextTower
from psftr_core.io.json_file import read_json_file

MANIFEST_NAME = "manifest.json"  # written by `psftr extract` next to the features
CLIP_CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")


@dataclass(frozen=True)
class ClipRequest:
    """``--clip-model`` / ``--clip-pretrained`` / ``--clip-config`` as given (None: not given)."""

    model: str | None = None
    pretrained: str | None = None
    config_file: str | os.PathLike | None = None

    def config(self) -> dict | None:
        """The content of ``--clip-config`` (checked for the open_clip keys), or None."""
        if self.config_file is None:
            return None
        path = Path(self.config_file)
        if not path.is_file():
            raise InputError(f"CLIP config file not found: {path}")
        data = read_json_file(path, "CLIP config")
        if not isinstance(data, dict) or not all(k in data for k in CLIP_CONFIG_KEYS):
            raise InputError(f"CLIP config {path} needs the open_clip keys {', '.join(CLIP_CONFIG_KEYS)}")
        return data


# ------------------------------------------------------------------ what the features say


def manifest_clip(root: str | os.PathLike | None) -> dict | None:
    """The ``clip`` record of ``psftr extract``'s manifest in ``root``, or None."""
    if root is None:
        return None
    try:
        data = json.loads((Path(root) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    clip = data.get("clip") if isinstance(data, dict) else None
    if not isinstance(clip, dict) or not isinstance(clip.get("model_name"), str):
        return None
    return clip


def builtin_release(dataset: Any) -> str | None:
    """The name of the built-in release ``dataset`` is (``thumos14``, ``anet``: a built-in whose
    descriptor knows its CLIP, loaded with its standard splits), else None."""
    name = str(getattr(dataset, "name", "")).lower()
    kind = builtin_dataset(name)
    standard = str(getattr(dataset, "split_source", "")).startswith("standard:")
    return name if kind is not None and kind.clip is not None and standard else None


def builtin_clip(release: str) -> tuple[str, str, str]:
    """(model, pretrained, weights id) of the CLIP that made a built-in release's features
    (its descriptor's ``clip``, ``psftr_core.data.builtins``); ``release`` from :func:`builtin_release`."""
    kind = builtin_dataset(release)
    if kind is None or kind.clip is None:
        raise ValueError(f"{release!r} is not a built-in release with a known CLIP")
    return kind.clip.model, kind.clip.pretrained, kind.clip.weights_id


# ------------------------------------------------------------------ which text tower


def dataset_text_tower(dataset: Any, request: ClipRequest | None = None) -> TextTower:
    """The text tower for ``dataset``'s class names (rules in the module docstring)."""
    request = request or ClipRequest()
    recorded = recorded_dataset_tower(dataset, request)
    if recorded is not None:
        return recorded
    source = "--clip-model/--clip-pretrained/--clip-config" if _given(request) else (
        f"the default CLIP model (dataset {getattr(dataset, 'name', '?')} records none)")
    return requested_tower(request, source)


def recorded_dataset_tower(dataset: Any, request: ClipRequest | None = None) -> TextTower | None:
    """The tower ``dataset`` records (its manifest, or a built-in release's convention),
    the flags checked against it; None when it records none."""
    request = request or ClipRequest()
    root = getattr(dataset, "root", None)
    record = manifest_clip(root)
    if record is not None:
        return with_request(TextTower.from_dict(record, f"the features' manifest {Path(root) / MANIFEST_NAME}"),
                            request)
    release = builtin_release(dataset)
    if release is None:
        return None
    if request.model is not None or request.config_file is not None:
        return requested_tower(request, "--clip-model/--clip-config")  # the user names the features' CLIP
    model, pretrained, weights_id = builtin_clip(release)
    convention = TextTower(model, pretrained, weights_id, source=f"the {release} features (CLIP {model} "
                                                                 f"{pretrained}, by convention)")
    return with_request(convention, request)


def checkpoint_text_tower(ckpt: dict, request: ClipRequest | None = None,
                          where: str = "the checkpoint") -> TextTower | None:
    """The text tower a checkpoint was trained with (``text_clip``), the flags checked against
    it; None when it was trained on a text_embeddings table or predates the record."""
    record = ckpt.get("text_clip")
    if not isinstance(record, dict):
        return None
    return with_request(TextTower.from_dict(record, f"checkpoint {where}"), request or ClipRequest())


def recorded_tower(model_name: str | None, pretrained: str | None, weights_id: str | None, source: str,
                   request: ClipRequest | None = None) -> TextTower | None:
    """The tower a bare record names (a feature spec's model and weights: no config),
    the flags checked against it; None without a model name. Weights named by a tag
    are known by it (``tag:openai``); a file, only by ``weights_id`` when given."""
    if not model_name:
        return None
    if weights_id is None and pretrained and not _is_file_request(pretrained):
        weights_id = _tag_id(pretrained)
    return with_request(TextTower(model_name, pretrained, weights_id, source=source), request or ClipRequest())


def requested_tower(request: ClipRequest, source: str) -> TextTower:
    """The tower the flags name (defaults ViT-B-16 / openai); a config is named the way
    ``load_clip`` names it (``--clip-model`` unless default, else the file's stem)."""
    config = request.config()
    model = request.model or DEFAULT_CLIP_MODEL
    if config is not None and model == DEFAULT_CLIP_MODEL:
        model = Path(request.config_file).stem  # type: ignore[arg-type]
    pretrained = DEFAULT_CLIP_PRETRAINED if request.pretrained is None else request.pretrained
    return TextTower(model, pretrained, config=config, source=source)


def with_request(base: TextTower, request: ClipRequest) -> TextTower:
    """``base`` (recorded) with the flags applied: another model, other weights or another
    config is an InputError naming both; the same weights from another path are taken."""
    if request.model is not None and not same_clip_model(request.model, base.model_name):
        raise InputError(
            f"--clip-model {request.model} differs from CLIP {base.model_name} of {base.source}; "
            "omit --clip-model (the record decides) or use features and checkpoints made with it"
        )
    config = base.config
    asked_config = request.config()
    if asked_config is not None:
        if base.config is not None and asked_config != base.config:
            raise InputError(
                f"--clip-config {request.config_file} is not the config of CLIP {base.model_name} recorded in "
                f"{base.source}; omit --clip-config (the record has it)"
            )
        config = asked_config  # the same, or one the record lacks (its config_sha256 checks it)
    base = dataclasses.replace(base, config=config)
    if request.pretrained is None:
        return base
    if _is_file_request(request.pretrained):
        if base.weights_id and base.weights_id.startswith("tag:"):
            return local_copy(base, request.pretrained)
        return dataclasses.replace(base, pretrained=request.pretrained)  # its sha256 is checked when loaded
    if base.weights_id and _tag_id(request.pretrained) != base.weights_id:
        raise InputError(
            f"--clip-pretrained {request.pretrained} differs from the weights of {base.source} "
            f"({base.weights_id}); omit it, or pass a copy of those weights"
        )
    return dataclasses.replace(base, pretrained=request.pretrained)


def local_copy(base: TextTower, path: str) -> TextTower:
    """``base`` (weights named by an open_clip tag) loaded from ``path``, a local copy of
    those weights. Nothing can check that the file holds them (only a tag's own download
    is known by hash), so it is taken on trust; but the tag's activation is kept: OpenAI's
    weights need QuickGELU whatever the file is called."""
    import open_clip

    model, tag = base.model_name, base.weights_id.removeprefix("tag:") if base.weights_id else ""
    quick_gelu = bool(open_clip.get_pretrained_cfg(model, tag).get("quick_gelu"))
    if base.config is None and quick_gelu and f"{model}-quickgelu" in open_clip.list_models():
        model = f"{model}-quickgelu"
    return dataclasses.replace(base, model_name=model, pretrained=path, weights_id=None)


def _given(request: ClipRequest) -> bool:
    return any(v is not None for v in (request.model, request.pretrained, request.config_file))


def _is_file_request(pretrained: str) -> bool:
    return os.path.isfile(pretrained) or looks_like_path(pretrained)


def _tag_id(pretrained: str) -> str:
    return "random" if pretrained.lower() in ("", "none", "random") else f"tag:{pretrained}"
