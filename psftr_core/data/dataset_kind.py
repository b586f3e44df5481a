"""What psftr knows of a built-in dataset, in one frozen descriptor: ``BuiltinDataset``.

One descriptor per built-in lives in ``psftr_core/data/builtins/<name>.py`` and is listed
in the registry ``psftr_core/data/builtins/__init__.py``. Everything that differs between
built-ins is a field here, read where it is needed:

- loading (``psftr_core.data.builtin_loader``): ``layout`` (where annotations, features
  and feature timing are found, and the package data used when they are absent) and
  ``rules`` (the protocol applied while reading the annotations);
- zero-shot splits (``psftr_core.data.splits``): ``standard_splits``;
- evaluation (``psftr_core.evaluation.protocol.default_tious``): ``tious``;
- the CLIP text tower and checkpoint feature spec (``psftr_core.runtime.clip_source``):
  ``clip``, the CLIP that made the released features;
- configuration (``psftr_core.config.preset``): ``preset``, the overrides of the default
  config, shaped like a ``--config`` YAML file.

A folder with a ``dataset.yaml`` (``psftr extract`` output, synthetic data, one's own
features) needs no descriptor: the file names its parts, its rules are all off
(``LoadingRules()``), and it takes the default preset and tIoUs (THUMOS14's) unless its
name is a built-in's name or alias (``aliases``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class LoadingRules:
    """Protocol rules applied while reading annotations (all off for a dataset.yaml folder)."""

    ignore_labels: frozenset[str] = frozenset()  # dropped silently (e.g. Ambiguous)
    excluded_videos: frozenset[str] = frozenset()
    min_instance_seconds: float | None = None  # drop instances with end - start <= this
    min_instance_frames: int | None = None  # drop instances with end - start <= frames / fps
    frames_per_feature: int | None = None  # timing rule 3 of psftr_core.data.datasets
    v_prefix: bool = False  # match key "abc" to feature "v_abc.npy" and back
    # Keep instances past the video's end as published (a benchmark scores them so); else
    # those starting after the end are dropped and ends past it clipped, with a warning.
    keep_past_end: bool = False


@dataclass(frozen=True)
class BuiltinLayout:
    """Where a built-in's parts are in its data root; for each item the first match wins.

    File names without a folder are package data (``psftr_core/data/reference/``).
    """

    feature_dirs: tuple[str, ...]  # folders of <video_id>.npy; else the .npy files in the root
    annotation_files: tuple[str, ...]
    # What each annotation file is, for the error when none is found (None: the file is required).
    annotation_origins: tuple[str, ...] = ()
    packaged_annotations: str | None = None  # used when the root has none; None = required
    info_files: tuple[str, ...] = ()  # feature_info.json layout
    packaged_info: str | None = None  # used when the root has none; None = timing without info
    classes_file: str | None = None  # one class name a line; None = the annotations' classes
    subset_pairs: tuple[tuple[str, str], ...] = (("train", "test"),)  # (train, test), first present wins
    feature_source: str = "`psftr extract`"  # where the features come from, for error messages


@dataclass(frozen=True)
class PackagedSplits:
    """Standard zero-shot splits shipped as package data.

    ``file`` has the layout of ``zero_shot_splits.json`` (``{"datasets": {key: {"splits":
    {"train_75_test_25": [...], "train_50_test_50": [...]}}}}``); ``key`` names the dataset in it.
    """

    key: str
    file: str = "zero_shot_splits.json"


@dataclass(frozen=True)
class ClipProvenance:
    """The CLIP model that made a feature release: its open_clip name, weights and weights id."""

    model: str
    pretrained: str
    weights_id: str


@dataclass(frozen=True)
class BuiltinDataset:
    """One built-in dataset kind: how to load it, split it, score it and configure its model.

    ``name`` is what ``--dataset`` and ``--preset`` take (lower case). ``aliases`` are other
    names a dataset of this kind goes by (lower case, e.g. a dataset.yaml ``name:``); they
    choose the preset (``psftr_core.config.preset_for_dataset``), not what is loaded.
    """

    name: str
    layout: BuiltinLayout
    tious: tuple[float, ...]  # the benchmark's mAP thresholds
    rules: LoadingRules = LoadingRules()
    aliases: tuple[str, ...] = ()
    standard_splits: PackagedSplits | None = None  # None: seeded random splits
    clip: ClipProvenance | None = None  # None: not known by convention
    # Config overrides by section, e.g. {"model": {"dec_layers": 2}}; {} = the default config.
    preset: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
