"""When each feature of a video is: the feature_info file and the timing rules 1-4 of
``psftr_core.data.datasets`` (feature_info, feature_fps, frames per feature, duration)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from psftr_core.data.annotations import finite_number
from psftr_core.data.feature_dataset import Annotation, VideoRecord, checked_feature_shape
from psftr_core.errors import InputError
from psftr_core.io.json_file import read_json_file


def read_feature_info(path: Path) -> dict:
    """A ``feature_info.json`` (``{video_id: {"snippet_length", "snippet_duration", ...}}``)."""
    info = read_json_file(path, "feature info", unique_keys=True)
    if not isinstance(info, dict):
        raise InputError(f"feature info {path} must map video ids to timing objects")
    return info


def _info_entry(info: dict | None, video_id: str, key: str, info_path: Path | None) -> tuple[int, float] | None:
    """(snippet_length, snippet_duration) of a video's feature_info entry, if any."""
    if info is None:
        return None
    entry = info.get(video_id, info.get(key))
    if entry is None:
        return None
    length = entry.get("snippet_length") if isinstance(entry, dict) else None
    seconds = finite_number(entry.get("snippet_duration")) if isinstance(entry, dict) else None
    if isinstance(length, bool) or not isinstance(length, (int, float)) or length < 1 or seconds is None or seconds <= 0:
        raise InputError(
            f"feature info {info_path}: entry {video_id!r} needs snippet_length >= 1 and snippet_duration > 0"
        )
    return int(length), seconds


@dataclass
class FeatureTiming:
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
    widths: dict[str, int] = field(default_factory=dict)  # D of each feature file, by video

    def record(self, video_id: str, key: str, entry: dict, annotations: list[Annotation]) -> VideoRecord:
        """The usable video ``video_id`` (annotation key ``key``) with its timing.

        Its feature file's header is checked here, before any work: 2-D and not truncated
        (T against feature_info is checked when the features are timed, ``snippet_times``).
        """
        path = self.features_dir / f"{video_id}.npy"
        file_length, self.widths[video_id] = checked_feature_shape(path)
        fps = finite_number(entry.get("fps"))
        timing = _info_entry(self.info, video_id, key, self.info_path)
        raw_info = None if self.info is None else self.info.get(video_id, self.info.get(key))
        if fps is None and isinstance(raw_info, dict):
            fps = finite_number(raw_info.get("video_fps"))
        duration = finite_number(entry.get("duration"))
        if duration is None and isinstance(raw_info, dict):
            duration = finite_number(raw_info.get("frame_duration")) or (timing[1] if timing else None)
        if timing is not None:
            num_features, feature_seconds = timing
            self.stride[video_id] = feature_seconds / num_features
            self.info_length[video_id] = num_features
        else:
            if self.info is not None:
                self.not_in_info += 1
            num_features = file_length
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

