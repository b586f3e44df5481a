"""Class-name text embeddings, the mechanics: tables, text towers, encoding, files.

Which source a vocabulary gets (a dataset's table or a tower, what a table that lacks
names means, which tower, which prompt) is one rule for training, evaluation and
detection, in ``psftr_core.runtime.text_source``; this module only carries it out:

- :func:`lookup_text_embeddings`: a table's vectors by name, with the one name-matching
  rule used everywhere (:func:`psftr_core.data.vocabulary.name_key`: trimmed,
  case-insensitive, Unicode-normalised), and the names it lacks.
- :class:`TextTower` names the CLIP model whose text tower encodes class names: its
  architecture (for a custom one, the open_clip config itself, so it can be rebuilt
  without the original file), its weights (tag or local file) and, when known, what
  the weights must be (``weights_id``) and what the config hashes to. Checkpoints
  record it (``text_clip``). :func:`load_text_tower` loads it (once per process) and
  refuses weights or a config that are not the recorded ones.
- :func:`encode_class_names`: prompts through a tower, or an ensemble of texts per name
  (a ``TextRecipe``: several templates, descriptions; their normalised mean), cached on
  disk under ``<cache>/text/`` (``psftr_core.features.clip.encode_texts`` /
  ``encode_text_lists``).
- :func:`save_text_embeddings` writes a table (``psftr text-embeddings``).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from psftr_core.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, DEFAULT_PROMPT
from psftr_core.errors import InputError
from psftr_core.features.cache import default_cache_dir
from psftr_core.features.clip_weights import looks_like_path
from psftr_core.data.vocabulary import TextRecipe, name_key
from psftr_core.io.atomic import atomic_open

TEXT_EMBEDDINGS_NAME = "text_embeddings.npz"


@dataclass(frozen=True)
class TextTower:
    """The CLIP model that encodes class names (see the module docstring).

    model_name: open_clip architecture name (of a custom one: the name ``config`` is
    registered under). pretrained: weights tag, local weights file, or None for random
    weights. weights_id: ``"tag:openai"``, ``"sha256:<hex>"`` or ``"random"``: what the
    loaded weights must be (None: not checked). config: open_clip model config of a
    custom architecture (None for a built-in one). config_sha256: hash of the config
    the model must be built from (checked for a custom ``config`` only). embed_dim:
    width of the text embeddings, once known. source: where the choice comes from, for
    messages.
    """

    model_name: str = DEFAULT_CLIP_MODEL
    pretrained: str | None = DEFAULT_CLIP_PRETRAINED
    weights_id: str | None = None
    config: dict | None = None
    config_sha256: str | None = None
    embed_dim: int | None = None
    source: str = field(default="the default CLIP model", compare=False)

    def describe(self) -> str:
        """``CLIP NAME (weights)`` in words."""
        weights = self.weights_id or self.pretrained or "random weights"
        return f"CLIP {self.model_name} ({weights})"

    def to_dict(self) -> dict:
        """JSON-ready record (checkpoints keep it as ``text_clip``)."""
        return {"model_name": self.model_name, "pretrained": self.pretrained, "weights_id": self.weights_id,
                "config": self.config, "config_sha256": self.config_sha256, "embed_dim": self.embed_dim}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str) -> TextTower:
        """A tower from :meth:`to_dict` or an extract manifest's ``clip`` record."""
        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        config = data.get("config")
        dim = data.get("embed_dim")
        return cls(
            model_name=text("model_name") or DEFAULT_CLIP_MODEL,
            pretrained=text("pretrained"),
            weights_id=text("weights_id"),
            config=dict(config) if isinstance(config, dict) else None,
            config_sha256=text("config_sha256"),
            embed_dim=int(dim) if isinstance(dim, int) and not isinstance(dim, bool) else None,
            source=source,
        )

    def pinned(self, handle: Any) -> TextTower:
        """This tower with what ``handle`` (its loaded ``ClipHandle``) showed it to be."""
        # A built-in architecture's config hash is open_clip's business (it may change
        # between versions): only a recorded custom config is pinned by its hash.
        return replace(self, weights_id=handle.weights_id, embed_dim=int(handle.embed_dim),
                       config_sha256=handle.config_sha256 if self.config is not None else None)


# ----------------------------------------------------------------------------- loading


_CLIP_HANDLES: dict[tuple, Any] = {}


def shared_clip(model_name: str, pretrained: str | None, device: str, config: dict | None = None) -> Any:
    """One loaded CLIP per (model, weights, config, device) per process (10 splits load it once).

    ``config``: the open_clip config of a custom architecture, registered under
    ``model_name`` (through a temporary file: open_clip registers configs from files).
    """
    from psftr_core.features import clip as clip_models

    key = (model_name, pretrained, str(device), json.dumps(config, sort_keys=True) if config else None)
    if key not in _CLIP_HANDLES:
        if config is None:
            handle = clip_models.load_clip(model_name, pretrained, device=str(device))
        else:
            if not model_name or os.sep in model_name or "/" in model_name:
                raise InputError(f"a custom CLIP config needs a plain model name, got {model_name!r}")
            with tempfile.TemporaryDirectory(prefix="psftr-clip-config-") as folder:
                path = Path(folder) / f"{model_name}.json"
                path.write_text(json.dumps(config), encoding="utf-8")
                handle = clip_models.load_clip(model_name, pretrained, config_file=path, device=str(device))
        _CLIP_HANDLES[key] = handle
    return _CLIP_HANDLES[key]


def load_text_tower(tower: TextTower, device: str = "cpu") -> Any:
    """The loaded CLIP (a ``ClipHandle``) of ``tower``; InputError for weights or a config
    that are not the recorded ones, or a recorded weights file that is not here."""
    pretrained = tower.pretrained
    if pretrained and not os.path.isfile(pretrained) and looks_like_path(pretrained):
        raise InputError(
            f"{tower.source} names CLIP weights file {pretrained}"
            f"{' (' + tower.weights_id + ')' if tower.weights_id else ''}, which is not here; "
            "pass --clip-pretrained PATH with a copy of those weights"
        )
    handle = shared_clip(tower.model_name, pretrained, device, tower.config)
    if tower.weights_id and handle.weights_id != tower.weights_id:
        raise InputError(
            f"CLIP weights {pretrained} are {handle.weights_id}, but {tower.source} used {tower.weights_id}; "
            "pass a copy of those weights with --clip-pretrained PATH"
        )
    if tower.config is not None and tower.config_sha256 and handle.config_sha256 != tower.config_sha256:
        raise InputError(
            f"CLIP {tower.model_name} as built here (config sha256 {handle.config_sha256[:12]}) is not the "
            f"architecture of {tower.source} (config sha256 {tower.config_sha256[:12]}); "
            "pass the same --clip-config"
        )
    return handle


# ----------------------------------------------------------------------------- embeddings


def lookup_text_embeddings(
    table: Mapping[str, Any] | None, names: Sequence[str]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Vectors of ``names`` found in ``table`` (float32, by name) and the names it lacks."""
    by_key = {name_key(name): vec for name, vec in (table or {}).items()}
    found, missing = {}, []
    for name in names:
        vec = by_key.get(name_key(name))
        if vec is None:
            missing.append(name)
        else:
            found[name] = np.asarray(vec, dtype=np.float32).reshape(-1)
    return found, missing


def encode_class_names(class_names: Sequence[str], tower: TextTower, prompt: str | TextRecipe | None = None,
                       cache_dir: Any = None, device: str = "cpu", dtype: str = "float32",
                       default_prompt: str = DEFAULT_PROMPT) -> np.ndarray:
    """[K, E] float32 text embeddings of the class names: the one function detect, train
    and evaluate encode names with.

    ``prompt`` a template (or None: ``default_prompt``): that template filled with each
    name, not normalised (as before ensembling existed). A :class:`TextRecipe`: each row
    the L2-normalised mean of the unit embeddings of the name's texts (its templates,
    else ``default_prompt``, filled with the name, then its descriptions).

    Cached on disk (``cache_dir``, default the psftr cache directory) by model, weights,
    ``dtype`` (``auto`` is float32) and the prompt and name, or the exact list of texts.
    """
    from psftr_core.features import clip as clip_models

    handle = load_text_tower(tower, device)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if isinstance(prompt, TextRecipe):
        lists = [prompt.texts(name, default_prompt) for name in class_names]
        return clip_models.encode_text_lists(handle, lists, cache_dir=cache, dtype=dtype)
    return np.asarray(clip_models.encode_texts(handle, list(class_names), prompt=prompt or default_prompt,
                                               cache_dir=cache, dtype=dtype), dtype=np.float32)


def dataset_text_embeddings(dataset: Any, tower: TextTower, prompt: str | None = None, cache_dir: Any = None,
                            device: str = "cpu", dtype: str = "float32") -> dict[str, np.ndarray]:
    """``{class name: [D] float32}`` for every class of ``dataset``, encoded with ``tower``
    on ``prompt`` (default: the prompt ``psftr train`` uses by default), whatever table
    the dataset has: what :func:`save_text_embeddings` writes for a machine without CLIP."""
    classes = list(getattr(dataset, "classes", []) or [])
    if not classes:
        raise InputError(f"dataset {dataset.name} has no classes to encode: add them to its annotations file")
    vectors = encode_class_names(classes, tower, prompt or DEFAULT_PROMPT, cache_dir, device, dtype)
    check_text_width(vectors.shape[1], tower, dataset)
    return dict(zip(classes, vectors))


def check_text_width(width: int, tower: TextTower, dataset: Any) -> None:
    """InputError unless ``tower``'s ``width``-d text embeddings fit the dataset's features."""
    dim = int(dataset.feature_dim)
    if width != dim:
        raise InputError(
            f"the text tower of {tower.describe()} ({tower.source}) gives {width}-d embeddings, but dataset "
            f"{dataset.name} has {dim}-d features: features and class text must come from the same CLIP model"
        )


def save_text_embeddings(path: str | os.PathLike, table: Mapping[str, np.ndarray]) -> None:
    """Write ``{class name: [D] vector}`` as an ``.npz`` (atomically), one float32 array per name."""
    with atomic_open(path, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
        for name, vector in table.items():
            with archive.open(f"{name}.npy", "w") as member:  # np.savez's layout, any class name
                np.lib.format.write_array(member, np.asarray(vector, dtype=np.float32).reshape(-1))
