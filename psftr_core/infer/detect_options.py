"""The options of a detection run (:class:`DetectOptions`) and their checks.

Every keyword option of :func:`psftr_core.infer.detect.start_detection` and
:func:`~psftr_core.infer.detect.detect` is a field here. :meth:`DetectOptions.check`
refuses a bad value with an ``InputError`` naming its ``psftr detect`` flag, before any
model or video is loaded; :meth:`DetectOptions.filters` puts the filter flags over the
model's own filter settings.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psftr_core.data.vocabulary import display_name, resolve_thresholds
from psftr_core.errors import InputError
from psftr_core.features.pipeline import PipelineOptions, VideoFeatureExtractor, extract_video_features
from psftr_core.infer.detectors import Detector, detect_threshold
from psftr_core.infer.filtering import FilterSettings
from psftr_core.infer.localizer import CLASS_SCORES


@dataclass(frozen=True)
class DetectOptions:
    """How to detect (docs/python-api.md; the ``psftr detect`` flags of the same names).

    Attributes:
        checkpoint: a ``psftr train`` checkpoint; None = the training-free localizer.
        features_dir: a feature dataset directory (or built-in name) instead of videos.
        clip_model / clip_pretrained / clip_config: the CLIP model (as in ``psftr
            extract``); defaults ViT-B-16 / openai, or the checkpoint's. Asking for a CLIP
            model other than the checkpoint's is an ``InputError``.
        cache_dir: feature and text cache root (default: the user cache directory).
        threshold: minimum score (default: the checkpoint's calibrated threshold, else
            ``DEFAULT_THRESHOLDS`` of the model: ``detectors.detect_threshold``);
            ``per_action_thresholds`` {name: score} override it per action.
        top_k: at most this many segments per video (best scores); None = no limit.
        min_duration: drop segments shorter than this (seconds); empty ones always go.
        score: the training-free localizer's score, ``relative`` (to the other actions
            asked for; the default) or ``independent`` (of each action alone, default
            threshold ``detectors.INDEPENDENT_THRESHOLD``); overrides ``localizer_config``'s
            ``class_score``. ``independent`` is refused with a checkpoint.
        keep_nested: keep a segment that lies within (or holds) a stronger one of its
            label; by default such nested segments are dropped (``FilterSettings.drop_nested``).
        nms_iou: tIoU of the one class-wise NMS; None = the model's (a checkpoint's
            ``inference.nms_iou`` with its NMS mode, the localizer's ``nms_threshold``
            0.5); 1.0 suppresses nothing.
        stride / fps: frame sampling of video inputs (default: stride 8, or the
            checkpoint's feature rate).
        device: ``auto`` | ``cpu`` | ``cuda``.
        prompt: text prompt template (default: the dataset's / checkpoint's / CLIP's
            ``"a video of a person doing {}"``).
        localizer_config: a ``localizer.LocalizerConfig`` for the training-free localizer.
        batch_size / decoder: frames per CLIP call and the video decoder (auto, decord,
            pyav) of the feature pipeline, as in ``psftr extract``.
        dtype: what the image tower computes in (``auto`` | ``float32`` | ``bfloat16``
            | ``float16``, as ``psftr extract --dtype``); part of the feature cache key.
        extractor: turns video files into features (default
            :func:`psftr_core.features.pipeline.extract_video_features`); another one, e.g.
            a fake decoder in tests, has the same signature.
        engine: where the videos run: None here, or a pool such as
            :class:`psftr_core.infer.ray_detect.RayDetectEngine` (``psftr detect --engine
            ray``; video inputs only).
    """

    checkpoint: str | os.PathLike | None = None
    features_dir: str | os.PathLike | None = None
    clip_model: str | None = None
    clip_pretrained: str | None = None
    clip_config: str | os.PathLike | None = None
    cache_dir: str | os.PathLike | None = None
    threshold: float | None = None
    per_action_thresholds: Mapping[str, float] | None = None
    top_k: int | None = None
    min_duration: float = 0.0
    keep_nested: bool = False
    score: str | None = None
    nms_iou: float | None = None
    stride: int | None = None
    fps: float | None = None
    device: str = "auto"
    prompt: str | None = None
    localizer_config: Any = None
    batch_size: int = 16
    decoder: str = "auto"
    dtype: str = "auto"
    extractor: VideoFeatureExtractor = extract_video_features
    engine: Any = None

    def check(self) -> tuple[tuple[str, float] | None, PipelineOptions]:
        """``InputError`` naming the flag of a bad value; returns the sampling asked for
        (None: the default) and the feature pipeline's options."""
        check_limits(self.min_duration, self.top_k, self.threshold, self.nms_iou)
        check_action_thresholds(self.per_action_thresholds)
        if self.score is not None and self.score not in CLASS_SCORES:
            raise InputError(f"--score must be {' or '.join(CLASS_SCORES)}, got {self.score!r}")
        sampling = sampling_arg(self.stride, self.fps)
        pipeline = PipelineOptions(batch_size=self.batch_size, decoder=self.decoder, dtype=self.dtype)
        pipeline.validate()  # --batch-size, --decoder, --dtype: InputError before any model loads
        if self.clip_config is not None:
            check_path_exists(self.clip_config, "CLIP config file")
        return sampling, pipeline

    def filters(self, detector: Detector, vocabulary: Sequence[str]) -> FilterSettings:
        """The run's filter stage: the detector's own settings (NMS tIoU and mode) with
        these options over them (score thresholds, ``nms_iou`` when given, minimum
        duration, top-k)."""
        threshold = detect_threshold(detector, self.threshold)
        return dataclasses.replace(
            detector.filters,
            score_threshold=threshold,
            thresholds=resolve_thresholds(vocabulary, threshold, dict(self.per_action_thresholds or {})),
            nms_iou=float(self.nms_iou) if self.nms_iou is not None else detector.filters.nms_iou,
            min_duration=self.min_duration,
            top_k=self.top_k,
            drop_nested=not self.keep_nested,
        )


def check_path_exists(path: str | os.PathLike, what: str) -> Path:
    """``path`` (user-expanded); ``InputError`` naming it when it does not exist."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{what} not found: {p}")
    return p


def check_limits(min_duration: float, top_k: int | None, threshold: float | None, nms_iou: float | None) -> None:
    """The ranges of --min-duration, --top-k, --threshold and --nms-iou (nan and inf are
    refused: a nan passes no comparison, so it would filter nothing)."""
    if not _is_finite(min_duration) or min_duration < 0:
        raise InputError(f"--min-duration must be a finite number >= 0 seconds, got {min_duration}")
    if top_k is not None and not (_is_whole(top_k) and top_k >= 1):
        raise InputError(f"--top-k must be a whole number >= 1, got {top_k}")
    if threshold is not None and not (_is_finite(threshold) and 0.0 <= threshold <= 1.0):
        raise InputError(f"--threshold must be in [0, 1], got {threshold}")
    if nms_iou is not None and not (_is_finite(nms_iou) and 0.0 < nms_iou <= 1.0):
        raise InputError(f"--nms-iou must be in (0, 1], got {nms_iou}")


def check_action_thresholds(per_action: Mapping[str, float] | None) -> None:
    """Per-action thresholds (``--threshold NAME=VALUE``, or the Python API's mapping) in [0, 1]."""
    for name, value in (per_action or {}).items():
        if not (_is_finite(value) and 0.0 <= value <= 1.0):
            raise InputError(f"--threshold {display_name(str(name))}={value}: must be in [0, 1]")


def _is_finite(value: Any) -> bool:
    """A real number (not a bool) that is neither nan nor infinite."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _as_float(value: Any) -> float:
    """``float(value)``, nan when it is no number (refused like nan by the caller)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _is_whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def sampling_arg(stride: int | None, fps: float | None) -> tuple[str, float] | None:
    """``("stride", N)`` or ``("fps", F)`` from --stride / --fps (None: neither given)."""
    if stride is not None and fps is not None:
        raise InputError("give either --stride or --fps, not both")
    if stride is not None:
        if int(stride) < 1:
            raise InputError(f"--stride must be >= 1 frame, got {stride}")
        return ("stride", int(stride))
    if fps is not None:
        rate = _as_float(fps)
        if not (math.isfinite(rate) and rate > 0):
            raise InputError(f"--fps must be a finite number > 0, got {fps}")
        return ("fps", rate)
    return None
