"""Class-name text embeddings: from a dataset's table or from the CLIP text tower.

One name-matching rule everywhere (:func:`psftr_core.infer.vocabulary.name_key`:
trimmed, case-insensitive, Unicode-normalised), for training, evaluation and detection.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from psftr_core.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, DEFAULT_PROMPT
from psftr_core.errors import InputError
from psftr_core.features.cache import default_cache_dir
from psftr_core.infer.vocabulary import name_key


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


def class_text_embeddings(
    dataset: Any,
    class_names: Sequence[str],
    clip_model: str | None = None,
    clip_pretrained: str | None = None,
    cache_dir: Any = None,
    device: str = "cpu",
    prompt: str | None = None,
) -> np.ndarray:
    """[K, D] float32 text embeddings of ``class_names`` in that order.

    The dataset's ``text_embeddings`` table wins (an InputError names any class it
    lacks); otherwise the prompts are encoded with the CLIP text tower of
    ``clip_model``/``clip_pretrained`` (the features' CLIP model; default ViT-B-16
    openai) and cached on disk by ``encode_texts`` (``cache_dir``, default the psftr
    cache directory), keyed by model, weights, prompt and class name.
    """
    table = getattr(dataset, "text_embeddings", None)
    if table:
        found, missing = lookup_text_embeddings(table, class_names)
        if missing:
            raise InputError(
                f"the text embeddings file of dataset {dataset.name!r} has no entry for class "
                f"{missing[0]!r} ({len(missing)} missing); add it or remove the file to use CLIP"
            )
        return np.stack([found[name] for name in class_names])

    from psftr_core.features import clip as clip_models

    template = prompt or getattr(dataset, "prompt", None) or DEFAULT_PROMPT
    handle = shared_clip(clip_model or DEFAULT_CLIP_MODEL, clip_pretrained or DEFAULT_CLIP_PRETRAINED, device)
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    return np.asarray(clip_models.encode_texts(handle, list(class_names), prompt=template, cache_dir=cache),
                      dtype=np.float32)


_CLIP_HANDLES: dict[tuple[str, str, str], Any] = {}


def shared_clip(model_name: str, pretrained: str, device: str) -> Any:
    """One loaded CLIP per (model, weights, device) per process (evaluating 10 splits loads it once)."""
    from psftr_core.features import clip as clip_models

    key = (model_name, pretrained, str(device))
    if key not in _CLIP_HANDLES:
        _CLIP_HANDLES[key] = clip_models.load_clip(model_name, pretrained, device=str(device))
    return _CLIP_HANDLES[key]
