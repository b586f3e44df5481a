"""Building a ``FeatureDataset`` from its parts, the same way for every kind of dataset:
read the annotations, keep the videos that have features, time their features, check the
splits and read the text embeddings. The kinds find the parts: ``builtin_loader`` (a
built-in's data root) and ``folder_dataset`` (a ``dataset.yaml``).
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psftr_core.data.annotations import (
    choose_subsets, classes_from_annotations, first_instances, fit_to_duration, parse_annotations,
)
from psftr_core.data.dataset_kind import LoadingRules
from psftr_core.data.feature_dataset import Annotation, FeatureDataset, VideoRecord
from psftr_core.data.feature_timing import FeatureTiming
from psftr_core.data.splits import SplitTable
from psftr_core.errors import InputError
from psftr_core.io.json_file import read_json_file

if TYPE_CHECKING:  # numpy is imported where used, to keep `psftr --help` fast
    import numpy as np

_log = logging.getLogger(__name__)


def build_dataset(
    *,
    name: str,
    root: Path,
    annotations_path: Path,
    features_dir: Path,
    info: dict | None,
    info_path: Path | None,
    classes: list[str] | None,
    subset_choice: tuple[str | None, str | None] | tuple[tuple[str, str], ...],
    rules: LoadingRules,
    feature_fps: float | None,
    prompt: str,
    text_embeddings_path: Path | None,
    split_table: SplitTable,
) -> FeatureDataset:
    """Read the annotations, keep the videos that have features, and time their features."""
    if not features_dir.is_dir():
        raise InputError(f"dataset {name}: feature folder {features_dir} does not exist")
    data = read_json_file(annotations_path, "annotations", unique_keys=True)  # a video id twice: refused
    if classes is None:  # labels the rules ignore are no class
        classes = [c for c in classes_from_annotations(data, annotations_path) if c not in rules.ignore_labels]
    parsed = _usable_videos(name, data, annotations_path, classes, rules, features_dir)
    train_subset, test_subset = choose_subsets(name, subset_choice, data, annotations_path)

    timing = FeatureTiming(name, annotations_path, features_dir, info, info_path, feature_fps,
                           rules.frames_per_feature)
    videos = {
        video_id: timing.record(video_id, key, entry, annotations)
        for video_id, (key, entry, annotations) in parsed.items()
    }
    _fit_instances(name, annotations_path, videos, rules)
    feature_dim = _common_width(name, features_dir, timing.widths)
    if timing.not_in_info:
        _log.warning(
            f"dataset {name}: {timing.not_in_info} videos have no entry in {info_path}; their feature times "
            f"follow the video's frame rate or duration"
        )

    dataset = FeatureDataset(
        name=name,
        root=root,
        classes=list(classes),
        videos=videos,
        features_dir=features_dir,
        train_subset=train_subset,
        test_subset=test_subset,
        prompt=prompt,
        feature_fps=feature_fps,
        frames_per_feature=rules.frames_per_feature,
        _stride=timing.stride,
        _info_length=timing.info_length,
        _split_table=split_table,
        _feature_dim=feature_dim,
    )
    split_table.validate(dataset.classes)
    if text_embeddings_path is not None:
        dataset.text_embeddings = _load_text_embeddings(text_embeddings_path, dataset)
    return dataset


def _usable_videos(
    name: str, data: Any, path: Path, classes: list[str], rules: LoadingRules, features_dir: Path
) -> dict[str, tuple[str, dict, list[Annotation]]]:
    """The parsed videos that have a feature file; one warning per kind of thing skipped."""
    parsed, counts = parse_annotations(data, path, classes, rules, _feature_ids(features_dir))
    if not parsed:
        raise InputError(
            f"dataset {name}: no usable videos: none of the {counts['total']} videos in {path} "
            f"has a feature file {features_dir}/<video_id>.npy (features come from the published "
            f"CLIP-feature release or `psftr extract`)"
        )
    if counts["missing"]:
        _log.warning(
            f"dataset {name}: {counts['missing']} of {counts['total']} videos have no feature file in "
            f"{features_dir} and are skipped"
        )
    if counts["unknown"]:
        labels = ", ".join(sorted(counts["unknown"]))
        _log.warning(
            f"dataset {name}: dropped {sum(counts['unknown'].values())} instances whose label is not a "
            f"dataset class: {labels}"
        )
    if counts["empty"]:
        _log.warning(f"dataset {name}: dropped {counts['empty']} instances with end <= start")
    if counts["before_zero"]:
        _log.warning(f"dataset {name}: dropped {_instances(counts['before_zero'])} ending before 0 s")
    if counts["clipped"]:
        _log.info(f"dataset {name}: clipped the start of {_instances(counts['clipped'])} to 0 s")
    return parsed


def _fit_instances(name: str, path: Path, videos: dict[str, VideoRecord], rules: LoadingRules) -> None:
    """Instances past their video's end: dropped (starting after it) or clipped, one warning per
    kind; with ``rules.keep_past_end`` (a benchmark's published ground truth) kept, noted at info."""
    found: dict[str, list] = {"past_end": [], "end_clipped": []}
    for video in videos.values():
        fitted = fit_to_duration(video.video_id, video.annotations, video.duration, found)
        if not rules.keep_past_end:
            video.annotations = fitted
    past, clipped = found["past_end"], found["end_clipped"]
    if rules.keep_past_end:
        if past or clipped:
            _log.info(f"dataset {name}: {_instances(len(past) + len(clipped))} in {path} end after their "
                      f"video's duration (first: {first_instances(past + clipped)}); kept, as the benchmark "
                      f"scores them")
        return
    if past:
        _log.warning(f"dataset {name}: dropped {_instances(len(past))} in {path} that start after their video "
                     f"ends (first: {first_instances(past)})")
    if clipped:
        _log.warning(f"dataset {name}: clipped the end of {_instances(len(clipped))} in {path} to their video's "
                     f"duration (first: {first_instances(clipped)})")


def _common_width(name: str, features_dir: Path, widths: dict[str, int]) -> int:
    """The feature width D of the dataset; InputError naming a feature file of another width
    (mixed widths cannot be one CLIP model's features)."""
    counts = Counter(widths.values())
    # The width of most files; on a tie, that of the first video.
    first = widths[min(widths)]
    width = max(counts, key=lambda d: (counts[d], d == first))
    odd = sorted(video for video, d in widths.items() if d != width)
    if odd:
        more = f" (and {len(odd) - 1} more of other widths)" if len(odd) > 1 else ""
        raise InputError(
            f"dataset {name}: feature file {features_dir / (odd[0] + '.npy')} has D={widths[odd[0]]}, but the "
            f"other {counts[width]} feature files have D={width}{more}: all must come from one CLIP model; "
            f"re-extract it or remove it"
        )
    return width


def _instances(count: int) -> str:
    return f"{count} instance" if count == 1 else f"{count} instances"


def _feature_ids(features_dir: Path) -> set[str]:
    """The video ids of the ``<video_id>.npy`` files in ``features_dir``."""
    try:
        with os.scandir(features_dir) as entries:
            return {e.name[:-4] for e in entries if e.name.endswith(".npy") and not e.name.startswith(".")}
    except OSError as err:
        raise InputError(f"cannot list feature folder {features_dir}: {err}") from None


def _load_text_embeddings(path: Path, dataset: FeatureDataset) -> dict[str, np.ndarray]:
    """A ``text_embeddings.npz``: one ``[D]`` vector (D = the features') for every class."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as npz:
            embeddings = {key: np.asarray(npz[key], dtype=np.float32) for key in npz.files}
    except FileNotFoundError:
        raise InputError(f"text embeddings file {path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InputError(f"cannot read text embeddings {path} (expected an .npz, one [D] array per class): {err}") from None
    missing = [c for c in dataset.classes if c not in embeddings]
    if missing:
        raise InputError(
            f"text embeddings {path} have no vector for class {missing[0]!r} "
            f"({len(missing)} of {len(dataset.classes)} classes missing)"
        )
    dim = dataset.feature_dim
    for key, vector in embeddings.items():
        if vector.ndim != 1 or vector.shape[0] != dim:
            raise InputError(
                f"text embeddings {path}: {key!r} has shape {list(vector.shape)}; expected [{dim}] (the feature D)"
            )
    return embeddings

