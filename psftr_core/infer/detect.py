"""Detection: videos (or a feature dataset) + an action vocabulary → segment records.

``detect(inputs, actions, ...)`` is the Python API behind ``psftr detect``. It runs
three named steps, which can also be driven one by one to handle each video's segments
as soon as that video is done (``psftr detect`` writes its outputs this way)::

    run = start_detection(inputs, actions, ...)   # steps 1-4 below; no video touched yet
    for result in run.results(skip=..., on_progress=...):
        ...                                       # a VideoResult or a Failure, per video
    report = run.report()                         # a DetectionReport of what ran

What the steps do:

1. Vocabulary: ``actions`` cleaned and de-duplicated (:mod:`psftr_core.data.vocabulary`).
2. Model: with ``checkpoint`` a trained PSFTR, which fixes the CLIP model and the feature
   rate; without, the training-free localizer (:mod:`psftr_core.infer.localizer`).
3. Features, per video: from ``features_dir`` (an extracted feature dataset) or from
   video files, decoded and CLIP-encoded once and then served from the feature cache
   (:mod:`psftr_core.features.cache`), so a later run with other actions does not decode.
   Uncached videos go through the feature pipeline of ``psftr extract``
   (:func:`psftr_core.features.pipeline.encode_videos`: decoding in the background,
   ahead into the next video, batched CLIP calls) through :func:`extract_video_features`.
4. Text: the dataset's ``text_embeddings`` when it has a vector for every action, else
   CLIP prompts (``encode_texts``, cached on disk).
5. Detections: the localizer's, or PSFTR's through the inference path of evaluation
   (:func:`psftr_core.infer.predict.predict_video`).
6. Post-processing (:func:`postprocess_detections`): clip to the video, per-action score
   thresholds, minimum duration, class-wise NMS, top-k per video, sort by start time.

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
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from psftr_core import __version__
from psftr_core.defaults import DEFAULT_NMS_IOU, DEFAULT_STRIDE, DEFAULT_THRESHOLDS
from psftr_core.device import resolve_device
from psftr_core.errors import InputError, PartialFailure, PsftrError
from psftr_core.data.datasets import load_dataset
from psftr_core.features.cache import FeatureCache, FeatureSpec, video_fingerprint
from psftr_core.features.pipeline import EncodedVideo, PipelineOptions, encode_videos
from psftr_core.features.video import VideoInput, assign_video_ids, collect_videos
from psftr_core.infer.localizer import LocalizerConfig, localize
from psftr_core.infer.nms import nms
from psftr_core.runtime.text_source import ClipProvider, vocabulary_text_embeddings
from psftr_core.data.vocabulary import normalise_vocabulary, parse_vocabulary, resolve_thresholds


ProgressCallback = Callable[[int, int, str, str], None]
"""``on_progress(done, total, video, status)``: status ``"started"`` before a video (done
= videos finished so far), then one of ``"cached"``, ``"extracted"``, ``"loaded"``
(feature dataset), ``"failed"`` or ``"skipped"`` (see :meth:`DetectionRun.results`)
after it."""

SkipPredicate = Callable[[str], bool]
"""``skip(video_id)``: True to leave a video out before its features are loaded."""


@dataclass(frozen=True)
class Segment:
    """One detected action instance (seconds)."""

    video: str
    label: str
    start: float
    end: float
    score: float

    def to_result(self) -> dict[str, Any]:
        """The ActivityNet detection dict: ``{"segment": [start, end], "label", "score"}``."""
        return {"segment": [self.start, self.end], "label": self.label, "score": self.score}


@dataclass(frozen=True)
class Failure:
    """An input that produced no result: ``input`` is the path or video id."""

    input: str
    reason: str


@dataclass
class VideoInfo:
    """A processed video: its id, where it came from, its duration (seconds, or None).

    ``file`` is the local video file (None for a feature dataset's video).
    """

    video: str
    source: str
    duration: float | None
    num_features: int
    file: str | None = None


@dataclass(frozen=True)
class PlannedVideo:
    """A video a run will process: its id, the input as named (a path or a dataset's
    video id) and the local video file (None for a feature dataset)."""

    video: str
    source: str
    file: str | None


@dataclass
class VideoResult:
    """One processed video, as :meth:`DetectionRun.results` yields it.

    ``segments`` are the kept ones, sorted by start, then decreasing score, then label;
    ``status`` says where the features came from (``cached``, ``extracted``, ``loaded``).
    """

    info: VideoInfo
    segments: list[Segment]
    status: str

    @property
    def video(self) -> str:
        return self.info.video

    def detections(self) -> list[dict[str, Any]]:
        """The segments as ActivityNet detection dicts."""
        return [seg.to_result() for seg in self.segments]


@dataclass
class DetectionReport:
    """What :func:`detect` returns.

    ``segments`` are sorted by video, then start time; ``videos`` lists every processed
    video (also those without detections); ``details`` names the model that produced the
    segments (it goes into the results JSON's ``external_data.details``).
    """

    segments: list[Segment]
    failures: list[Failure]
    details: str
    stats: dict[str, Any]
    actions: list[str]
    videos: dict[str, VideoInfo] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def results(self) -> dict[str, list[dict[str, Any]]]:
        """``{video_id: [{"segment", "label", "score"}]}`` with every processed video."""
        out: dict[str, list[dict[str, Any]]] = {video: [] for video in sorted(self.videos)}
        for seg in self.segments:
            out.setdefault(seg.video, []).append(seg.to_result())
        return out

    def durations(self) -> dict[str, float | None]:
        return {video: info.duration for video, info in self.videos.items()}

    def segments_per_action(self) -> dict[str, int]:
        counts = Counter(seg.label for seg in self.segments)
        return {name: counts.get(name, 0) for name in self.actions}

    def raise_for_failures(self) -> None:
        """``PsftrError`` when every input failed (nothing to write), ``PartialFailure``
        (exit 3) when some did; nothing when none did. Skipped videos count as done."""
        if not self.failures:
            return
        first = f"{self.failures[0].input}: {self.failures[0].reason}"
        done = len(self.videos) + int(self.stats.get("skipped", 0))
        if not done:
            raise PsftrError(f"all {len(self.failures)} inputs failed (first: {first}); nothing written")
        raise PartialFailure(
            f"{len(self.failures)} of {len(self.failures) + done} inputs failed "
            f"(first: {first}); the others were written"
        )


# ----------------------------------------------------------------------------- post-processing


def postprocess_detections(
    detections: Sequence[Mapping[str, Any]],
    thresholds: Mapping[str, float],
    duration: float | None = None,
    min_duration: float = 0.0,
    nms_iou: float | None = DEFAULT_NMS_IOU,
    top_k: int | None = None,
) -> list[dict[str, Any]]:
    """Filter one video's detections; returns them sorted by start time.

    Steps: clip to [0, duration]; drop empty segments, labels without a threshold,
    scores below their label's threshold and segments shorter than ``min_duration``
    seconds; class-wise NMS at ``nms_iou`` (None = off); keep the ``top_k`` best (None =
    all); sort by (start, -score, label). Ties in score keep the input order.
    """
    kept: list[dict[str, Any]] = []
    upper = float(duration) if duration and duration > 0 else np.inf
    for det in detections:
        label = det["label"]
        if label not in thresholds:
            continue
        start, end = (float(v) for v in det["segment"])
        start, end = max(start, 0.0), min(end, upper)
        score = float(det["score"])
        if not (end > start) or not np.isfinite(score) or score < thresholds[label]:
            continue
        if end - start < min_duration:
            continue
        kept.append({"segment": [start, end], "label": label, "score": score})
    if kept and nms_iou is not None:
        keep = nms(
            np.array([d["segment"] for d in kept]),
            np.array([d["score"] for d in kept]),
            [d["label"] for d in kept],
            iou_threshold=nms_iou,
        )
        kept = [kept[i] for i in keep]  # now in decreasing score order
    else:
        kept.sort(key=lambda d: -d["score"])
    if top_k is not None:
        kept = kept[: max(int(top_k), 0)]
    kept.sort(key=lambda d: (d["segment"][0], -d["score"], d["label"]))
    return kept


# ----------------------------------------------------------------------------- models


@dataclass
class _Model:
    """A localizer: ``run(features [T, D], times [T], duration, text [K, D], names)``."""

    kind: str  # "baseline" | "psftr"
    details: str
    run: Callable[..., list[dict[str, Any]]]
    clip_model: str | None = None  # set by a checkpoint: the CLIP the model was trained with
    clip_pretrained: str | None = None
    sampling: tuple[str, float] | None = None  # ("stride", 8) or ("fps", 2.0), from a checkpoint
    feature_dim: int | None = None
    prompt: str | None = None
    threshold: float | None = None  # default score threshold (None: DEFAULT_THRESHOLDS[kind])
    check_dataset: Callable[[Any], None] | None = None  # refuses a feature dataset it cannot use
    identity: dict[str, Any] = field(default_factory=dict)  # what makes its detections differ


def _baseline_model(localizer_config: Any = None) -> _Model:
    cfg = localizer_config or LocalizerConfig()
    # The localizer's own top_k would cut before our thresholds; keep everything.
    uncut = cfg if cfg.top_k >= 10**6 else dataclasses.replace(cfg, top_k=10**9)

    def run(features: np.ndarray, times: np.ndarray, duration: float | None, text: np.ndarray,
            names: list[str]) -> list[dict[str, Any]]:
        return localize(features, times, text, names, uncut, duration=duration)

    return _Model("baseline", "training-free localizer (CLIP frame-text similarity, psftr_core.infer.localizer)", run,
                  identity={"kind": "baseline", "localizer": dataclasses.asdict(uncut)})


def _psftr_model(checkpoint: str | os.PathLike, device: str) -> _Model:
    """A PSFTR model from a ``psftr train`` checkpoint.

    The checkpoint records the CLIP model, weights and feature rate of its training
    features; video inputs are extracted the same way. Each video goes through the
    inference path of evaluation (:func:`psftr_core.infer.predict.predict_video`) with the
    checkpoint's windowing and inference settings.
    """
    from psftr_core.infer.predict import predict_video
    from psftr_core.runtime.checkpoint import (
        build_model, check_feature_spec, default_score_threshold, feature_spec_of, load_checkpoint,
    )

    torch_device = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    net, cfg = build_model(ckpt, device=torch_device)
    spec = ckpt["feature_spec"]
    if spec.get("frames_per_feature"):
        sampling: tuple[str, float] | None = ("stride", int(spec["frames_per_feature"]))
    elif spec.get("feature_fps"):
        sampling = ("fps", float(spec["feature_fps"]))
    else:
        sampling = None
    split = ckpt.get("split") or {}
    where = f"{split.get('dataset', '?')} split {split.get('ratio', '?')}/{split.get('index', '?')}"
    details = (
        f"PSFTR checkpoint {Path(checkpoint).name} (trained on {where}, epoch {ckpt.get('epoch')}"
        f"{', CLIP ' + spec['clip_model'] if spec.get('clip_model') else ''})"
    )

    def run(features: np.ndarray, times: np.ndarray, duration: float | None, text: np.ndarray,
            names: list[str]) -> list[dict[str, Any]]:
        return predict_video(net, cfg, features, times, duration, text, names, torch_device)

    return _Model(
        kind="psftr",
        details=details,
        run=run,
        clip_model=spec.get("clip_model"),
        clip_pretrained=spec.get("clip_pretrained"),
        sampling=sampling,
        feature_dim=int(spec["feature_dim"]) if spec.get("feature_dim") else None,
        prompt=getattr(cfg.data, "prompt", None),
        threshold=default_score_threshold(ckpt),  # chosen on held-out seen classes by psftr train
        check_dataset=lambda dataset: check_feature_spec(
            ckpt, feature_spec_of(dataset), where=f"the feature dataset {dataset.root}"
        ),
        identity={"kind": "psftr", "checkpoint": video_fingerprint(checkpoint)},  # a content id of the file
    )


# ----------------------------------------------------------------------------- arguments


@dataclass
class _Filters:
    """What :func:`postprocess_detections` keeps of each video's detections."""

    thresholds: dict[str, float]
    min_duration: float
    nms_iou: float | None
    top_k: int | None


def _check_path_exists(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{what} not found: {p}")
    return p


def _check_limits(min_duration: float, top_k: int | None, threshold: float | None, nms_iou: float | None) -> None:
    if min_duration is None or min_duration < 0:
        raise InputError(f"--min-duration must be >= 0 seconds, got {min_duration}")
    if top_k is not None and top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {top_k}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise InputError(f"--threshold must be in [0, 1], got {threshold}")
    if nms_iou is not None and not 0.0 < nms_iou <= 1.0:
        raise InputError(f"--nms-iou must be in (0, 1], got {nms_iou}")


def _sampling_arg(stride: int | None, fps: float | None) -> tuple[str, float] | None:
    if stride is not None and fps is not None:
        raise InputError("give either --stride or --fps, not both")
    if stride is not None:
        if int(stride) < 1:
            raise InputError(f"--stride must be >= 1 frame, got {stride}")
        return ("stride", int(stride))
    if fps is not None:
        if not float(fps) > 0:
            raise InputError(f"--fps must be > 0, got {fps}")
        return ("fps", float(fps))
    return None


def _sampling_text(sampling: tuple[str, float]) -> str:
    kind, value = sampling
    return f"stride={int(value)}" if kind == "stride" else f"fps={float(value):g}"


# ----------------------------------------------------------------------------- the API


def start_detection(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike = (),
    actions: Sequence[str] | str = (),
    *,
    checkpoint: str | os.PathLike | None = None,
    features_dir: str | os.PathLike | None = None,
    clip_model: str | None = None,
    clip_pretrained: str | None = None,
    clip_config: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    threshold: float | None = None,
    per_action_thresholds: Mapping[str, float] | None = None,
    top_k: int | None = None,
    min_duration: float = 0.0,
    nms_iou: float | None = DEFAULT_NMS_IOU,
    stride: int | None = None,
    fps: float | None = None,
    device: str = "auto",
    prompt: str | None = None,
    localizer_config: Any = None,
    batch_size: int = 16,
    decoder: str = "auto",
) -> "DetectionRun":
    """Check the arguments, list the inputs, load the model and the text embeddings.

    Returns a :class:`DetectionRun` whose :meth:`~DetectionRun.results` processes the
    videos; no video is decoded or loaded here.

    Args:
        inputs: video files, folders (recursive), glob patterns and ``@list.txt`` files;
            with ``features_dir``, optional video ids to restrict to (default: all).
        actions: the vocabulary, a list of names (a plain string is split on commas).
        checkpoint: a ``psftr train`` checkpoint; None = the training-free localizer.
        features_dir: a feature dataset directory (or built-in name) instead of videos.
        clip_model / clip_pretrained / clip_config: the CLIP model (as in ``psftr
            extract``); defaults ViT-B-16 / openai, or the checkpoint's. Asking for a CLIP
            model other than the checkpoint's is an ``InputError``.
        cache_dir: feature and text cache root (default: the user cache directory).
        threshold: minimum score (default: :data:`DEFAULT_THRESHOLDS` of the model);
            ``per_action_thresholds`` {name: score} override it per action.
        top_k: at most this many segments per video (best scores); None = no limit.
        min_duration: drop segments shorter than this (seconds).
        nms_iou: class-wise NMS tIoU (None = off).
        stride / fps: frame sampling of video inputs (default: stride 8, or the
            checkpoint's feature rate).
        device: ``auto`` | ``cpu`` | ``cuda``.
        prompt: text prompt template (default: the dataset's / checkpoint's / CLIP's
            ``"a video of a person doing {}"``).
        localizer_config: a ``localizer.LocalizerConfig`` for the training-free localizer.
        batch_size / decoder: frames per CLIP call and the video decoder (auto, decord,
            pyav) of the feature pipeline, as in ``psftr extract``.

    Raises:
        InputError: bad arguments, a missing path (named), an empty vocabulary.
    """
    started = time.perf_counter()
    vocabulary = parse_vocabulary(actions) if isinstance(actions, str) else normalise_vocabulary(actions)
    inputs = [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    _check_limits(min_duration, top_k, threshold, nms_iou)
    sampling = _sampling_arg(stride, fps)
    pipeline = PipelineOptions(batch_size=batch_size, decoder=decoder)
    pipeline.validate()  # --batch-size, --decoder: InputError before any model loads
    if clip_config is not None:
        _check_path_exists(clip_config, "CLIP config file")

    # Inputs first, so a missing path is reported before any model is loaded.
    clip = ClipProvider(clip_model, clip_pretrained, clip_config, device, cache_dir)
    source = _open_inputs(inputs, features_dir, sampling, clip, cache_dir, pipeline)
    if checkpoint is not None:
        _check_path_exists(checkpoint, "checkpoint")
    model = _psftr_model(checkpoint, device) if checkpoint is not None else _baseline_model(localizer_config)
    _follow_model(model, source, clip, sampling)

    if threshold is not None:
        default_threshold = float(threshold)
    else:
        default_threshold = model.threshold if model.threshold is not None else DEFAULT_THRESHOLDS[model.kind]
    filters = _Filters(resolve_thresholds(vocabulary, default_threshold, dict(per_action_thresholds or {})),
                       min_duration, nms_iou, top_k)
    text, text_note = vocabulary_text_embeddings(
        vocabulary, clip, prompt or model.prompt or getattr(source, "prompt", None),
        dataset_table=getattr(source, "text_embeddings", None),
        dataset_clip=source.clip_model() if isinstance(source, _DatasetSource) else (None, None),
        warnings=source.warnings,
    )
    feature_dim = _check_widths(source, clip, model, text, text_note)
    details = (
        f"psftr {__version__} detect: {model.details}; features: {source.describe()}; text: {text_note}; "
        f"score threshold {default_threshold:g}"
        + (f" ({len(per_action_thresholds)} per-action)" if per_action_thresholds else "")
    )
    settings = {
        "psftr": __version__,
        "details": details,
        "model": model.identity,
        "features": source.identity(),
        "text": hashlib.sha256(np.ascontiguousarray(text, dtype=np.float32).tobytes()).hexdigest(),
        "actions": vocabulary,
        "thresholds": filters.thresholds,
        "min_duration": filters.min_duration,
        "nms_iou": filters.nms_iou,
        "top_k": filters.top_k,
    }
    return DetectionRun(source, model, text, vocabulary, filters, feature_dim, details, settings,
                        default_threshold, started)


def detect(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike = (),
    actions: Sequence[str] | str = (),
    *,
    on_progress: ProgressCallback | None = None,
    **options: Any,
) -> DetectionReport:
    """Detect ``actions`` in videos; returns a :class:`DetectionReport`.

    ``inputs``, ``actions`` and the keyword ``options`` (``checkpoint``,
    ``features_dir``, ``threshold``, ``top_k``, ...) are those of
    :func:`start_detection`; ``on_progress(done, total, video, status)`` is called
    before and after each video (see :data:`ProgressCallback`).

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
            content, features, text embeddings, actions, thresholds, filters), as plain
            JSON values: equal settings give equal segments for the same video.
        inputs: the videos to process, a :class:`PlannedVideo` each, in processing order.
        warnings: notes on the inputs and the features (skipped files, cache trouble).
    """

    def __init__(self, source: "_FeatureSource", model: _Model, text: np.ndarray, vocabulary: list[str],
                 filters: _Filters, feature_dim: int, details: str, settings: dict[str, Any], threshold: float,
                 started: float) -> None:
        self._source = source
        self._model = model
        self._text = text
        self._filters = filters
        self._feature_dim = feature_dim
        self._threshold = threshold
        self._started = started
        self._items = sorted(source.items(), key=lambda item: item.video_id)
        self.actions = vocabulary
        self.details = details
        self.settings = settings
        self.inputs = [PlannedVideo(item.video_id, item.display, _local_file(item)) for item in self._items]
        self.segments: list[Segment] = []
        self.failures: list[Failure] = []
        self.videos: dict[str, VideoInfo] = {}
        self.skipped: list[str] = []

    @property
    def warnings(self) -> list[str]:
        return self._source.warnings

    def results(
        self, skip: SkipPredicate | None = None, on_progress: ProgressCallback | None = None,
        will_skip: SkipPredicate | None = None,
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
        """
        total = len(self._items)
        decided: dict[str, bool] = {}  # final answers of ``skip`` known up front
        if will_skip is None:
            decided = {item.video_id: skip is not None and bool(skip(item.video_id)) for item in self._items}
            forecast = decided
        else:
            forecast = {item.video_id: bool(will_skip(item.video_id)) for item in self._items}
        planned = [item for item in self._items if not forecast.get(item.video_id)]
        with self._source.reading(planned) as load:
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
                    result = self._process(item, load)
                except VideoFailed as err:
                    failure = Failure(item.display, str(err))
                    self.failures.append(failure)
                    if on_progress:
                        on_progress(done, total, item.video_id, "failed")
                    yield failure
                    continue
                self.segments.extend(result.segments)
                self.videos[item.video_id] = result.info
                if on_progress:
                    on_progress(done, total, item.video_id, result.status)
                yield result

    def _process(self, item: "_Item", load: Callable[["_Item"], "_Loaded"]) -> VideoResult:
        """Features, model and post-processing of one video; ``VideoFailed`` if unreadable."""
        loaded = load(item)
        if loaded.features.shape[1] != self._feature_dim:
            raise VideoFailed(f"features have D={loaded.features.shape[1]}, expected {self._feature_dim}")
        raw = self._model.run(loaded.features, loaded.times, loaded.duration, self._text, self.actions)
        f = self._filters
        kept = postprocess_detections(raw, f.thresholds, loaded.duration, f.min_duration, f.nms_iou, f.top_k)
        segments = [
            # Milliseconds are the precision of the input times; round away float noise.
            Segment(item.video_id, d["label"], round(d["segment"][0], 3), round(d["segment"][1], 3), d["score"])
            for d in kept
        ]
        segments.sort(key=lambda s: (s.start, -s.score, s.label))
        info = VideoInfo(item.video_id, item.display, loaded.duration, len(loaded.features), _local_file(item))
        return VideoResult(info, segments, loaded.status)

    def report(self) -> DetectionReport:
        """A :class:`DetectionReport` of the videos processed so far (skipped ones left out)."""
        segments = sorted(self.segments, key=lambda s: (s.video, s.start, -s.score, s.label))
        stats = {
            "model": self._model.kind,
            "videos": len(self.videos),
            "failed": len(self.failures),
            "skipped": len(self.skipped),
            "segments": len(segments),
            "actions": len(self.actions),
            "threshold": self._threshold,
            "decoded": getattr(self._source, "decoded", 0),
            "cache_hits": getattr(self._source, "cache_hits", 0),
            "seconds": round(time.perf_counter() - self._started, 3),
        }
        return DetectionReport(segments, list(self.failures), self.details, stats, self.actions, dict(self.videos),
                               list(self._source.warnings))


def _local_file(item: "_Item") -> str | None:
    """The video file of an input (None for a feature dataset's video id)."""
    return str(item.ref) if isinstance(item.ref, Path) else None


def _open_inputs(inputs: list[str], features_dir: str | os.PathLike | None, sampling: tuple[str, float] | None,
                 clip: ClipProvider, cache_dir: str | os.PathLike | None,
                 pipeline: PipelineOptions | None = None) -> _FeatureSource:
    """The feature source of the inputs: a feature dataset, or video files."""
    if features_dir is None:
        if not inputs:
            raise InputError("no inputs: give video files, folders, globs or @list.txt, or --features DIR")
        return _VideoSource(inputs, clip, cache_dir, pipeline)
    if sampling is not None:
        raise InputError("--stride/--fps apply to video inputs; --features DIR already holds features")
    return _DatasetSource(features_dir, inputs)


def _follow_model(model: _Model, source: _FeatureSource, clip: ClipProvider,
                  sampling: tuple[str, float] | None) -> None:
    """A checkpoint fixes the CLIP model and the feature rate; refuse what disagrees."""
    clip.adopt(model.clip_model, model.clip_pretrained, "the checkpoint")
    if model.sampling is not None and sampling is not None and sampling != model.sampling:
        raise InputError(
            f"--{sampling[0]} {sampling[1]:g} differs from the checkpoint's feature rate "
            f"({_sampling_text(model.sampling)}); omit it, the checkpoint decides"
        )
    if isinstance(source, _VideoSource):
        source.sampling = model.sampling or sampling or ("stride", DEFAULT_STRIDE)
    elif model.check_dataset is not None:
        model.check_dataset(source.dataset)


def _check_widths(source: _FeatureSource, clip: ClipProvider, model: _Model, text: np.ndarray,
                  text_note: str) -> int:
    """The feature width D; features, text and checkpoint must agree before any video is decoded."""
    feature_dim = source.feature_dim(clip)
    if model.feature_dim is not None and feature_dim != model.feature_dim:
        raise InputError(
            f"the checkpoint expects {model.feature_dim}-d features but the {source.describe()} gives "
            f"{feature_dim}-d ones; use features of the checkpoint's CLIP model"
        )
    if feature_dim != text.shape[1]:
        raise InputError(
            f"the {source.describe()} gives {feature_dim}-d features but the text embeddings ({text_note}) are "
            f"{text.shape[1]}-d: features and text must come from the same CLIP model"
        )
    return feature_dim


# ----------------------------------------------------------------------------- feature sources


class VideoFailed(Exception):
    """One input could not be turned into features (reason in the message)."""


@dataclass
class _Item:
    video_id: str
    display: str  # path or id shown to the user
    ref: Any = None


@dataclass
class _Loaded:
    features: np.ndarray  # [T, D] float32
    times: np.ndarray  # [T] seconds
    duration: float | None
    status: str


class _FeatureSource:
    warnings: list[str]
    text_embeddings: Mapping[str, np.ndarray] | None = None
    prompt: str | None = None

    def items(self) -> list[_Item]:
        raise NotImplementedError

    def load(self, item: _Item) -> _Loaded:
        raise NotImplementedError

    @contextlib.contextmanager
    def reading(self, planned: Sequence[_Item]) -> Iterator[Callable[[_Item], _Loaded]]:
        """A ``load(item)`` for this run; ``planned``: the items it will probably be asked
        for, in order (a video source decodes them ahead). Leaving stops any reading ahead."""
        yield self.load

    def describe(self) -> str:
        raise NotImplementedError

    def feature_dim(self, clip: "ClipProvider") -> int:
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What makes this source's features differ (JSON values), for run settings."""
        raise NotImplementedError


class _DatasetSource(_FeatureSource):
    """Videos of an extracted feature dataset (``--features DIR``)."""

    def __init__(self, features_dir: str | os.PathLike, video_ids: Sequence[str]):
        path = Path(features_dir).expanduser()
        if not path.exists() and str(features_dir).lower() not in ("thumos14", "anet"):
            raise InputError(f"feature dataset not found: {path}")
        self.dataset = load_dataset(features_dir)
        self.warnings = []
        self.text_embeddings = self.dataset.text_embeddings
        self.prompt = self.dataset.prompt
        unknown = [v for v in video_ids if v not in self.dataset.videos]
        if unknown:
            raise InputError(
                f"video {unknown[0]!r} is not in the feature dataset {self.dataset.root} "
                "(with --features, INPUTS are video ids of that dataset)"
            )
        ids = list(dict.fromkeys(video_ids)) if video_ids else sorted(self.dataset.videos)
        self._items = [_Item(v, v) for v in ids]

    def items(self) -> list[_Item]:
        return self._items

    def load(self, item: _Item) -> _Loaded:
        try:
            features = self.dataset.load_features(item.video_id)
            times = self.dataset.snippet_times(item.video_id)
        except InputError as err:
            raise VideoFailed(str(err)) from None
        duration = self.dataset.videos[item.video_id].duration
        return _Loaded(features, times, duration, "loaded")

    def describe(self) -> str:
        return f"feature dataset {self.dataset.name} ({self.dataset.root})"

    def feature_dim(self, clip: ClipProvider) -> int:
        return int(self.dataset.feature_dim)

    def identity(self) -> dict[str, Any]:
        return {"kind": "dataset", "name": self.dataset.name, "root": str(Path(self.dataset.root).resolve()),
                "feature_dim": int(self.dataset.feature_dim)}

    def clip_model(self) -> tuple[str | None, str | None]:
        """(CLIP model, weights) that made the dataset's features, when recorded."""
        from psftr_core.runtime.checkpoint import feature_spec_of

        spec = feature_spec_of(self.dataset)
        return spec.get("clip_model"), spec.get("clip_pretrained")


class _VideoSource(_FeatureSource):
    """Video files: features from the cache, else decoded + CLIP-encoded and cached.

    ``reading`` runs the uncached videos of a run through one feature pipeline
    (``psftr_core.features.pipeline``: background decoding across videos, batched model
    calls), the same route as ``psftr extract``.
    """

    def __init__(self, inputs: Sequence[str], clip: ClipProvider, cache_dir: str | os.PathLike | None,
                 pipeline: PipelineOptions | None = None):
        paths, notes = collect_videos(inputs)  # InputError names a missing path
        if not paths:
            raise InputError(f"no video files found in {', '.join(inputs)}" + (f" ({notes[0]})" if notes else ""))
        self.warnings = list(notes)
        self.videos = assign_video_ids(paths)
        self.clip = clip
        self.sampling: tuple[str, float] = ("stride", DEFAULT_STRIDE)  # set by detect()
        self.pipeline = pipeline or PipelineOptions()
        self.cache_dir = cache_dir
        self.decoded = 0
        self.cache_hits = 0
        self._cache: Any = None

    def items(self) -> list[_Item]:
        return [_Item(v.video_id, str(v.path), v.path) for v in self.videos]

    def describe(self) -> str:
        return f"{self.clip.describe()} on frames sampled at {_sampling_text(self.sampling)}"

    def feature_dim(self, clip: ClipProvider) -> int:
        return int(clip.handle().embed_dim)

    def feature_spec(self) -> FeatureSpec:
        """Everything that changes a video's features: CLIP model, weights, transform and
        its implementation, sampling. The decoder and batch size are left out: they change
        the features by rounding noise only (as in ``psftr extract``)."""
        handle = self.clip.handle()
        return FeatureSpec(
            clip_model=handle.model_id,
            weights=handle.weights_id,
            sampling=_sampling_text(self.sampling),
            dtype="float16",
            extra={"transform": repr(handle.preprocess), "quantized": handle.quantized,
                   "preprocess": self.pipeline.preprocess},
        )

    def identity(self) -> dict[str, Any]:
        return {"kind": "videos", **self.feature_spec().to_dict()}

    def cache(self) -> Any:
        """The feature cache for this CLIP model and sampling (None for random weights)."""
        if self._cache is None:
            if self.clip.handle().weights_id == "random":
                self._cache = False  # random weights differ on every load: never cache
            else:
                self._cache = FeatureCache(self.cache_dir, self.feature_spec())
        return self._cache or None

    def load(self, item: _Item) -> _Loaded:
        with self.reading([item]) as load:
            return load(item)

    @contextlib.contextmanager
    def reading(self, planned: Sequence[_Item]) -> Iterator[Callable[[_Item], _Loaded]]:
        reader = _ReadAhead(self, planned)
        try:
            yield reader.load
        finally:
            reader.close()

    def extracted(self, item: _Item, fingerprint: str, outcome: "ExtractedVideo") -> _Loaded:
        """Cache a freshly extracted video's features; ``VideoFailed`` when it has none."""
        if outcome.error is not None:
            raise VideoFailed(outcome.error)
        self.decoded += 1
        cache = self.cache()
        if cache is not None:
            try:
                cache.put(fingerprint, outcome.features, outcome.times,
                          {**outcome.meta, "source": Path(item.ref).name})
            except OSError as err:  # a full or read-only cache must not fail the run
                self.warnings.append(f"could not write the feature cache ({err.strerror or err}); continuing")
        # Use what the cache would return, so a second (cached) run gives identical output.
        features = np.asarray(outcome.features, dtype=np.float16).astype(np.float32)
        return _Loaded(features, outcome.times, outcome.meta.get("duration"), "extracted")

    def cached(self, fingerprint: str) -> _Loaded | None:
        cache = self.cache()
        entry = cache.get(fingerprint) if cache is not None else None
        if entry is None:
            return None
        self.cache_hits += 1
        return _Loaded(entry.features.astype(np.float32), entry.times, entry.meta.get("duration"), "cached")


class _ReadAhead:
    """One run's video features: cached videos from the cache, the others decoded ahead,
    in one ``extract_video_features`` call over all of them, in order.

    ``load(item)`` gives the item's features (``VideoFailed`` when it has none). An item
    that was not planned, or whose cache entry went missing since, is extracted on its own.
    """

    def __init__(self, source: _VideoSource, planned: Sequence[_Item]) -> None:
        self.source = source
        self.fingerprints: dict[str, str] = {}
        self.unreadable: dict[str, str] = {}
        self.queue: list[_Item] = []  # planned videos to decode, in order, not yet taken
        self.queued: set[str] = set()  # their ids
        cache = source.cache() if planned else None
        for item in planned:
            try:
                fingerprint = video_fingerprint(item.ref)
            except OSError as err:
                self.unreadable[item.video_id] = f"cannot read file: {err.strerror or err}"
                continue
            self.fingerprints[item.video_id] = fingerprint
            if cache is None or not cache.usable or not cache.entry_path(fingerprint).is_file():
                self.queue.append(item)
                self.queued.add(item.video_id)
        # Lazy: nothing is decoded before the first ``load`` of a queued video.
        self.outcomes = self._extract(self.queue) if self.queue else None

    def _extract(self, items: Sequence[_Item]) -> Iterator[ExtractedVideo]:
        source = self.source
        return extract_video_features(source.clip.handle(), [item.ref for item in items], source.sampling,
                                      source.pipeline)

    def load(self, item: _Item) -> _Loaded:
        if item.video_id in self.unreadable:
            raise VideoFailed(self.unreadable[item.video_id])
        fingerprint = self.fingerprints.get(item.video_id)
        if fingerprint is None:
            try:
                fingerprint = video_fingerprint(item.ref)
            except OSError as err:
                raise VideoFailed(f"cannot read file: {err.strerror or err}") from None
        if item.video_id in self.queued:
            while True:  # earlier queued videos that were skipped after all: cache them, go on
                queued = self.queue.pop(0)
                self.queued.discard(queued.video_id)
                outcome = next(self.outcomes)
                if queued.video_id == item.video_id:
                    return self.source.extracted(item, fingerprint, outcome)
                with contextlib.suppress(VideoFailed):
                    self.source.extracted(queued, self.fingerprints[queued.video_id], outcome)
        loaded = self.source.cached(fingerprint)
        if loaded is not None:
            return loaded
        (outcome,) = self._extract([item])
        return self.source.extracted(item, fingerprint, outcome)

    def close(self) -> None:
        """Stop decoding ahead (the pipeline's threads end with its generator)."""
        if self.outcomes is not None:
            self.outcomes.close()


@dataclass
class ExtractedVideo:
    """One video's features from :func:`extract_video_features`, or why it has none.

    ``features``: float32 [T, D]; ``times``: float64 [T] seconds; ``meta``: duration,
    frame_length, video_fps, snippet_duration, decoder and note (e.g. --fps lowered).
    ``error``: one line when the video could not be used (the other fields are None).
    """

    path: Path
    features: np.ndarray | None = None
    times: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def extract_video_features(
    handle: Any, paths: Sequence[str | os.PathLike], sampling: tuple[str, float],
    pipeline: PipelineOptions | None = None,
) -> Iterator[ExtractedVideo]:
    """Decode and CLIP-encode ``paths`` through the feature pipeline (``encode_videos``):
    one :class:`ExtractedVideo` per path, in order, each as soon as it is done.

    ``sampling``: ("stride", frames) or ("fps", rate); ``pipeline``: batch size, decoder
    and the other pipeline settings (its stride/fps are replaced by ``sampling``). An
    unreadable, corrupt, empty or too short video gives an ``ExtractedVideo`` with
    ``error``; the others go on. Decoding runs ahead while the caller works on a result;
    closing the generator stops it.
    """
    kind, value = sampling
    options = dataclasses.replace(pipeline or PipelineOptions(), stride=int(value) if kind == "stride" else None,
                                  fps=float(value) if kind == "fps" else None)
    videos = [VideoInput(Path(path), str(index)) for index, path in enumerate(paths)]  # ids: unique per call
    with contextlib.closing(encode_videos(videos, handle, options)) as outcomes:
        for outcome in outcomes:
            path = outcome.video.path
            if not isinstance(outcome, EncodedVideo):
                yield ExtractedVideo(path, error=outcome.error)
                continue
            plan = outcome.plan
            meta = {
                "duration": float(plan.duration),
                "frame_length": int(plan.frame_length),
                "video_fps": float(plan.video_fps),
                "snippet_duration": float(plan.snippet_duration),
                "decoder": outcome.decoder,
                "note": outcome.note,
            }
            yield ExtractedVideo(path, outcome.features, outcome.times, meta)
