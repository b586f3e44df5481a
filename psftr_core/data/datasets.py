"""Feature datasets: annotations + per-video CLIP features + zero-shot splits.

``load_dataset(name_or_dir, data_root=None)`` returns a ``FeatureDataset`` for

- a directory with a ``dataset.yaml`` (keys in the README), or
- a built-in dataset, ``thumos14`` or ``anet``, read from the published CLIP-feature
  layout in ``data_root`` (``--data-root DIR``) or ``$PSFTR_DATA/<name>``.

Expected layout of a built-in data root (first match wins for each item)::

    thumos14/                               anet/
      features/<video_id>.npy  [T, D]         features/<video_id>.npy  [T, D]
        (or CLIP_feature_8frame/, or the        (or CLIP_feature/, or the .npy
         .npy files directly in the root)        files directly in the root)
      Thumos14_annotations.json  optional     ActivityNet13_annotations.json  (GAP)
        (or annotations.json; default: the      or activity_net.v1-3.min.json (official)
         copy shipped with psftr)               or annotations.json          REQUIRED
      feature_info.json          optional     feature_info.json           optional
        (or Thumos14_info_8frame.json;          (or ActivityNet13_info.json; default:
         default: GAP's 8-frame info,            GAP's 16-frame info, shipped)
         shipped)
      text_embeddings.npz        optional     text_embeddings.npz         optional
        (class name -> [D]; replaces the CLIP text tower)

Features are those of the published GAP CLIP (ViT-B/16) release or of ``psftr extract``.

Protocol rules of the built-ins (GAP's data pipeline, which PSFTR builds on):

- THUMOS14: 20 classes (package data); train on subset ``val``, test on ``test``;
  ``Ambiguous`` instances dropped; test videos 270, 1292, 1496, 814, 504 excluded;
  instances no longer than one snippet (8 frames at the video's fps) dropped; one
  feature per 8 frames at native fps.
- ActivityNet1.3: 200 classes (package data); train on ``train`` (or ``training``),
  test on ``val`` (or ``validation``); instances of 1 s or less dropped; one feature
  per 16 frames at native fps; annotation keys without the ``v_`` prefix of the
  official file are matched to ``v_<id>.npy`` feature files (and ``v_`` keys to
  ``<id>.npy``); the video id is the feature file's name.

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
(``logging``, this module's logger); a dataset with no usable video is an InputError.
A feature file with NaN or infinite values is an InputError naming it when it is loaded.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psftr_core.data.reference_files import reference_lines, reference_path
from psftr_core.data.splits import Split, SplitTable, check_ratio, select_split
from psftr_core.defaults import DEFAULT_PROMPT
from psftr_core.errors import InputError
from psftr_core.io.json_file import read_json_file
from psftr_core.io.npy import read_npy_header
from psftr_core.segments import clip_to_video_start

if TYPE_CHECKING:  # numpy is imported where used, to keep `psftr --help` fast
    import numpy as np

_log = logging.getLogger(__name__)

BUILTIN_DATASETS = ("thumos14", "anet")
DATA_ENV = "PSFTR_DATA"

# The published zero-shot pipelines skip these THUMOS14 test videos (wrong or
# unusable annotations, e.g. segments past the end of video_test_0000814).
THUMOS14_EXCLUDED_VIDEOS = (
    "video_test_0000270",
    "video_test_0001292",
    "video_test_0001496",
    "video_test_0000814",
    "video_test_0000504",
)

_YAML_KEYS = {
    "name",
    "annotations",
    "features",
    "feature_info",
    "feature_fps",
    "train_subset",
    "test_subset",
    "text_embeddings",
    "splits",
    "prompt",
}


@dataclass(frozen=True)
class Annotation:
    """One ground-truth instance, in seconds."""

    start: float
    end: float
    label: str


@dataclass
class VideoRecord:
    """A usable video: has a feature file. ``annotations`` keep only known classes."""

    video_id: str
    subset: str
    duration: float
    fps: float | None
    annotations: list[Annotation]
    num_features: int | None  # T (from feature_info, else from the .npy header)
    feature_seconds: float | None  # seconds covered by the T features


@dataclass(frozen=True)
class _Rules:
    """Protocol rules applied while reading annotations (all off for dataset.yaml)."""

    ignore_labels: frozenset[str] = frozenset()  # dropped silently (e.g. Ambiguous)
    excluded_videos: frozenset[str] = frozenset()
    min_instance_seconds: float | None = None  # drop instances with end - start <= this
    min_instance_frames: int | None = None  # drop instances with end - start <= frames / fps
    frames_per_feature: int | None = None
    v_prefix: bool = False  # match key "abc" to feature "v_abc.npy" and back


@dataclass(frozen=True)
class _BuiltinSpec:
    name: str
    classes_file: str
    annotation_names: tuple[str, ...]
    packaged_annotations: str | None
    info_names: tuple[str, ...]
    packaged_info: str
    feature_dirs: tuple[str, ...]
    subset_pairs: tuple[tuple[str, str], ...]  # (train, test), first present wins
    rules: _Rules
    split_key: str


_BUILTINS = {
    "thumos14": _BuiltinSpec(
        name="thumos14",
        classes_file="thumos14_classes.txt",
        annotation_names=("Thumos14_annotations.json", "annotations.json"),
        packaged_annotations="thumos14_annotations.json",
        info_names=("feature_info.json", "Thumos14_info_8frame.json"),
        packaged_info="thumos14_feature_info_8frame.json",
        feature_dirs=("features", "CLIP_feature_8frame"),
        subset_pairs=(("val", "test"),),
        rules=_Rules(
            ignore_labels=frozenset({"Ambiguous"}),
            excluded_videos=frozenset(THUMOS14_EXCLUDED_VIDEOS),
            min_instance_frames=8,
            frames_per_feature=8,
        ),
        split_key="thumos14",
    ),
    "anet": _BuiltinSpec(
        name="anet",
        classes_file="activitynet13_classes.txt",
        annotation_names=("ActivityNet13_annotations.json", "activity_net.v1-3.min.json", "annotations.json"),
        packaged_annotations=None,
        info_names=("feature_info.json", "ActivityNet13_info.json"),
        packaged_info="activitynet13_feature_info.json.gz",
        feature_dirs=("features", "CLIP_feature"),
        subset_pairs=(("train", "val"), ("training", "validation")),
        rules=_Rules(min_instance_seconds=1.0, frames_per_feature=16, v_prefix=True),
        split_key="anet",
    ),
}


# ----------------------------------------------------------------------------- reading


def _feature_shape(path: Path) -> tuple[int, ...]:
    """Shape of a feature file from its header: InputError unless it is 2-D ``[T, D]``."""
    try:
        shape = read_npy_header(path).shape
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read feature file {path}: {err}") from None
    if len(shape) != 2:
        raise InputError(f"feature file {path} has shape {list(shape)}; expected [T, D]")
    return shape


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _feature_ids(features_dir: Path) -> set[str]:
    try:
        with os.scandir(features_dir) as entries:
            return {e.name[:-4] for e in entries if e.name.endswith(".npy") and not e.name.startswith(".")}
    except OSError as err:
        raise InputError(f"cannot list feature folder {features_dir}: {err}") from None


def _info_entry(info: dict | None, video_id: str, key: str, info_path: Path | None) -> tuple[int, float] | None:
    """(snippet_length, snippet_duration) of a video's feature_info entry, if any."""
    if info is None:
        return None
    entry = info.get(video_id, info.get(key))
    if entry is None:
        return None
    length = entry.get("snippet_length") if isinstance(entry, dict) else None
    seconds = _number(entry.get("snippet_duration")) if isinstance(entry, dict) else None
    if isinstance(length, bool) or not isinstance(length, (int, float)) or length < 1 or seconds is None or seconds <= 0:
        raise InputError(
            f"feature info {info_path}: entry {video_id!r} needs snippet_length >= 1 and snippet_duration > 0"
        )
    return int(length), seconds


# ----------------------------------------------------------------------------- dataset


@dataclass
class FeatureDataset:
    """A loaded feature dataset. Build it with ``load_dataset``.

    ``videos`` holds only usable videos (a feature file exists, not excluded by the
    protocol); their annotations keep only instances of ``classes``.
    """

    name: str
    root: Path
    classes: list[str]
    videos: dict[str, VideoRecord]
    features_dir: Path
    train_subset: str | None
    test_subset: str | None
    prompt: str = DEFAULT_PROMPT
    feature_fps: float | None = None  # None for the built-ins: the rate follows each video's fps
    text_embeddings: dict[str, np.ndarray] | None = None
    frames_per_feature: int | None = None  # 8 (thumos14) / 16 (anet), else None
    _stride: dict[str, float] = field(default_factory=dict, repr=False)  # seconds per feature
    _info_length: dict[str, int] = field(default_factory=dict, repr=False)
    _split_table: SplitTable = field(default_factory=SplitTable, repr=False)
    _feature_dim: int | None = field(default=None, repr=False)

    @property
    def split_source(self) -> str:
        """Where the splits come from: "standard:<name>", a splits.json path, or "random"."""
        return self._split_table.source

    # -- features ---------------------------------------------------------------

    def feature_path(self, video_id: str) -> Path:
        if video_id not in self.videos:
            raise InputError(f"dataset {self.name}: unknown video {video_id!r}")
        return self.features_dir / f"{video_id}.npy"

    @property
    def feature_dim(self) -> int:
        """D, read from the header of the first video's feature file."""
        if self._feature_dim is None:
            self._feature_dim = _feature_shape(self.feature_path(min(self.videos)))[1]
        return self._feature_dim

    def load_features(self, video_id: str) -> np.ndarray:
        """Features of one video, ``[T, D]`` float32 (memory-mapped read, then a copy).

        InputError naming the file when it is unreadable, of the wrong shape or dtype, or
        holds NaN or infinite values (they would poison a whole training run or detection).
        """
        import numpy as np

        path = self.feature_path(video_id)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read feature file {path}: {err}") from None
        if array.ndim != 2 or array.shape[0] == 0:
            raise InputError(f"feature file {path} has shape {list(array.shape)}; expected [T, D] with T >= 1")
        if not np.issubdtype(array.dtype, np.floating):
            raise InputError(f"feature file {path} has dtype {array.dtype}; expected float16 or float32")
        if array.shape[1] != self.feature_dim:
            raise InputError(
                f"feature file {path} has D={array.shape[1]}, but the dataset's features have D={self.feature_dim}"
            )
        features = np.array(array, dtype=np.float32)
        finite = np.isfinite(features)
        if not finite.all():
            bad = int(features.size - np.count_nonzero(finite))
            row = int(np.flatnonzero(~finite.all(axis=1))[0])
            raise InputError(
                f"feature file {path} has {bad} NaN or infinite value{'s' if bad != 1 else ''} "
                f"(first in feature {row}); re-extract it"
            )
        return features

    def snippet_times(self, video_id: str) -> np.ndarray:
        """Centre time in seconds of each feature, ``[T]`` float64 (rules in the module doc)."""
        import numpy as np

        path = self.feature_path(video_id)
        num = _feature_shape(path)[0]
        expected = self._info_length.get(video_id)
        if expected is not None and abs(num - expected) > max(2, round(0.02 * expected)):
            # Timing from feature_info would be silently wrong for these features.
            raise InputError(
                f"feature file {path} has {num} features but the feature info says snippet_length "
                f"{expected}; use the feature_info.json written with these features"
            )
        video = self.videos[video_id]
        times = (np.arange(num, dtype=np.float64) + 0.5) * self._stride[video_id]
        return np.clip(times, 0.0, video.duration)

    # -- splits -----------------------------------------------------------------

    def splits(self, ratio: str) -> list[Split]:
        """All splits of ``ratio`` ("75_25" or "50_50"), index order."""
        check_ratio(ratio)
        if not self.classes:
            raise InputError(
                f"dataset {self.name} has no classes (an unlabelled folder, e.g. from `psftr extract`): it can be "
                "used with `psftr detect --features`; to train or evaluate, add 'classes' and annotations to its "
                "annotations file"
            )
        return self._split_table.splits(ratio, self.classes, f"dataset {self.name}")

    def split(self, ratio: str, index: int) -> Split:
        return select_split(self.splits(ratio), ratio, index, f"dataset {self.name}")

    # -- protocol ---------------------------------------------------------------

    def _subset_videos(self, subset: str | None, role: str, classes: list[str]) -> list[VideoRecord]:
        if subset is None:
            found = sorted({v.subset for v in self.videos.values()})
            raise InputError(
                f"dataset {self.name} has no {role} subset: set {role}_subset in dataset.yaml "
                f"(subsets present: {', '.join(found)})"
            )
        known = set(self.classes)
        unknown = [c for c in classes if c not in known]
        if unknown:
            raise InputError(f"split names class {unknown[0]!r}, which is not a class of dataset {self.name}")
        keep = set(classes)
        result = []
        for video_id in sorted(self.videos):
            video = self.videos[video_id]
            if video.subset != subset:
                continue
            annotations = [a for a in video.annotations if a.label in keep]
            if annotations:
                result.append(dataclasses.replace(video, annotations=annotations))
        return result

    def train_videos(self, split: Split) -> list[VideoRecord]:
        """Training-subset videos with seen-class GT; annotations keep only seen classes."""
        return self._subset_videos(self.train_subset, "train", split.seen)

    def eval_videos(self, split: Split) -> list[VideoRecord]:
        """Test-subset videos with unseen-class GT; annotations keep only unseen classes."""
        return self._subset_videos(self.test_subset, "test", split.unseen)

    def ground_truth(self, split: Split) -> dict[str, list[dict]]:
        """Unseen-class GT of the evaluation videos: ``{video_id: [{"segment", "label"}]}``."""
        return {
            v.video_id: [{"segment": [a.start, a.end], "label": a.label} for a in v.annotations]
            for v in self.eval_videos(split)
        }


# ----------------------------------------------------------------------------- building


def _parse_annotations(
    data: Any,
    path: Path,
    classes: list[str],
    rules: _Rules,
    feature_ids: set[str],
) -> tuple[dict[str, tuple[str, dict, list[Annotation]]], dict[str, Any]]:
    """Validate the ActivityNet-style database; returns {video_id: (key, entry, annotations)} and counts."""
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise InputError(f"annotations {path} must be an object with a 'database' mapping video ids to videos")
    known = set(classes)
    parsed: dict[str, tuple[str, dict, list[Annotation]]] = {}
    counts: dict[str, Any] = {"total": 0, "missing": 0, "unknown": Counter(), "empty": 0, "before_zero": 0,
                              "clipped": 0}
    for key in sorted(data["database"]):
        entry = data["database"][key]
        if not isinstance(entry, dict) or not isinstance(entry.get("subset"), str):
            raise InputError(f"annotations {path}: video {key!r} needs a 'subset' string")
        video_id = _feature_id(key, rules, feature_ids)
        if video_id in rules.excluded_videos:
            continue
        counts["total"] += 1
        if video_id not in feature_ids:
            counts["missing"] += 1
            continue
        parsed[video_id] = (key, entry, _video_annotations(entry, key, path, known, rules, counts))
    return parsed, counts


def _feature_id(key: str, rules: _Rules, feature_ids: set[str]) -> str:
    """The video id (feature file name) of annotation key ``key``."""
    if rules.v_prefix and key not in feature_ids:
        # Official ActivityNet keys lack GAP's "v_" prefix (or the features do).
        if f"v_{key}" in feature_ids:
            return f"v_{key}"
        if key.startswith("v_") and key[2:] in feature_ids:
            return key[2:]
    return key


def _video_annotations(
    entry: dict, key: str, path: Path, known: set[str], rules: _Rules, counts: dict[str, Any]
) -> list[Annotation]:
    """The instances of one video that the rules keep; ``counts`` those dropped or clipped."""
    fps = _number(entry.get("fps"))
    raw = entry.get("annotations", [])
    if not isinstance(raw, list):
        raise InputError(f"annotations {path}: video {key!r}: 'annotations' must be a list")
    annotations = []
    for item in raw:
        segment = item.get("segment") if isinstance(item, dict) else None
        label = item.get("label") if isinstance(item, dict) else None
        if (
            not isinstance(segment, (list, tuple))
            or len(segment) != 2
            or _number(segment[0]) is None
            or _number(segment[1]) is None
            or not isinstance(label, str)
        ):
            raise InputError(
                f"annotations {path}: video {key!r} has an instance without a valid "
                f"'segment' [start, end] in seconds and 'label'"
            )
        start, end = float(segment[0]), float(segment[1])
        if label in rules.ignore_labels:
            continue
        if label not in known:
            counts["unknown"][label] += 1
            continue
        if end - start <= 0:
            counts["empty"] += 1
            continue
        in_video = clip_to_video_start(start, end)
        if in_video is None:
            counts["before_zero"] += 1
            continue
        if in_video[0] != start:
            counts["clipped"] += 1
        start, end = in_video
        length = end - start
        if rules.min_instance_seconds is not None and length <= rules.min_instance_seconds:
            continue
        if rules.min_instance_frames is not None and fps and length <= rules.min_instance_frames / fps:
            continue
        annotations.append(Annotation(start, end, label))
    return annotations


def _build(
    *,
    name: str,
    root: Path,
    annotations_path: Path,
    features_dir: Path,
    info: dict | None,
    info_path: Path | None,
    classes: list[str] | None,
    subset_choice: tuple[str | None, str | None] | tuple[tuple[str, str], ...],
    rules: _Rules,
    feature_fps: float | None,
    prompt: str,
    text_embeddings_path: Path | None,
    split_table: SplitTable,
) -> FeatureDataset:
    """Read the annotations, keep the videos that have features, and time their features."""
    if not features_dir.is_dir():
        raise InputError(f"dataset {name}: feature folder {features_dir} does not exist")
    data = read_json_file(annotations_path, "annotations")
    if classes is None:
        classes = _classes_from_annotations(data, annotations_path)
    parsed = _usable_videos(name, data, annotations_path, classes, rules, features_dir)
    train_subset, test_subset = _choose_subsets(name, subset_choice, data, annotations_path)

    timing = _FeatureTiming(name, annotations_path, features_dir, info, info_path, feature_fps,
                            rules.frames_per_feature)
    videos = {
        video_id: timing.record(video_id, key, entry, annotations)
        for video_id, (key, entry, annotations) in parsed.items()
    }
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
    )
    split_table.validate(dataset.classes)
    if text_embeddings_path is not None:
        dataset.text_embeddings = _load_text_embeddings(text_embeddings_path, dataset)
    return dataset


def _usable_videos(
    name: str, data: Any, path: Path, classes: list[str], rules: _Rules, features_dir: Path
) -> dict[str, tuple[str, dict, list[Annotation]]]:
    """The parsed videos that have a feature file; one warning per kind of thing skipped."""
    parsed, counts = _parse_annotations(data, path, classes, rules, _feature_ids(features_dir))
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


def _instances(count: int) -> str:
    return f"{count} instance" if count == 1 else f"{count} instances"


@dataclass
class _FeatureTiming:
    """Times each video's features (rules 1-4 of the module doc), keeping what it used."""

    dataset: str
    annotations_path: Path
    features_dir: Path
    info: dict | None
    info_path: Path | None
    feature_fps: float | None
    frames_per_feature: int | None
    stride: dict[str, float] = field(default_factory=dict)  # seconds per feature, by video
    info_length: dict[str, int] = field(default_factory=dict)  # T from feature_info, by video
    not_in_info: int = 0  # videos timed without a feature_info entry although there is one

    def record(self, video_id: str, key: str, entry: dict, annotations: list[Annotation]) -> VideoRecord:
        """The usable video ``video_id`` (annotation key ``key``) with its timing."""
        fps = _number(entry.get("fps"))
        timing = _info_entry(self.info, video_id, key, self.info_path)
        raw_info = None if self.info is None else self.info.get(video_id, self.info.get(key))
        if fps is None and isinstance(raw_info, dict):
            fps = _number(raw_info.get("video_fps"))
        duration = _number(entry.get("duration"))
        if duration is None and isinstance(raw_info, dict):
            duration = _number(raw_info.get("frame_duration")) or (timing[1] if timing else None)
        if timing is not None:
            num_features, feature_seconds = timing
            self.stride[video_id] = feature_seconds / num_features
            self.info_length[video_id] = num_features
        else:
            if self.info is not None:
                self.not_in_info += 1
            num_features = self._count_features(video_id)
            self.stride[video_id] = self._seconds_per_feature(key, fps, duration, num_features)
            feature_seconds = num_features * self.stride[video_id]
            if duration is None:
                duration = feature_seconds
            feature_seconds = min(feature_seconds, duration)
        if duration is None or duration <= 0:
            raise InputError(f"annotations {self.annotations_path}: video {key!r} needs a positive 'duration'")
        return VideoRecord(
            video_id=video_id,
            subset=entry["subset"],
            duration=duration,
            fps=fps,
            annotations=annotations,
            num_features=num_features,
            feature_seconds=feature_seconds,
        )

    def _count_features(self, video_id: str) -> int:
        """T read from the feature file's header (the video has no feature_info entry)."""
        path = self.features_dir / f"{video_id}.npy"
        shape = _feature_shape(path)
        if shape[0] < 1:
            raise InputError(f"feature file {path} has shape {list(shape)}; expected [T, D]")
        return shape[0]

    def _seconds_per_feature(self, key: str, fps: float | None, duration: float | None, num_features: int) -> float:
        if self.feature_fps is not None:
            return 1.0 / self.feature_fps
        if self.frames_per_feature is not None and fps:
            return self.frames_per_feature / fps
        if duration is not None:
            return duration / num_features
        raise InputError(
            f"dataset {self.dataset}: video {key!r} has no duration and no feature timing: add 'duration' "
            f"to {self.annotations_path} or give feature_info / feature_fps"
        )


def _classes_from_annotations(data: Any, path: Path) -> list[str]:
    if isinstance(data, dict) and "classes" in data:
        classes = data["classes"]
        # An empty list is an unlabelled dataset (what `psftr extract` writes): usable for
        # detection, refused by splits() for training and evaluation.
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise InputError(f"annotations {path}: 'classes' must be a list of class names")
        return list(dict.fromkeys(classes))
    # No class list: every label that occurs is a class.
    labels = set()
    database = data.get("database") if isinstance(data, dict) else None
    if isinstance(database, dict):
        for entry in database.values():
            for item in entry.get("annotations", []) if isinstance(entry, dict) else []:
                if isinstance(item, dict) and isinstance(item.get("label"), str):
                    labels.add(item["label"])
    if not labels:
        raise InputError(f"annotations {path} has no 'classes' list and no labelled instances")
    return sorted(labels)


def _choose_subsets(
    name: str,
    choice: Any,
    data: Any,
    path: Path,
) -> tuple[str | None, str | None]:
    all_subsets = sorted({e.get("subset") for e in data["database"].values() if isinstance(e, dict)})
    if choice and isinstance(choice[0], tuple):  # built-in: candidate (train, test) pairs
        for train, test in choice:
            if train in all_subsets or test in all_subsets:
                return train, test
        expected = " or ".join(f"{t}/{v}" for t, v in choice)
        raise InputError(
            f"dataset {name}: annotations {path} have subsets {', '.join(all_subsets)}; expected {expected}"
        )
    train, test = choice
    for role, value in (("train_subset", train), ("test_subset", test)):
        if value is not None and value not in all_subsets:
            raise InputError(
                f"dataset {name}: {role} {value!r} matches no video in {path} "
                f"(subsets present: {', '.join(all_subsets)})"
            )
    if train is None:
        train = next((s for s in ("training", "train") if s in all_subsets), None)
    if test is None:
        test = next((s for s in ("validation", "val") if s in all_subsets), None)
    return train, test


def _load_text_embeddings(path: Path, dataset: FeatureDataset) -> dict[str, np.ndarray]:
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


# ----------------------------------------------------------------------------- dataset.yaml


def _read_dataset_yaml(config_path: Path) -> dict:
    """The mapping in ``dataset.yaml``, with its required keys checked (unknown keys: a warning)."""
    import yaml

    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise InputError(f"cannot read {config_path}: {str(err).splitlines()[0] if str(err) else err}") from None
    if not isinstance(config, dict):
        raise InputError(f"{config_path} must be a YAML mapping with at least 'annotations' and 'features'")
    unknown = sorted(str(k) for k in config if k not in _YAML_KEYS)
    if unknown:
        _log.warning(f"{config_path}: ignoring unknown keys: {', '.join(unknown)}")
    for key in ("annotations", "features"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise InputError(f"{config_path} needs '{key}': a path relative to {config_path.parent}")
    return config


def _load_yaml_dataset(directory: Path) -> FeatureDataset:
    config_path = directory / "dataset.yaml"
    config = _read_dataset_yaml(config_path)

    def text(key: str) -> str | None:
        value = config.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise InputError(f"{config_path}: '{key}' must be a non-empty string")
        return value

    def path_of(key: str) -> Path | None:
        value = text(key)
        return None if value is None else directory / Path(value).expanduser()

    name = str(config.get("name") or directory.resolve().name)
    feature_fps = config.get("feature_fps")
    if feature_fps is not None:
        feature_fps = _number(feature_fps)
        if feature_fps is None or feature_fps <= 0:
            raise InputError(f"{config_path}: 'feature_fps' must be a positive number")
    prompt = text("prompt") or DEFAULT_PROMPT
    _check_prompt(prompt, config_path)

    info_path = path_of("feature_info")
    if info_path is None and (directory / "feature_info.json").is_file():
        info_path = directory / "feature_info.json"
    info = _read_feature_info(info_path) if info_path is not None else None

    split_value = text("splits")
    if split_value is not None and split_value.lower() in BUILTIN_DATASETS:
        # `splits: thumos14` reuses the standard splits for one's own features.
        split_table = SplitTable.standard(split_value.lower())
    else:
        splits_path = path_of("splits")
        if splits_path is None and (directory / "splits.json").is_file():
            splits_path = directory / "splits.json"
        split_table = SplitTable.from_file(splits_path) if splits_path is not None else SplitTable()

    return _build(
        name=name,
        root=directory,
        annotations_path=path_of("annotations"),  # type: ignore[arg-type]
        features_dir=path_of("features"),  # type: ignore[arg-type]
        info=info,
        info_path=info_path,
        classes=None,
        subset_choice=(text("train_subset"), text("test_subset")),
        rules=_Rules(),
        feature_fps=feature_fps,
        prompt=prompt,
        text_embeddings_path=path_of("text_embeddings"),
        split_table=split_table,
    )


def _read_feature_info(path: Path) -> dict:
    info = read_json_file(path, "feature info")
    if not isinstance(info, dict):
        raise InputError(f"feature info {path} must map video ids to timing objects")
    return info


def _check_prompt(prompt: str, where: Path) -> None:
    try:
        ok = "{}" in prompt and prompt.format("x") != prompt
    except (IndexError, KeyError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"{where}: 'prompt' must contain one '{{}}' where the class name goes, got {prompt!r}")


# ----------------------------------------------------------------------------- built-ins


def _layout_hint(spec: _BuiltinSpec, root: str) -> str:
    annotations = (
        f"optional {root}/{spec.annotation_names[0]}"
        if spec.packaged_annotations
        else f"{root}/{spec.annotation_names[0]} (or {' or '.join(spec.annotation_names[1:])})"
    )
    return (
        f"expected {root}/{spec.feature_dirs[0]}/<video_id>.npy (CLIP features from the published GAP "
        f"release or `psftr extract`), {annotations}, optional {root}/{spec.info_names[0]}"
    )


def _has_npy(directory: Path) -> bool:
    try:
        with os.scandir(directory) as entries:
            return any(e.name.endswith(".npy") for e in entries)
    except OSError:
        return False


def _find_features_dir(spec: _BuiltinSpec, root: Path) -> Path | None:
    for name in spec.feature_dirs:
        if (root / name).is_dir():
            return root / name
    return root if _has_npy(root) else None


def _builtin_root(spec: _BuiltinSpec, data_root: str | os.PathLike | None) -> Path:
    """The folder holding a built-in dataset: ``data_root`` (or its ``<name>/``), else ``$PSFTR_DATA/<name>``."""
    if data_root is not None:
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise InputError(
                f"dataset {spec.name}: data root {root} does not exist; {_layout_hint(spec, str(root))}"
            )
        # Also accept the parent folder that holds <name>/ (like $PSFTR_DATA).
        if _find_features_dir(spec, root) is None and (root / spec.name).is_dir():
            root = root / spec.name
        return root
    env = os.environ.get(DATA_ENV)
    if not env:
        raise InputError(
            f"dataset {spec.name} needs its CLIP features: pass --data-root DIR or set {DATA_ENV} "
            f"(read from ${DATA_ENV}/{spec.name}); {_layout_hint(spec, 'DIR')}"
        )
    root = Path(env).expanduser() / spec.name
    if not root.is_dir():
        raise InputError(
            f"dataset {spec.name}: {root} does not exist (from ${DATA_ENV}); {_layout_hint(spec, str(root))}"
        )
    return root


def _load_builtin(spec: _BuiltinSpec, data_root: str | os.PathLike | None) -> FeatureDataset:
    root = _builtin_root(spec, data_root)
    features_dir = _find_features_dir(spec, root)
    if features_dir is None:
        raise InputError(f"dataset {spec.name}: no feature folder in {root}; {_layout_hint(spec, str(root))}")

    annotations_path = next((root / n for n in spec.annotation_names if (root / n).is_file()), None)
    if annotations_path is None:
        if spec.packaged_annotations is None:
            raise InputError(
                f"dataset {spec.name}: no annotation file in {root}; expected {root}/{spec.annotation_names[0]} "
                f"(GAP's release) or {root}/{spec.annotation_names[1]} (official ActivityNet 1.3)"
            )
        annotations_path = reference_path(spec.packaged_annotations)
    info_path = next((root / n for n in spec.info_names if (root / n).is_file()), None)
    if info_path is None:
        info_path = reference_path(spec.packaged_info)

    return _build(
        name=spec.name,
        root=root,
        annotations_path=annotations_path,
        features_dir=features_dir,
        info=_read_feature_info(info_path),
        info_path=info_path,
        classes=reference_lines(spec.classes_file),
        subset_choice=spec.subset_pairs,
        rules=spec.rules,
        feature_fps=None,
        prompt=DEFAULT_PROMPT,
        # precomputed class text (`psftr text-embeddings`): no CLIP weights needed
        text_embeddings_path=root / "text_embeddings.npz" if (root / "text_embeddings.npz").is_file() else None,
        split_table=SplitTable.standard(spec.split_key),
    )


def load_dataset(name_or_dir: str | os.PathLike, data_root: str | os.PathLike | None = None) -> FeatureDataset:
    """Load a dataset directory (with ``dataset.yaml``) or a built-in (``thumos14``, ``anet``).

    A directory with a ``dataset.yaml`` wins over a built-in name; ``data_root`` only
    applies to built-ins (default ``$PSFTR_DATA/<name>``).
    """
    path = Path(name_or_dir).expanduser()
    if path.is_file() and path.name == "dataset.yaml":
        path = path.parent
    if (path / "dataset.yaml").is_file():
        return _load_yaml_dataset(path)
    key = str(name_or_dir).lower()
    if key in _BUILTINS:
        return _load_builtin(_BUILTINS[key], data_root)
    if path.is_dir():
        raise InputError(f"dataset folder {path} has no dataset.yaml (see the README for its keys)")
    raise InputError(
        f"unknown dataset {str(name_or_dir)!r}: use {' or '.join(BUILTIN_DATASETS)}, or a folder with a dataset.yaml"
    )
