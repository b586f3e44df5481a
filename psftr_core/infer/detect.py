"""Detection: videos (or a feature dataset) + an action vocabulary → segment records.

``detect(inputs, actions, ...)`` is the Python API behind ``psftr detect``:

1. Vocabulary: ``actions`` cleaned and de-duplicated (:mod:`psftr_core.infer.vocabulary`).
2. Model: with ``checkpoint`` a trained PSFTR, which fixes the CLIP model and the feature
   rate; without, the training-free localizer (:mod:`psftr_core.infer.localizer`).
3. Features, per video: from ``features_dir`` (a feature dataset, formats.md) or from
   video files, decoded and CLIP-encoded once and then served from the feature cache
   (:mod:`psftr_core.features.cache`), so a later run with other actions does not decode.
4. Text: the dataset's ``text_embeddings`` when it has a vector for every action, else
   CLIP prompts (``encode_texts``, cached on disk).
5. Post-processing (:func:`postprocess_detections`): clip to the video, per-action score
   thresholds, minimum duration, class-wise NMS, top-k per video, sort by start time.

A video that cannot be read becomes a :class:`Failure` and the others go on; the CLI
turns failures into exit code 3. Bad arguments raise ``InputError`` before any work.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from psftr_core import __version__
from psftr_core.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, DEFAULT_PROMPT
from psftr_core.device import resolve_device
from psftr_core.errors import InputError, PsftrError
from psftr_core.features.text import lookup_text_embeddings
from psftr_core.infer.vocabulary import normalise_vocabulary, parse_vocabulary, resolve_thresholds

DEFAULT_STRIDE = 8  # frames per feature, the THUMOS14 convention (as in ``psftr extract``)
# Default score thresholds per model (``--threshold`` overrides). The localizer's score is
# an inner-outer contrast of class probability; PSFTR's (calibrated scoring) is actionness
# x that contrast over the segment, a smaller number. Chosen with benchmarks/detect_planted.py
# (D = 256 synthetic data, 75_25 split 0): PSFTR at 0.03 finds 50 of 62 planted unseen
# actions with 129 segments; the localizer at 0.3, 45 of 62 with 228 segments.
DEFAULT_THRESHOLDS = {"baseline": 0.3, "psftr": 0.03}
DEFAULT_NMS_IOU = 0.5

ProgressCallback = Callable[[int, int, str, str], None]
"""``on_progress(done, total, video, status)``: status ``"started"`` before a video (done
= videos finished so far), then one of ``"cached"``, ``"extracted"``, ``"loaded"``
(feature dataset) or ``"failed"`` after it."""


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
    """A processed video: its id, where it came from, its duration (seconds, or None)."""

    video: str
    source: str
    duration: float | None
    num_features: int


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
    from psftr_core.infer.segment_ops import nms

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
    check_dataset: Callable[[Any], None] | None = None  # refuses a feature dataset it cannot use


def _baseline_model(localizer_config: Any = None) -> _Model:
    from psftr_core.infer.localizer import LocalizerConfig, localize

    cfg = localizer_config or LocalizerConfig()

    def run(features: np.ndarray, times: np.ndarray, duration: float | None, text: np.ndarray,
            names: list[str]) -> list[dict[str, Any]]:
        # The localizer's own top_k would cut before our thresholds; keep everything.
        local = cfg if cfg.top_k >= 10**6 else _replace(cfg, top_k=10**9)
        return localize(features, times, text, names, local, duration=duration)

    return _Model("baseline", "training-free localizer (CLIP frame-text similarity, psftr_core.infer.localizer)", run)


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


def _detect_with_checkpoint(checkpoint: str | os.PathLike, device: str) -> _Model:
    """A PSFTR model from a ``psftr train`` checkpoint (psftr_core.train.checkpoint / inference).

    The checkpoint records the CLIP model, weights and feature rate of its training
    features; video inputs are extracted the same way. Inference per video follows the
    training protocol: windows (sliding or resized, from the checkpoint's data config),
    top-k (query, class) pairs per window, cross-window class-wise NMS.
    """
    import torch

    from psftr_core.train.checkpoint import build_model, check_feature_spec, feature_spec_of, load_checkpoint

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
        return _psftr_predict_video(net, cfg, features, times, duration, text, names, torch_device)

    return _Model(
        kind="psftr",
        details=details,
        run=run,
        clip_model=spec.get("clip_model"),
        clip_pretrained=spec.get("clip_pretrained"),
        sampling=sampling,
        feature_dim=int(spec["feature_dim"]) if spec.get("feature_dim") else None,
        prompt=getattr(cfg.data, "prompt", None),
        check_dataset=lambda dataset: check_feature_spec(
            ckpt, feature_spec_of(dataset), where=f"the feature dataset {dataset.root}"
        ),
    )


def _psftr_predict_video(
    net: Any, cfg: Any, features: np.ndarray, times: np.ndarray, duration: float | None, text: np.ndarray,
    names: list[str], device: str, batch_size: int = 16,
) -> list[dict[str, Any]]:
    """PSFTR detections of one video: features [T, D], times [T], text [K, D] -> dicts."""
    import torch

    from psftr_core.data.windows import input_length, windowing_from_config
    from psftr_core.infer.predict import merge_video, video_curves, window_detections
    from psftr_core.data.slicing import make_windows, resize_nearest

    num = len(features)
    if num == 0:
        return []
    if num >= 2:
        step = float(np.median(np.diff(times)))
    else:
        step = float(duration) if duration else 1.0
    windowing = windowing_from_config(cfg.data)
    windows = make_windows("video", num, step, [], windowing, training=False)
    length = input_length(windowing)
    text_t = torch.as_tensor(text, dtype=torch.float32, device=device)
    durations = {"video": float(duration)} if duration else {}
    scoring = cfg.inference.scoring
    curves = video_curves(features, times, text) if scoring == "calibrated" else None
    detections = []
    with torch.inference_mode():
        for first in range(0, len(windows), batch_size):
            chunk = windows[first : first + batch_size]
            pad = max(length, max(w.length for w in chunk))
            batch = torch.zeros(len(chunk), pad, features.shape[1])
            mask = torch.ones(len(chunk), pad, dtype=torch.bool)
            for b, w in enumerate(chunk):
                part = features[w.start : w.end]
                if w.resize_to is not None:
                    part = resize_nearest(part, w.resize_to)
                batch[b, : len(part)] = torch.as_tensor(np.asarray(part, dtype=np.float32))
                mask[b, : len(part)] = False
            batch, mask = batch.to(device), mask.to(device)
            outputs = net(batch, mask, text_t)
            detections += window_detections(net, outputs, batch, mask, text_t, chunk,
                                            range(first, first + len(chunk)), durations, int(cfg.inference.topk),
                                            scoring, lambda _video_id: curves)
    return merge_video(detections, names, float(cfg.inference.nms_iou), cfg.inference.nms == "all")


# ----------------------------------------------------------------------------- helpers


def _check_path_exists(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{what} not found: {p}")
    return p


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


def detect(
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
    on_progress: ProgressCallback | None = None,
) -> DetectionReport:
    """Detect ``actions`` in videos; returns a :class:`DetectionReport`.

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
        localizer_config: a ``baseline.LocalizerConfig`` for the training-free localizer.
        on_progress: ``on_progress(done, total, video, status)`` before and after each
            video (see :data:`ProgressCallback`).

    Raises:
        InputError: bad arguments, a missing path (named), an empty vocabulary.
    """
    started = time.perf_counter()
    if isinstance(actions, str):
        vocabulary = parse_vocabulary(actions)
    else:
        vocabulary = normalise_vocabulary(actions)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [str(p) for p in inputs]
    if min_duration is None or min_duration < 0:
        raise InputError(f"--min-duration must be >= 0 seconds, got {min_duration}")
    if top_k is not None and top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {top_k}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise InputError(f"--threshold must be in [0, 1], got {threshold}")
    if nms_iou is not None and not 0.0 < nms_iou <= 1.0:
        raise InputError(f"--nms-iou must be in (0, 1], got {nms_iou}")
    sampling = _sampling_arg(stride, fps)
    if clip_config is not None:
        _check_path_exists(clip_config, "CLIP config file")
    if features_dir is None and not inputs:
        raise InputError("no inputs: give video files, folders, globs or @list.txt, or --features DIR")

    # Inputs first, so a missing path is reported before any model is loaded.
    clip = _ClipProvider(clip_model, clip_pretrained, clip_config, device, cache_dir)
    if features_dir is not None:
        if sampling is not None:
            raise InputError("--stride/--fps apply to video inputs; --features DIR already holds features")
        source: _FeatureSource = _DatasetSource(features_dir, inputs)
    else:
        source = _VideoSource(inputs, clip, cache_dir)

    # A checkpoint fixes the CLIP model and the feature rate.
    if checkpoint is not None:
        _check_path_exists(checkpoint, "checkpoint")
        model = _detect_with_checkpoint(checkpoint, device)
    else:
        model = _baseline_model(localizer_config)
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

    default_threshold = DEFAULT_THRESHOLDS[model.kind] if threshold is None else float(threshold)
    thresholds = resolve_thresholds(vocabulary, default_threshold, dict(per_action_thresholds or {}))

    text, text_note = _text_embeddings(vocabulary, source, clip, prompt or model.prompt)
    feature_note = source.describe()

    # Widths must agree before any video is decoded: features, text, checkpoint.
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

    segments: list[Segment] = []
    failures: list[Failure] = []
    videos: dict[str, VideoInfo] = {}
    items = source.items()
    total = len(items)
    for done, item in enumerate(items, start=1):
        if on_progress:
            on_progress(done - 1, total, item.video_id, "started")
        try:
            loaded = source.load(item)
            if loaded.features.shape[1] != feature_dim:
                raise _VideoFailed(f"features have D={loaded.features.shape[1]}, expected {feature_dim}")
        except _VideoFailed as err:
            failures.append(Failure(item.display, str(err)))
            if on_progress:
                on_progress(done, total, item.video_id, "failed")
            continue
        raw = model.run(loaded.features, loaded.times, loaded.duration, text, vocabulary)
        kept = postprocess_detections(raw, thresholds, loaded.duration, min_duration, nms_iou, top_k)
        segments.extend(
            # Milliseconds are the precision of the input times; round away float noise.
            Segment(item.video_id, d["label"], round(d["segment"][0], 3), round(d["segment"][1], 3), d["score"])
            for d in kept
        )
        videos[item.video_id] = VideoInfo(item.video_id, item.display, loaded.duration, len(loaded.features))
        if on_progress:
            on_progress(done, total, item.video_id, loaded.status)

    segments.sort(key=lambda s: (s.video, s.start, -s.score, s.label))
    details = (
        f"psftr {__version__} detect: {model.details}; features: {feature_note}; text: {text_note}; "
        f"score threshold {default_threshold:g}"
        + (f" ({len(per_action_thresholds)} per-action)" if per_action_thresholds else "")
    )
    stats = {
        "model": model.kind,
        "videos": len(videos),
        "failed": len(failures),
        "segments": len(segments),
        "actions": len(vocabulary),
        "threshold": default_threshold,
        "decoded": getattr(source, "decoded", 0),
        "cache_hits": getattr(source, "cache_hits", 0),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return DetectionReport(segments, failures, details, stats, vocabulary, videos, list(source.warnings))


# ----------------------------------------------------------------------------- CLIP and text


def same_clip_model(a: str, b: str) -> bool:
    """Whether two open_clip model names give the same features (``ViT-B/16`` =
    ``ViT-B-16`` = ``ViT-B-16-quickgelu``: the weights decide the activation)."""

    def norm(name: str) -> str:
        return name.replace("/", "-").lower().removesuffix("-quickgelu")

    return norm(a) == norm(b)


class _ClipProvider:
    """The CLIP model to use, loaded on first use only (a dataset with text embeddings
    never needs it). ``adopt`` takes the model of a checkpoint or feature dataset unless
    the user asked for another one, which is an ``InputError``."""

    def __init__(self, model_name: str | None, pretrained: str | None, config_file: Any, device: str,
                 cache_dir: Any):
        self.requested_model = model_name
        self.requested_pretrained = pretrained
        self.model_name = model_name or DEFAULT_CLIP_MODEL
        self.pretrained = pretrained or DEFAULT_CLIP_PRETRAINED
        self.config_file = config_file
        self.device = device
        self.cache_root = Path(cache_dir).expanduser() if cache_dir is not None else None
        self._handle: Any = None

    def adopt(self, model_name: str | None, pretrained: str | None, owner: str) -> None:
        if not model_name:
            return
        if self.requested_model is not None and not same_clip_model(self.requested_model, model_name):
            raise InputError(
                f"--clip-model {self.requested_model} differs from the CLIP model of {owner} ({model_name}); "
                f"omit --clip-model ({owner} decides) or use one made with {self.requested_model}"
            )
        if self.requested_model is None:
            self.model_name = model_name
        if pretrained and self.requested_pretrained is None:
            self.pretrained = pretrained

    def describe(self) -> str:
        return f"CLIP {self.model_name} ({self.pretrained})"

    def handle(self) -> Any:
        if self._handle is None:
            from psftr_core.features.clip import load_clip

            self._handle = load_clip(
                self.model_name, self.pretrained, config_file=self.config_file, device=resolve_device(self.device)
            )
        return self._handle

    def encode_texts(self, names: Sequence[str], prompt: str) -> np.ndarray:
        from psftr_core.features.clip import encode_texts
        from psftr_core.features.cache import default_cache_dir

        root = self.cache_root if self.cache_root is not None else default_cache_dir()
        # encode_texts keeps its entries under <root>/text/.
        return np.asarray(encode_texts(self.handle(), list(names), prompt=prompt, cache_dir=root), np.float32)


def _text_embeddings(
    vocabulary: list[str], source: Any, clip: _ClipProvider, prompt: str | None
) -> tuple[np.ndarray, str]:
    """[K, D] text embeddings for the vocabulary, and where they came from in words.

    A feature dataset's ``text_embeddings`` are used when they have a vector for every
    action (names match case-insensitively). Otherwise all actions are encoded with CLIP
    (mixing vectors of two sources would be meaningless): the dataset's recorded CLIP
    model, or ``--clip-model``; a dataset that records no CLIP model (e.g. synthetic
    features) with missing names is an ``InputError`` listing the names it has.
    """
    dataset_vectors = getattr(source, "text_embeddings", None)
    if dataset_vectors:
        found, missing = lookup_text_embeddings(dataset_vectors, vocabulary)
        if not missing:
            return np.stack([found[name] for name in vocabulary]).astype(np.float32), "the dataset's text_embeddings"
    recorded: tuple[str | None, str | None] = (None, None)
    if isinstance(source, _DatasetSource):
        recorded = source.clip_model()
    if dataset_vectors:
        known = sorted(dataset_vectors)
        hint = f"{', '.join(repr(k) for k in known[:8])}{', ...' if len(known) > 8 else ''}"
        problem = (
            f"no text embedding for action {missing[0]!r} ({len(missing)} of {len(vocabulary)} actions) "
            f"in the dataset's text_embeddings"
        )
        if recorded[0] is None and clip.requested_model is None:
            raise InputError(
                f"{problem}, and the dataset does not record which CLIP model made its features; "
                f"use its names ({hint}) or name the model with --clip-model"
            )
        clip.adopt(*recorded, "the feature dataset")
        try:
            clip.handle()
        except PsftrError as err:
            raise InputError(f"{problem}, and {clip.describe()} cannot encode it: {err}") from None
        source.warnings.append(
            f"{problem}: all actions are encoded with {clip.describe()} instead"
        )
    else:
        clip.adopt(*recorded, "the feature dataset")
    prompt = prompt or getattr(source, "prompt", None) or DEFAULT_PROMPT
    return clip.encode_texts(vocabulary, prompt), f"{clip.describe()} prompts \"{prompt}\""


# ----------------------------------------------------------------------------- feature sources


class _VideoFailed(Exception):
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

    def describe(self) -> str:
        raise NotImplementedError

    def feature_dim(self, clip: "_ClipProvider") -> int:
        raise NotImplementedError


class _DatasetSource(_FeatureSource):
    """Videos of an extracted feature dataset (``--features DIR``)."""

    def __init__(self, features_dir: str | os.PathLike, video_ids: Sequence[str]):
        from psftr_core.data.datasets import load_dataset

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
            raise _VideoFailed(str(err)) from None
        duration = self.dataset.videos[item.video_id].duration
        return _Loaded(features, times, duration, "loaded")

    def describe(self) -> str:
        return f"feature dataset {self.dataset.name} ({self.dataset.root})"

    def feature_dim(self, clip: _ClipProvider) -> int:
        return int(self.dataset.feature_dim)

    def clip_model(self) -> tuple[str | None, str | None]:
        """(CLIP model, weights) that made the dataset's features, when recorded."""
        from psftr_core.train.checkpoint import feature_spec_of

        spec = feature_spec_of(self.dataset)
        return spec.get("clip_model"), spec.get("clip_pretrained")


class _VideoSource(_FeatureSource):
    """Video files: features from the cache, else decoded + CLIP-encoded and cached."""

    def __init__(self, inputs: Sequence[str], clip: _ClipProvider, cache_dir: str | os.PathLike | None):
        from psftr_core.features.video import assign_video_ids, collect_videos

        paths, notes = collect_videos(inputs)  # InputError names a missing path
        if not paths:
            raise InputError(f"no video files found in {', '.join(inputs)}" + (f" ({notes[0]})" if notes else ""))
        self.warnings = list(notes)
        self.videos = assign_video_ids(paths)
        self.clip = clip
        self.sampling: tuple[str, float] = ("stride", DEFAULT_STRIDE)  # set by detect()
        self.cache_dir = cache_dir
        self.decoded = 0
        self.cache_hits = 0
        self._cache: Any = None

    def items(self) -> list[_Item]:
        return [_Item(v.video_id, str(v.path), v.path) for v in self.videos]

    def describe(self) -> str:
        return f"{self.clip.describe()} on frames sampled at {_sampling_text(self.sampling)}"

    def feature_dim(self, clip: _ClipProvider) -> int:
        return int(clip.handle().embed_dim)

    def cache(self) -> Any:
        """The feature cache for this CLIP model and sampling (None for random weights)."""
        if self._cache is None:
            from psftr_core.features.cache import FeatureCache, FeatureSpec

            handle = self.clip.handle()
            if handle.weights_id == "random":
                self._cache = False  # random weights differ on every load: never cache
            else:
                spec = FeatureSpec(
                    clip_model=handle.model_id,
                    weights=handle.weights_id,
                    sampling=_sampling_text(self.sampling),
                    dtype="float16",
                    extra={"transform": repr(handle.preprocess), "quantized": handle.quantized},
                )
                self._cache = FeatureCache(self.cache_dir, spec)
        return self._cache or None

    def load(self, item: _Item) -> _Loaded:
        from psftr_core.features.cache import video_fingerprint

        path = item.ref
        try:
            fingerprint = video_fingerprint(path)
        except OSError as err:
            raise _VideoFailed(f"cannot read file: {err.strerror or err}") from None
        cache = self.cache()
        cached = cache.get(fingerprint) if cache is not None else None
        if cached is not None:
            self.cache_hits += 1
            return _Loaded(
                cached.features.astype(np.float32), cached.times, cached.meta.get("duration"), "cached"
            )
        features, times, meta = _extract_video_features(self.clip.handle(), path, self.sampling)
        self.decoded += 1
        if cache is not None:
            try:
                cache.put(fingerprint, features, times, {**meta, "source": Path(path).name})
            except OSError as err:  # a full or read-only cache must not fail the run
                self.warnings.append(f"could not write the feature cache ({err.strerror or err}); continuing")
        # Use what the cache would return, so a second (cached) run gives identical output.
        features = np.asarray(features, dtype=np.float16).astype(np.float32)
        return _Loaded(features, times, meta.get("duration"), "extracted")


def _extract_video_features(
    handle: Any, path: Path, sampling: tuple[str, float]
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Decode one video and encode its sampled frames: (features [T, D], times [T], meta).

    Raises ``_VideoFailed`` for an unreadable, corrupt, empty or too short video.
    """
    import torch
    from PIL import Image

    from psftr_core.features.clip import encode_images
    from psftr_core.features.video import VideoDecodeError, VideoSource

    kind, value = sampling
    try:
        source = VideoSource(path)
        plan = source.plan(stride=int(value)) if kind == "stride" else source.plan(fps=float(value))
        if plan.num_features == 0:
            raise _VideoFailed(
                f"too short for one feature at {_sampling_text(sampling)} ({plan.frame_length} frames)"
            )
        chunks = []
        for frames in source.iter_frames(plan.indices, chunk=16):
            batch = torch.stack([handle.preprocess(Image.fromarray(frame)) for frame in frames])
            chunks.append(encode_images(handle, batch).numpy())
        source.close()
    except VideoDecodeError as err:
        raise _VideoFailed(str(err)) from None
    features = np.concatenate(chunks).astype(np.float32)
    meta = {
        "duration": float(plan.duration),
        "frame_length": int(plan.frame_length),
        "video_fps": float(plan.video_fps),
        "snippet_duration": float(plan.snippet_duration),
    }
    return features, plan.times, meta
