"""The one rule that turns a vocabulary into [K, D] text embeddings, for train, evaluate and detect.

(a) Table or tower: a feature dataset's ``text_embeddings`` table is used when it has a
    vector for every name (matched by ``name_key``); no CLIP is loaded then.
(b) A table that lacks names: every name is encoded with the tower instead (vectors of
    two sources are never mixed), with one warning naming the missing names. Where no
    CLIP is known for the features (no checkpoint record, no manifest, not a built-in
    release, no ``--clip-model``/``--clip-config``) that is an InputError listing the
    names the table has.
(c) Which tower: ``psftr_core.runtime.clip_source``'s rules, through
    :class:`ClipProvider`; the flags are checked against the record that decides (model
    name, weights id, config), loading checks the weights' sha256 and the config's
    hash, and the text width must be the feature width.
(d) Prompt: the one asked for (``--prompt``; the config's or the checkpoint's
    ``data.prompt``), else the dataset's, else ``DEFAULT_PROMPT`` (:func:`text_prompt`).
    Several templates or descriptions (a ``TextRecipe``, from ``--prompt`` given more
    than once or an actions file with descriptions): each name's embedding is the
    normalised mean of its texts' unit embeddings (prompt ensembling), computed by the
    same ``encode_class_names`` for detect, train and evaluate.
(e) Cache: each prompt's embedding under ``<cache dir, else the user cache>/text/``,
    keyed by model id, weights id, prompt and name (``features.clip.encode_texts``), or
    an ensemble's by model id, weights id, dtype and its exact list of texts
    (``features.clip.text_list_key``).

Training decides once per split, on its seen classes (:func:`class_text_tower`), and
uses that choice for every text of the run (the calibration's subsets of the seen
classes included), so the model, its calibration and its checkpoint's ``text_clip``
share one source; a table that lacks a seen class is no error there, since the
features' own CLIP encodes it as well as it encodes any other name. Evaluation decides
on the unseen classes, and detection on the actions asked for, by the same rule.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from psftr_core.data.vocabulary import TextRecipe, name_key, read_action_texts
from psftr_core.defaults import DEFAULT_PROMPT
from psftr_core.device import resolve_device
from psftr_core.errors import InputError, PsftrError
from psftr_core.features.text import (TextTower, check_text_width, encode_class_names, load_text_tower,
                                      lookup_text_embeddings)
from psftr_core.runtime.clip_source import (ClipRequest, recorded_dataset_tower, recorded_tower, requested_tower,
                                            with_request)

_log = logging.getLogger(__name__)

# Records of the CLIP to use, by rank: the lowest present decides (clip_source's order).
_TEXT_CLIP, _FEATURES, _FEATURE_SPEC = 0, 1, 2


class ClipProvider:
    """The CLIP model a run encodes names with (and, for video inputs, makes features
    with), loaded on first use only: a dataset whose table has every name never needs it.

    Which model: the records adopted (:meth:`adopt`, :meth:`adopt_dataset`,
    :meth:`adopt_checkpoint`; the first of a checkpoint's ``text_clip``, the features'
    record, a feature spec's model and weights decides), else the ``--clip-*`` flags,
    else ViT-B-16 openai. The flags are checked against each record when it is adopted
    (an InputError naming both); a record that a better one already outranks is not
    consulted, and nothing changes the model once it is loaded.
    """

    def __init__(self, model_name: str | None, pretrained: str | None, config_file: Any, device: str,
                 cache_dir: Any):
        self.request = ClipRequest(model_name, pretrained, config_file)
        self.device = device
        self.cache_root = Path(cache_dir).expanduser() if cache_dir is not None else None
        self._records: dict[int, TextTower] = {}
        self._flags_tower: TextTower | None = None
        self._loaded: TextTower | None = None  # the tower with what loading showed
        self._handle: Any = None

    @classmethod
    def from_request(cls, request: ClipRequest | None = None, device: str = "cpu",
                     cache_dir: Any = None) -> ClipProvider:
        """A provider for the ``--clip-*`` flags ``request`` (None: none given)."""
        request = request or ClipRequest()
        return cls(request.model, request.pretrained, request.config_file, device, cache_dir)

    def adopt(self, model_name: str | None, pretrained: str | None, owner: str, *, weights_id: str | None = None,
              text_clip: Mapping[str, Any] | None = None) -> None:
        """Take the CLIP of ``owner`` (a checkpoint, a feature dataset): its ``text_clip``
        record when given, else the model and weights of its features (``weights_id``: what
        the weights must be; derived from a tag)."""
        if isinstance(text_clip, Mapping):
            self._adopt(_TEXT_CLIP, lambda: with_request(TextTower.from_dict(text_clip, owner), self.request))
        self._adopt(_FEATURE_SPEC, lambda: recorded_tower(model_name, pretrained, weights_id, owner, self.request))

    def adopt_dataset(self, dataset: Any) -> None:
        """Take the CLIP a feature dataset records (manifest, built-in convention), if any."""
        self._adopt(_FEATURES, lambda: recorded_dataset_tower(dataset, self.request))

    def adopt_checkpoint(self, ckpt: Mapping[str, Any], where: str = "the checkpoint") -> None:
        """Take a checkpoint's ``text_clip``, else the CLIP of its feature spec."""
        spec = ckpt.get("feature_spec") or {}
        self.adopt(spec.get("clip_model"), spec.get("clip_pretrained"), f"checkpoint {where}",
                   weights_id=spec.get("clip_weights_id"), text_clip=ckpt.get("text_clip"))

    def _adopt(self, rank: int, record: Callable[[], TextTower | None]) -> None:
        if self._handle is not None or any(r <= rank for r in self._records):
            return  # loaded already, or outranked: not consulted
        tower = record()
        if tower is not None:
            self._records[rank] = tower

    @property
    def known(self) -> bool:
        """Whether a record or a flag names the CLIP (not just the default model)."""
        return bool(self._records) or self.request.model is not None or self.request.config_file is not None

    @property
    def tower(self) -> TextTower:
        """The tower it loads (once loaded: with the weights id, width and config hash it showed)."""
        if self._loaded is not None:
            return self._loaded
        if self._records:
            return self._records[min(self._records)]
        if self._flags_tower is None:
            given = self.known or self.request.pretrained is not None
            self._flags_tower = requested_tower(
                self.request, "--clip-model/--clip-pretrained/--clip-config" if given else "the default CLIP model")
        return self._flags_tower

    def describe(self) -> str:
        tower = self.tower
        return f"CLIP {tower.model_name} ({tower.pretrained})"

    def handle(self) -> Any:
        """The loaded ``ClipHandle`` (InputError for weights or a config that are not the recorded ones)."""
        if self._handle is None:
            tower = self.tower
            self._handle = load_text_tower(tower, resolve_device(self.device))
            self._loaded = tower.pinned(self._handle)
        return self._handle

    def pinned(self) -> TextTower:
        """The tower, loaded, with what loading showed (what a checkpoint records)."""
        self.handle()
        assert self._loaded is not None
        return self._loaded

    def encode_texts(self, names: Sequence[str], prompt: str | TextRecipe) -> np.ndarray:
        """[K, D] float32 embeddings of ``prompt`` filled with each name, or of a recipe's
        ensembles (cached on disk; :func:`encode_class_names`)."""
        return encode_class_names(names, self.pinned(), prompt, self.cache_root, resolve_device(self.device))


# ------------------------------------------------------------------ the rule


def vocabulary_text_tower(names: Sequence[str], clip: ClipProvider, table: Mapping[str, Any] | None = None,
                          dataset: Any = None, warnings: list[str] | None = None) -> TextTower | None:
    """Parts (a)-(c) of the rule: None when ``table`` has a vector for every name; else the
    tower of ``clip``, loaded, checked against ``dataset``'s feature width (when given)
    and pinned. A table that lacks names gives one warning (appended to ``warnings``,
    else logged); with no CLIP known, an InputError listing the names it has. Bad or
    conflicting ``--clip-*`` flags are an InputError even where the table is used."""
    clip.tower  # resolving it checks the flags (nothing is loaded)
    if table:
        _, missing = lookup_text_embeddings(table, names)
        if not missing:
            return None
        problem = (f"no text embedding for action{'s' if len(missing) > 1 else ''} {_listed(missing)} "
                   f"({len(missing)} of {len(names)} actions) in the dataset's text_embeddings")
        if not clip.known:
            raise InputError(
                f"{problem}, and the dataset does not record which CLIP model made its features; "
                f"use its names ({_listed(sorted(table))}) or name the model with --clip-model"
            )
        try:
            clip.handle()
        except PsftrError as err:
            raise InputError(f"{problem}, and {clip.describe()} cannot encode it: {err}") from None
        _warn(f"{problem}: all actions are encoded with {clip.describe()} instead", warnings)
    handle = clip.handle()
    if dataset is not None:
        check_text_width(int(handle.embed_dim), clip.tower, dataset)
    return clip.pinned()


def class_text_tower(dataset: Any, names: Sequence[str], request: ClipRequest | None = None,
                     ckpt: Mapping[str, Any] | None = None, where: str = "the checkpoint",
                     device: str = "cpu") -> TextTower | None:
    """The rule for ``names`` of ``dataset``: None (its table has them all) or the tower,
    loaded and checked: ``ckpt``'s record first (``where`` names it), then the features',
    then the flags ``request``. Train calls it on a split's seen classes, evaluate on its
    unseen ones, before any model runs; warnings are logged."""
    clip = ClipProvider.from_request(request, device)
    if ckpt is not None:
        clip.adopt_checkpoint(ckpt, where)
    clip.adopt_dataset(dataset)
    return vocabulary_text_tower(names, clip, getattr(dataset, "text_embeddings", None), dataset)


def class_prompt(data_cfg: Any, dataset: Any) -> str | TextRecipe:
    """What the class names of train and evaluate are encoded with: ``data.prompt``, or a
    :class:`TextRecipe` when ``data.prompts`` or ``data.descriptions_file`` is set (its
    templates, else ``data.prompt``, and the file's descriptions; a relative file is in the
    dataset folder). InputError naming the file when it cannot be read."""
    templates = tuple(getattr(data_cfg, "prompts", ()) or ())
    descriptions: dict[str, tuple[str, ...]] = {}
    name = getattr(data_cfg, "descriptions_file", None)
    if name:
        path = Path(name).expanduser()
        if not path.is_absolute() and getattr(dataset, "root", None) is not None:
            path = Path(dataset.root) / path
        descriptions = {name_key(action): tuple(texts) for action, texts in read_action_texts(path) if texts}
    if not templates and not descriptions:
        return data_cfg.prompt
    return TextRecipe(templates or (data_cfg.prompt,), descriptions)


def class_text_embeddings(dataset: Any, class_names: Sequence[str], tower: TextTower | None = None,
                          prompt: str | TextRecipe | None = None, cache_dir: Any = None,
                          device: str = "cpu") -> np.ndarray:
    """[K, D] float32 text embeddings of ``class_names`` in that order, for train and evaluate.

    ``tower``: the choice :func:`class_text_tower` made for the run; None: choose now by
    the same rule (the dataset's table if it has every name, else the features' CLIP).
    Prompt: ``prompt``, else the dataset's (:func:`text_prompt`).
    """
    table = getattr(dataset, "text_embeddings", None)
    if tower is None:
        tower = class_text_tower(dataset, class_names, device=device)
    if tower is None:
        if isinstance(prompt, TextRecipe):
            _warn("the dataset's text_embeddings has every class: data.prompts and data.descriptions_file are not "
                  "used (pass --clip-model to encode the classes' texts)", None)
        return table_vectors(table, class_names)
    dataset_prompt = text_prompt(getattr(dataset, "prompt", None))
    chosen = prompt if isinstance(prompt, TextRecipe) else text_prompt(prompt, dataset_prompt)
    text = encode_class_names(class_names, tower, chosen, cache_dir, device, default_prompt=dataset_prompt)
    check_text_width(text.shape[1], tower, dataset)
    return text


def vocabulary_text_embeddings(
    vocabulary: list[str],
    clip: ClipProvider,
    prompt: str | TextRecipe | None,
    dataset_table: Mapping[str, np.ndarray] | None = None,
    warnings: list[str] | None = None,
    *,
    dataset: Any = None,
) -> tuple[np.ndarray, str]:
    """[K, D] text embeddings for detection's vocabulary, and where they came from in words.

    The rule of the module docstring: ``dataset_table`` when it has every action, else
    every action through ``clip`` on ``prompt`` (else ``DEFAULT_PROMPT``). ``dataset``:
    the feature dataset, whose full record (manifest: weights id, config; built-in
    convention) ``clip`` adopts and whose feature width the tower must have.
    """
    if dataset is not None:
        clip.adopt_dataset(dataset)
    tower = vocabulary_text_tower(vocabulary, clip, dataset_table, dataset, warnings)
    if tower is None:
        if isinstance(prompt, TextRecipe):  # the table wins (rule (a)): say the texts were not used
            _warn("the dataset's text_embeddings has every action: the prompt templates and descriptions are not "
                  "used (pass --clip-model to encode them)", warnings)
        return table_vectors(dataset_table, vocabulary), "the dataset's text_embeddings"
    if isinstance(prompt, TextRecipe):
        return clip.encode_texts(vocabulary, prompt), f"{clip.describe()} {prompt.describe()}"
    prompt = text_prompt(prompt)
    return clip.encode_texts(vocabulary, prompt), f"{clip.describe()} prompts \"{prompt}\""


# ------------------------------------------------------------------ helpers


def text_prompt(*choices: str | None) -> str:
    """Part (d): the first prompt given, in the caller's order of precedence, else ``DEFAULT_PROMPT``."""
    return next((p for p in choices if p), DEFAULT_PROMPT)


def table_vectors(table: Mapping[str, Any] | None, names: Sequence[str]) -> np.ndarray:
    """[K, D] float32 rows of ``table`` for ``names``; InputError naming any it lacks."""
    found, missing = lookup_text_embeddings(table, names)
    if missing:
        raise InputError(f"no text embedding for {_listed(missing)} in the dataset's text_embeddings")
    return np.stack([found[name] for name in names]).astype(np.float32)


def _listed(names: Sequence[str], limit: int = 8) -> str:
    return ", ".join(repr(n) for n in names[:limit]) + (", ..." if len(names) > limit else "")


def _warn(message: str, warnings: list[str] | None) -> None:
    if warnings is None:
        _log.warning(message)
    else:
        warnings.append(message)
