"""A loaded feature dataset (``FeatureDataset``): its videos, their features and feature
times, its zero-shot splits and the videos and ground truth of a split.

Build one with ``psftr_core.data.datasets.load_dataset``; the rules it follows (feature
timing, dropped instances) are in that module's docstring.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from psftr_core.data.splits import Split, SplitTable, check_ratio, select_split
from psftr_core.defaults import DEFAULT_PROMPT
from psftr_core.errors import InputError
from psftr_core.io.npy import read_npy_header

if TYPE_CHECKING:  # numpy is imported where used, to keep `psftr --help` fast
    import numpy as np


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


def feature_shape(path: Path) -> tuple[int, ...]:
    """Shape of a feature file from its header: InputError unless it is 2-D ``[T, D]``."""
    try:
        shape = read_npy_header(path).shape
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read feature file {path}: {err}") from None
    if len(shape) != 2:
        raise InputError(f"feature file {path} has shape {list(shape)}; expected [T, D]")
    return shape


def checked_feature_shape(path: Path) -> tuple[int, int]:
    """``[T, D]`` of a feature file from its header: InputError naming the file unless it is
    2-D with T >= 1 and holds all the data its header announces (a truncated copy does not)."""
    try:
        header = read_npy_header(path)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read feature file {path}: {err}") from None
    if len(header.shape) != 2 or header.shape[0] < 1:
        raise InputError(f"feature file {path} has shape {list(header.shape)}; expected [T, D] with T >= 1")
    if not header.complete:
        raise InputError(
            f"feature file {path} is truncated: its header announces {list(header.shape)} {header.dtype} "
            f"({header.expected_bytes} bytes) but it holds {header.data_bytes}; re-extract it or copy it again"
        )
    return header.shape[0], header.shape[1]


def check_length_matches_info(path: Path, num: int, expected: int | None) -> None:
    """InputError when a file's T is off its feature_info snippet_length by more than 2 (or 2%):
    timing from feature_info would be silently wrong for these features (published
    releases may differ by a snippet or two)."""
    if expected is not None and abs(num - expected) > max(2, round(0.02 * expected)):
        raise InputError(
            f"feature file {path} has {num} features but the feature info says snippet_length "
            f"{expected}; use the feature_info.json written with these features"
        )


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
            self._feature_dim = feature_shape(self.feature_path(min(self.videos)))[1]
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
        num = feature_shape(path)[0]
        check_length_matches_info(path, num, self._info_length.get(video_id))
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

