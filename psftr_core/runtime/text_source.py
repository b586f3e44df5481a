"""From a vocabulary to [K, D] text embeddings: a dataset's table or the CLIP text tower.

:class:`ClipProvider` is the CLIP model a run uses, loaded on first use;
:func:`vocabulary_text_embeddings` decides where each run's text embeddings come from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from psftr_core.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, DEFAULT_PROMPT
from psftr_core.device import resolve_device
from psftr_core.errors import InputError, PsftrError
from psftr_core.features.cache import default_cache_dir
from psftr_core.features.clip import encode_texts, load_clip, same_clip_model
from psftr_core.features.text import lookup_text_embeddings


class ClipProvider:
    """The CLIP model to use, loaded on first use only (a dataset with text embeddings
    never needs it). ``adopt`` takes the model of a checkpoint or feature dataset unless
    the user asked for another one, which is an ``InputError``."""

    def __init__(self, model_name: str | None, pretrained: str | None, config_file: Any, device: str,
                 cache_dir: Any):
        self.requested_model = model_name
        self.requested_pretrained = pretrained
        self.model_name = model_name or DEFAULT_CLIP_MODEL
        self.pretrained = pretrained or DEFAULT_CLIP_PRETRAINED
        self.config_file = config_file
        self.device = device
        self.cache_root = Path(cache_dir).expanduser() if cache_dir is not None else None
        self._handle: Any = None

    def adopt(self, model_name: str | None, pretrained: str | None, owner: str) -> None:
        if not model_name:
            return
        if self.requested_model is not None and not same_clip_model(self.requested_model, model_name):
            raise InputError(
                f"--clip-model {self.requested_model} differs from the CLIP model of {owner} ({model_name}); "
                f"omit --clip-model ({owner} decides) or use one made with {self.requested_model}"
            )
        if self.requested_model is None:
            self.model_name = model_name
        if pretrained and self.requested_pretrained is None:
            self.pretrained = pretrained

    def describe(self) -> str:
        # Once loaded, the model's own name (a --clip-config architecture is named by its config).
        name = self._handle.model_name if self._handle is not None else self.model_name
        return f"CLIP {name} ({self.pretrained})"

    def handle(self) -> Any:
        if self._handle is None:
            self._handle = load_clip(
                self.model_name, self.pretrained, config_file=self.config_file, device=resolve_device(self.device)
            )
        return self._handle

    def encode_texts(self, names: Sequence[str], prompt: str) -> np.ndarray:
        root = self.cache_root if self.cache_root is not None else default_cache_dir()
        # encode_texts keeps its entries under <root>/text/.
        return np.asarray(encode_texts(self.handle(), list(names), prompt=prompt, cache_dir=root), np.float32)


def vocabulary_text_embeddings(
    vocabulary: list[str],
    clip: ClipProvider,
    prompt: str | None,
    dataset_table: Mapping[str, np.ndarray] | None = None,
    dataset_clip: tuple[str | None, str | None] = (None, None),
    warnings: list[str] | None = None,
) -> tuple[np.ndarray, str]:
    """[K, D] text embeddings for the vocabulary, and where they came from in words.

    A feature dataset's ``text_embeddings`` (``dataset_table``) are used when they have a vector for every
    action (names match case-insensitively). Otherwise all actions are encoded with CLIP
    (mixing vectors of two sources would be meaningless): the dataset's recorded CLIP
    model (``dataset_clip``: model, pretrained), or ``--clip-model``; a dataset that records no CLIP model (e.g. synthetic
    features) with missing names is an ``InputError`` listing the names it has. A note on the fallback is appended to ``warnings``.
    """
    dataset_vectors = dataset_table
    if dataset_vectors:
        found, missing = lookup_text_embeddings(dataset_vectors, vocabulary)
        if not missing:
            return np.stack([found[name] for name in vocabulary]).astype(np.float32), "the dataset's text_embeddings"
    recorded = dataset_clip
    if dataset_vectors:
        known = sorted(dataset_vectors)
        hint = f"{', '.join(repr(k) for k in known[:8])}{', ...' if len(known) > 8 else ''}"
        problem = (
            f"no text embedding for action {missing[0]!r} ({len(missing)} of {len(vocabulary)} actions) "
            f"in the dataset's text_embeddings"
        )
        if recorded[0] is None and clip.requested_model is None:
            raise InputError(
                f"{problem}, and the dataset does not record which CLIP model made its features; "
                f"use its names ({hint}) or name the model with --clip-model"
            )
        clip.adopt(*recorded, "the feature dataset")
        try:
            clip.handle()
        except PsftrError as err:
            raise InputError(f"{problem}, and {clip.describe()} cannot encode it: {err}") from None
        if warnings is not None:
            warnings.append(f"{problem}: all actions are encoded with {clip.describe()} instead")
    else:
        clip.adopt(*recorded, "the feature dataset")
    prompt = prompt or DEFAULT_PROMPT
    return clip.encode_texts(vocabulary, prompt), f"{clip.describe()} prompts \"{prompt}\""
