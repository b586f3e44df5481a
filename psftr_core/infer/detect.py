"""Detection: videos (or a feature dataset) + an action vocabulary → segment records.

``detect(inputs, actions, ...)`` is the Python API behind ``psftr detect``. It runs
three named steps, which can also be driven one by one to handle each video's segments
as soon as that video is done (``psftr detect`` writes its outputs this way)::

    run = start_detection(inputs, actions, ...)   # steps 1-4 below; no video touched yet
    for result in run.results(skip=..., on_progress=...):
        ...                                       # a VideoResult or a Failure, per video
    report = run.report()                         # a DetectionReport of what ran

The keyword options are the fields of :class:`~psftr_core.infer.detect_options.DetectOptions`
(``start_detection(inputs, actions, options=DetectOptions(...))`` takes them at once).
What the steps do:

1. Vocabulary: ``actions`` cleaned and de-duplicated (:mod:`psftr_core.data.vocabulary`).
2. Model (:mod:`psftr_core.infer.detectors`): with ``checkpoint`` a trained PSFTR, which
   fixes the CLIP model and the feature rate; without, the training-free localizer.
3. Features, per video (:mod:`psftr_core.infer.feature_sources`): from ``features_dir``
   (an extracted feature dataset) or from video files, decoded and CLIP-encoded once and
   then served from the feature cache, so a later run with other actions does not
   decode. Uncached videos go through ``extractor`` (default
   :func:`psftr_core.features.pipeline.extract_video_features`, the pipeline of
   ``psftr extract``: decoding in the background, ahead into the next video).
4. Text: the dataset's ``text_embeddings`` when it has a vector for every action, else
   CLIP prompts (cached on disk; :mod:`psftr_core.runtime.text_source`).
5. Candidates: the localizer's, or PSFTR's through the inference path of evaluation
   (:func:`psftr_core.infer.predict.predict_video`).
6. The filter stage (:mod:`psftr_core.infer.filtering`, the same as evaluation's): the
   model's settings with the options over them: per-action score thresholds, minimum
   duration, the one class-wise NMS, top-k per video; then sorted by start time.

Videos are processed in the order of their ids. A video that cannot be read becomes a
:class:`Failure` and the others go on; the CLI turns failures into exit code 3. Bad
arguments raise ``InputError`` before any work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from psftr_core import __version__
from psftr_core.data.vocabulary import normalise_vocabulary, parse_vocabulary
from psftr_core.defaults import DEFAULT_STRIDE
from psftr_core.errors import InputError
from psftr_core.infer.detect_options import DetectOptions, check_path_exists
from psftr_core.infer.detectors import Detector, checkpoint_detector, localizer_detector
from psftr_core.infer.feature_sources import (
    DatasetSource, FeatureSource, LoadedFeatures, SourceItem, VideoFailed, VideoSource, open_feature_source,
    sampling_text,
)
from psftr_core.infer.filtering import FilterSettings, filter_detections
from psftr_core.infer.localizer import LocalizerConfig
from psftr_core.infer.results import DetectionReport, Failure, PlannedVideo, Segment, VideoInfo, VideoResult
from psftr_core.runtime.text_source import ClipProvider, vocabulary_text_embeddings

# The API's records are imported from here as well (``from psftr_core.infer.detect import Segment``).
__all__ = ["DetectOptions", "DetectionReport", "DetectionRun", "Failure", "PlannedVideo", "ProgressCallback",
           "Segment", "SkipPredicate", "VideoInfo", "VideoResult", "detect", "start_detection"]

ProgressCallback = Callable[[int, int, str, str], None]
"""``on_progress(done, total, video, status)``: status ``"started"`` before a video (done
= videos finished so far), then one of ``"cached"``, ``"extracted"``, ``"loaded"``
(feature dataset), ``"failed"`` or ``"skipped"`` (see :meth:`DetectionRun.results`)
after it."""

FileTargets = Callable[[str], "list[tuple[str, str]]"]
"""``files(video_id)``: the ``(format, path)`` of each per-video file to write for a video."""

HINT_THRESHOLDS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05, 0.02, 0.01, 0.005, 0.001)
"""Thresholds the zero-segment hint proposes: the highest one under the run's that keeps a segment."""

SkipPredicate = Callable[[str], bool]
"""``skip(video_id)``: True to leave a video out before its features are loaded."""


def start_detection(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike = (),
    actions: Sequence[str] | str = (),
    *,
    options: DetectOptions | None = None,
    **overrides: Any,
) -> DetectionRun:
    """Check the arguments, list the inputs, load the model and the text embeddings.

    Returns a :class:`DetectionRun` whose :meth:`~DetectionRun.results` processes the
    videos; no video is decoded or loaded here.

    Args:
        inputs: video files, folders (recursive), glob patterns and ``@list.txt`` files;
            with ``features_dir``, optional video ids to restrict to (default: all).
        actions: the vocabulary, a list of names (a plain string is split on commas).
        options: a :class:`DetectOptions`; ``overrides``: its fields as keywords
            (``checkpoint=..., threshold=..., nms_iou=...``), which win over ``options``.

    Raises:
        InputError: bad arguments, a missing path (named), an empty vocabulary.
        TypeError: a keyword that is no option.
    """
    started = time.perf_counter()
    opts = dataclasses.replace(options or DetectOptions(), **overrides)
    vocabulary = parse_vocabulary(actions) if isinstance(actions, str) else normalise_vocabulary(actions)
    inputs = [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    sampling, pipeline = opts.check()

    # Inputs first, so a missing path is reported before any model is loaded.
    clip = ClipProvider(opts.clip_model, opts.clip_pretrained, opts.clip_config, opts.device, opts.cache_dir)
    source = open_feature_source(inputs, opts.features_dir, sampling, clip, opts.cache_dir, pipeline, opts.extractor)
    if opts.engine is not None and not isinstance(source, VideoSource):
        raise InputError("--engine ray runs on video files; the features of --features DIR are already "
                         "computed (detect on them here, without --engine)")
    if isinstance(source, DatasetSource) and opts.dtype != "auto":
        source.warnings.append(f"--dtype {opts.dtype} applies to the image tower on video inputs; the features of "
                               "--features DIR are already computed (and text embeddings are float32)")
    if opts.checkpoint is not None:
        if opts.score == "independent":
            raise InputError("--score independent applies to the training-free localizer; a checkpoint's PSFTR "
                             "scores are relative to the actions asked for (docs/detect.md)")
        check_path_exists(opts.checkpoint, "checkpoint")
        detector = checkpoint_detector(opts.checkpoint, opts.device)
    else:
        detector = localizer_detector(opts.localizer_config if opts.score is None else dataclasses.replace(
            opts.localizer_config or LocalizerConfig(), class_score=opts.score))
    _follow_detector(detector, source, clip, sampling)
    filters = opts.filters(detector, vocabulary)

    text, text_note = vocabulary_text_embeddings(
        vocabulary, clip, opts.prompt or detector.prompt or getattr(source, "prompt", None),
        dataset_table=getattr(source, "text_embeddings", None),
        dataset=source.dataset if isinstance(source, DatasetSource) else None,
        warnings=source.warnings,
    )
    feature_dim = _check_widths(source, clip, detector, text, text_note)
    per_action = opts.per_action_thresholds
    details = (
        f"psftr {__version__} detect: {detector.details}; features: {source.describe()}; text: {text_note}; "
        f"score threshold {filters.score_threshold:g}" + (f" ({len(per_action)} per-action)" if per_action else "")
    )
    settings = {
        "psftr": __version__,
        "details": details,
        "model": detector.identity,
        "features": source.identity(),
        "text": hashlib.sha256(np.ascontiguousarray(text, dtype=np.float32).tobytes()).hexdigest(),
        "actions": vocabulary,
        **filters.to_dict(),
    }
    run = DetectionRun(source, detector, text, vocabulary, filters, feature_dim, details, settings, started)
    if opts.engine is not None:
        opts.engine.attach(run, dataclasses.replace(opts, engine=None), vocabulary)
        run._engine = opts.engine
    return run


def detect(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike = (),
    actions: Sequence[str] | str = (),
    *,
    on_progress: ProgressCallback | None = None,
    **options: Any,
) -> DetectionReport:
    """Detect ``actions`` in videos; returns a :class:`DetectionReport`.

    ``inputs``, ``actions`` and the keyword ``options`` (``checkpoint``,
    ``features_dir``, ``threshold``, ``top_k``, ..., or ``options=DetectOptions(...)``)
    are those of :func:`start_detection`; ``on_progress(done, total, video, status)`` is
    called before and after each video (see :data:`ProgressCallback`).

    Raises:
        InputError: bad arguments, a missing path (named), an empty vocabulary.
    """
    run = start_detection(inputs, actions, **options)
    for _ in run.results(on_progress=on_progress):
        pass
    return run.report()


class DetectionRun:
    """A prepared detection (:func:`start_detection`): model, text and inputs are ready.

    Attributes:
        actions: the cleaned vocabulary, in order.
        details: which model, features and text embeddings make the segments (the results
            JSON's ``external_data.details``).
        settings: everything that changes the segments (version, model and checkpoint
            content, features, text embeddings, actions, the filter stage's settings), as
            plain JSON values: equal settings give equal segments for the same video.
        inputs: the videos to process, a :class:`PlannedVideo` each, in processing order.
        warnings: notes on the inputs and the features (skipped files, cache trouble).
    """

    def __init__(self, source: FeatureSource, detector: Detector, text: np.ndarray, vocabulary: list[str],
                 filters: FilterSettings, feature_dim: int, details: str, settings: dict[str, Any],
                 started: float) -> None:
        self._source = source
        self._detector = detector
        self._text = text
        self._filters = filters
        self._feature_dim = feature_dim
        self._started = started
        self._items = sorted(source.items(), key=lambda item: item.video_id)
        self.actions = vocabulary
        self.details = details
        self.settings = settings
        self.inputs = [PlannedVideo(item.video_id, item.display, item.local_file()) for item in self._items]
        self.segments: list[Segment] = []
        self.failures: list[Failure] = []
        self.videos: dict[str, VideoInfo] = {}
        self.skipped: list[str] = []
        self._engine: Any = None
        self._statuses: dict[str, int] = {}
        self._below: list[float] = []  # scores under the thresholds of videos with no segment

    @property
    def warnings(self) -> list[str]:
        return self._source.warnings

    def results(
        self, skip: SkipPredicate | None = None, on_progress: ProgressCallback | None = None,
        will_skip: SkipPredicate | None = None, files: FileTargets | None = None,
    ) -> Iterator[VideoResult | Failure]:
        """Process the videos in id order; yields each one's :class:`VideoResult` (or its
        :class:`Failure`) as soon as it is done.

        Video files are decoded ahead in the background (the feature pipeline), so the
        videos to process are fixed first: ``skip(video_id)`` is asked for every video up
        front, in id order, before any is decoded. A caller whose ``skip`` has side effects
        that must happen at the video's turn (``psftr detect`` passes on the saved outputs
        of finished videos) gives ``will_skip`` too: a forecast without side effects, asked
        up front, while ``skip`` is then asked at each video's turn. A skipped video is
        neither processed nor yielded (``on_progress`` reports it as ``"skipped"``). A video
        that fails is yielded as a :class:`Failure`, not raised.

        With an ``engine`` (``DetectOptions.engine``, e.g. a Ray pool) the videos run there,
        several at a time, and are still yielded in id order; ``files(video_id)`` then names
        the per-video files the engine's workers write (``DetectOutputs.file_targets``).
        """
        total = len(self._items)
        decided: dict[str, bool] = {}  # final answers of ``skip`` known up front
        if will_skip is None:
            decided = {item.video_id: skip is not None and bool(skip(item.video_id)) for item in self._items}
            forecast = decided
        else:
            forecast = {item.video_id: bool(will_skip(item.video_id)) for item in self._items}
        planned = [item for item in self._items if not forecast.get(item.video_id)]
        with self._reading(planned, files) as process:
            for done, item in enumerate(self._items, start=1):
                if item.video_id in decided:
                    skipped = decided[item.video_id]
                else:
                    skipped = skip is not None and bool(skip(item.video_id))
                if skipped:
                    self.skipped.append(item.video_id)
                    if on_progress:
                        on_progress(done, total, item.video_id, "skipped")
                    continue
                if on_progress:
                    on_progress(done - 1, total, item.video_id, "started")
                try:
                    result = process(item)
                except VideoFailed as err:
                    failure = Failure(item.display, str(err))
                    self.failures.append(failure)
                    if on_progress:
                        on_progress(done, total, item.video_id, "failed")
                    yield failure
                    continue
                self.segments.extend(result.segments)
                self.videos[item.video_id] = result.info
                self._statuses[result.status] = self._statuses.get(result.status, 0) + 1
                self._below.extend(result.below_threshold)
                if on_progress:
                    on_progress(done, total, item.video_id, result.status)
                yield result

    @contextlib.contextmanager
    def _reading(self, planned: list[SourceItem],
                 files: FileTargets | None) -> Iterator[Callable[[SourceItem], VideoResult]]:
        """A ``process(item)`` for this run (``VideoFailed`` when the video is unreadable):
        here, from the source's features (read ahead), or on the engine."""
        if self._engine is not None:
            with self._engine.reading(self, planned, files) as process:
                yield process
            return
        with self._source.reading(planned) as load:
            yield lambda item: self._process(item, load)

    def process(self, item: SourceItem) -> VideoResult | Failure:
        """One video of this run's source, here (an engine's worker calls this)."""
        try:
            with self._source.reading([item]) as load:
                return self._process(item, load)
        except VideoFailed as err:
            return Failure(item.display, str(err))

    def items(self) -> list[SourceItem]:
        """The source's videos, in id order (the engines deal these out)."""
        return list(self._items)

    def adopt(self, settings: dict[str, Any], details: str) -> None:
        """The settings and details of the workers that make the segments (an engine's,
        whose device may differ from this process's)."""
        self.settings = settings
        self.details = details

    def _process(self, item: SourceItem, load: Callable[[SourceItem], LoadedFeatures]) -> VideoResult:
        """Features, model and the filter stage of one video; ``VideoFailed`` if unreadable."""
        loaded = load(item)
        if loaded.features.shape[1] != self._feature_dim:
            raise VideoFailed(f"features have D={loaded.features.shape[1]}, expected {self._feature_dim}")
        found = self._detector.candidates(loaded.features, loaded.times, loaded.duration, self._text, self.actions)
        kept = filter_detections(found, self._filters, loaded.duration)
        below: list[float] = []
        if not kept:  # what a lower threshold would give (the filter stage is otherwise the same)
            relaxed = dataclasses.replace(self._filters, score_threshold=0.0, thresholds={})
            below = [d["score"] for d in filter_detections(found, relaxed, loaded.duration)]
        kept.sort(key=lambda d: (d["segment"][0], -d["score"], d["label"]))
        segments = [
            # Milliseconds are the precision of the input times; round away float noise.
            Segment(item.video_id, d["label"], round(d["segment"][0], 3), round(d["segment"][1], 3), d["score"])
            for d in kept
        ]
        segments.sort(key=lambda s: (s.start, -s.score, s.label))
        info = VideoInfo(item.video_id, item.display, loaded.duration, len(loaded.features), item.local_file(),
                         loaded.fps)
        return VideoResult(info, segments, loaded.status, below)

    def zero_segments_hint(self) -> str | None:
        """When no video processed so far has a segment: what a lower ``--threshold`` would
        give (or that nothing scored at all); None otherwise."""
        if self.segments or not self.videos:
            return None
        threshold = self._filters.score_threshold
        best = max(self._below, default=0.0)
        if best <= 0.0:
            return "no candidate segment scored above 0: the actions may not occur in these videos"
        lower = next((t for t in HINT_THRESHOLDS if t < threshold and t <= best), None)
        if lower is None:
            return f"no segment reached the threshold {threshold:g}; the best score was {best:.3g}"
        count = sum(score >= lower for score in self._below)
        plural = "s" if count != 1 else ""
        return (f"no segment reached the threshold {threshold:g} (best score {best:.3g}); "
                f"--threshold {lower:g} gives {count} segment{plural}")

    def _count(self, counter: str, status: str) -> int:
        """Videos decoded / served from the cache: the source's count, or the workers'
        (the statuses of their results) with an engine."""
        if self._engine is not None:
            return self._statuses.get(status, 0)
        return getattr(self._source, counter, 0)

    def report(self) -> DetectionReport:
        """A :class:`DetectionReport` of the videos processed so far (skipped ones left out)."""
        segments = sorted(self.segments, key=lambda s: (s.video, s.start, -s.score, s.label))
        stats = {
            "model": self._detector.ran or self._detector.kind,
            "videos": len(self.videos),
            "failed": len(self.failures),
            "skipped": len(self.skipped),
            "segments": len(segments),
            "actions": len(self.actions),
            "threshold": self._filters.score_threshold,
            "decoded": self._count("decoded", "extracted"),
            "cache_hits": self._count("cache_hits", "cached"),
            "seconds": round(time.perf_counter() - self._started, 3),
        }
        return DetectionReport(segments, list(self.failures), self.details, stats, self.actions, dict(self.videos),
                               list(self._source.warnings))


def _follow_detector(detector: Detector, source: FeatureSource, clip: ClipProvider,
                     sampling: tuple[str, float] | None) -> None:
    """A checkpoint fixes the CLIP model and the feature rate; refuse what disagrees."""
    clip.adopt(detector.clip_model, detector.clip_pretrained, "the checkpoint",
               weights_id=detector.clip_weights_id, text_clip=detector.text_clip)
    if detector.sampling is not None and sampling is not None and sampling != detector.sampling:
        raise InputError(
            f"--{sampling[0]} {sampling[1]:g} differs from the checkpoint's feature rate "
            f"({sampling_text(detector.sampling)}); omit it, the checkpoint decides"
        )
    if isinstance(source, VideoSource):
        source.sampling = detector.sampling or sampling or ("stride", DEFAULT_STRIDE)
    elif detector.check_dataset is not None:
        detector.check_dataset(source.dataset)


def _check_widths(source: FeatureSource, clip: ClipProvider, detector: Detector, text: np.ndarray,
                  text_note: str) -> int:
    """The feature width D; features, text and checkpoint must agree before any video is decoded.

    A feature dataset's files all have one width (checked when it loads); the messages name
    one of them, so the user sees which features are meant.
    """
    feature_dim = source.feature_dim(clip)
    features = f"the {source.describe()}{_example_feature_file(source)}"
    if detector.feature_dim is not None and feature_dim != detector.feature_dim:
        raise InputError(
            f"the checkpoint expects {detector.feature_dim}-d features but {features} gives "
            f"{feature_dim}-d ones; use features of the checkpoint's CLIP model"
        )
    if feature_dim != text.shape[1]:
        raise InputError(
            f"{features} gives {feature_dim}-d features but the text embeddings ({text_note}) are "
            f"{text.shape[1]}-d: features and text must come from the same CLIP model"
        )
    return feature_dim


def _example_feature_file(source: FeatureSource) -> str:
    """For a feature dataset, " (e.g. <the feature file its width was read from>)"; else nothing."""
    if not isinstance(source, DatasetSource):
        return ""
    return f" (e.g. {source.dataset.feature_path(min(source.dataset.videos))})"
