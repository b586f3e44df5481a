"""Feature datasets: annotations + per-video CLIP features + zero-shot splits.

``load_dataset(name_or_dir, data_root=None)`` returns a ``FeatureDataset``
(``psftr_core.data.feature_dataset``) for

- a directory with a ``dataset.yaml`` (keys in docs/datasets.md;
  ``psftr_core.data.folder_dataset``), or
- a built-in dataset (``thumos14``, ``anet``: the registry ``psftr_core.data.builtins``,
  one descriptor per dataset), read from its published CLIP-feature layout in
  ``data_root`` (``--data-root DIR``) or ``$PSFTR_DATA/<name>``
  (``psftr_core.data.builtin_loader``). Each descriptor's module says where its files
  are found and which protocol rules of GAP's data pipeline apply.

Timing of feature ``i`` of a video (``snippet_times``), first rule that applies:

1. the video has a ``feature_info`` entry: ``(i + 0.5) * snippet_duration / snippet_length``;
2. the dataset sets ``feature_fps``: ``(i + 0.5) / feature_fps``;
3. a built-in dataset (frames per feature known) with the video's fps:
   ``(i + 0.5) * frames_per_feature / fps``;
4. otherwise the T features are spread evenly: ``(i + 0.5) * duration / T``;

and the result is clipped to ``[0, duration]``.

Ground-truth instances (every dataset): those with end <= start and those that end
before 0 s are dropped, a start before 0 s is clipped to 0
(:func:`~psftr_core.segments.clip_to_video_start`); each kind dropped gets one warning
with its count.

Videos listed in the annotations without a feature file are skipped with one warning
(``logging``, the loggers under ``psftr_core.data``); a dataset with no usable video is
an InputError. A feature file with NaN or infinite values is an InputError naming it
when it is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from psftr_core.data.builtin_loader import load_builtin
from psftr_core.data.builtins import builtin_dataset, builtin_names
from psftr_core.data.feature_dataset import FeatureDataset
from psftr_core.data.folder_dataset import load_folder_dataset
from psftr_core.errors import InputError


def load_dataset(name_or_dir: str | os.PathLike, data_root: str | os.PathLike | None = None) -> FeatureDataset:
    """Load a dataset directory (with ``dataset.yaml``) or a built-in (``thumos14``, ``anet``).

    A directory with a ``dataset.yaml`` wins over a built-in name; ``data_root`` only
    applies to built-ins (default ``$PSFTR_DATA/<name>``).
    """
    where = dataset_location(name_or_dir)
    if isinstance(where, Path):
        return load_folder_dataset(where)
    return load_builtin(where, data_root)


def dataset_location(name_or_dir: str | os.PathLike) -> Path | Any:
    """The dataset folder (with ``dataset.yaml``) or the built-in ``name_or_dir`` names,
    without reading it: the commands check it before the slow imports (torch). InputError
    for a name that is neither."""
    path = Path(name_or_dir).expanduser()
    if path.is_file() and path.name == "dataset.yaml":
        path = path.parent
    if (path / "dataset.yaml").is_file():
        return path
    kind = builtin_dataset(str(name_or_dir).lower())
    if kind is not None:
        return kind
    if path.is_dir():
        raise InputError(f"dataset folder {path} has no dataset.yaml (see the README for its keys)")
    raise InputError(
        f"unknown dataset {str(name_or_dir)!r}: use {' or '.join(builtin_names())}, or a folder with a dataset.yaml"
    )
