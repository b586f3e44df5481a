"""Where a detection run's features come from: a feature dataset, or video files.

:func:`open_feature_source` picks the source of the inputs. Both sources list their
videos (:class:`SourceItem`) and load one video's features at a time
(:class:`LoadedFeatures`); a video that has none raises :class:`VideoFailed`.

- :class:`DatasetSource`: the videos of an extracted feature dataset (``--features DIR``).
- :class:`VideoSource`: video files. Features come from the feature cache
  (:mod:`psftr_core.features.cache`) when there, else from the extractor (by default
  :func:`psftr_core.features.pipeline.extract_video_features`, the feature pipeline of
  ``psftr extract``), and are cached. :class:`ReadAhead` runs the uncached videos of a
  run through one extractor call, so decoding runs ahead into the next video.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from psftr_core.data.annotations import finite_number
from psftr_core.data.builtins import builtin_names
from psftr_core.data.datasets import load_dataset
from psftr_core.defaults import DEFAULT_STRIDE
from psftr_core.errors import InputError
from psftr_core.features.cache import FeatureCache, FeatureSpec, video_fingerprint
from psftr_core.features.pipeline import (
    ExtractedVideo, PipelineOptions, VideoFeatureExtractor, extract_video_features,
)
from psftr_core.features.video import assign_video_ids, collect_videos
from psftr_core.runtime.text_source import ClipProvider


class VideoFailed(Exception):
    """One input could not be turned into features (reason in the message)."""


@dataclass
class SourceItem:
    """One video of a source: its id, the input as shown to the user (a path or a
    dataset's video id) and, for a video file, its path (``ref``)."""

    video_id: str
    display: str
    ref: Any = None

    def local_file(self) -> str | None:
        """The video file (None for a feature dataset's video)."""
        return str(self.ref) if isinstance(self.ref, Path) else None


@dataclass
class LoadedFeatures:
    """One video's features [T, D] float32, snippet times [T] seconds, duration
    (seconds or None), where they came from (``cached``, ``extracted``, ``loaded``) and
    the video's frame rate (None when unknown)."""

    features: np.ndarray
    times: np.ndarray
    duration: float | None
    status: str
    fps: float | None = None


def sampling_text(sampling: tuple[str, float]) -> str:
    """``("stride", 8)`` -> ``"stride=8"``, ``("fps", 2.0)`` -> ``"fps=2"``."""
    kind, value = sampling
    return f"stride={int(value)}" if kind == "stride" else f"fps={float(value):g}"


class FeatureSource:
    """The videos of a run and their features (see the subclasses)."""

    warnings: list[str]
    text_embeddings: Mapping[str, np.ndarray] | None = None
    prompt: str | None = None

    def items(self) -> list[SourceItem]:
        raise NotImplementedError

    def load(self, item: SourceItem) -> LoadedFeatures:
        raise NotImplementedError

    @contextlib.contextmanager
    def reading(self, planned: Sequence[SourceItem]) -> Iterator[Callable[[SourceItem], LoadedFeatures]]:
        """A ``load(item)`` for this run; ``planned``: the items it will probably be asked
        for, in order (a video source decodes them ahead). Leaving stops any reading ahead."""
        yield self.load

    def describe(self) -> str:
        raise NotImplementedError

    def feature_dim(self, clip: ClipProvider) -> int:
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What makes this source's features differ (JSON values), for run settings."""
        raise NotImplementedError


class DatasetSource(FeatureSource):
    """Videos of an extracted feature dataset (``--features DIR``)."""

    def __init__(self, features_dir: str | os.PathLike, video_ids: Sequence[str]):
        path = Path(features_dir).expanduser()
        if not path.exists() and str(features_dir).lower() not in builtin_names():
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
        self._items = [SourceItem(v, v) for v in ids]

    def items(self) -> list[SourceItem]:
        return self._items

    def load(self, item: SourceItem) -> LoadedFeatures:
        try:
            features = self.dataset.load_features(item.video_id)
            times = self.dataset.snippet_times(item.video_id)
        except InputError as err:
            raise VideoFailed(str(err)) from None
        video = self.dataset.videos[item.video_id]
        return LoadedFeatures(features, times, video.duration, "loaded", _frame_rate(getattr(video, "fps", None)))

    def describe(self) -> str:
        return f"feature dataset {self.dataset.name} ({self.dataset.root})"

    def feature_dim(self, clip: ClipProvider) -> int:
        return int(self.dataset.feature_dim)

    def identity(self) -> dict[str, Any]:
        return {"kind": "dataset", "name": self.dataset.name, "root": str(Path(self.dataset.root).resolve()),
                "feature_dim": int(self.dataset.feature_dim)}


class VideoSource(FeatureSource):
    """Video files: features from the cache, else extracted (``extractor``) and cached.

    ``reading`` runs the uncached videos of a run through one ``extractor`` call (by
    default the feature pipeline: background decoding across videos, batched model
    calls), the same route as ``psftr extract``.
    """

    def __init__(self, inputs: Sequence[str], clip: ClipProvider, cache_dir: str | os.PathLike | None,
                 pipeline: PipelineOptions | None = None,
                 extractor: VideoFeatureExtractor = extract_video_features):
        paths, notes = collect_videos(inputs)  # InputError names a missing path
        if not paths:
            raise InputError(f"no video files found in {', '.join(inputs)}" + (f" ({notes[0]})" if notes else ""))
        self.warnings = list(notes)
        self.videos = assign_video_ids(paths)
        self.clip = clip
        self.sampling: tuple[str, float] = ("stride", DEFAULT_STRIDE)  # set by start_detection
        self.pipeline = pipeline or PipelineOptions()
        self.extractor = extractor
        self.cache_dir = cache_dir
        self.decoded = 0
        self.cache_hits = 0
        self._cache: Any = None

    def items(self) -> list[SourceItem]:
        return [SourceItem(v.video_id, str(v.path), v.path) for v in self.videos]

    def describe(self) -> str:
        return (f"{self.clip.describe()} computing in {self.compute_dtype()} on frames sampled at "
                f"{sampling_text(self.sampling)}")

    def feature_dim(self, clip: ClipProvider) -> int:
        return int(clip.handle().embed_dim)

    def feature_spec(self) -> FeatureSpec:
        """Everything that changes a video's features: CLIP model, weights, transform and
        its implementation, sampling, the dtype the tower computes in. The decoder and
        batch size are left out: they change the features by rounding noise only (as in
        ``psftr extract``)."""
        handle = self.clip.handle()
        return FeatureSpec(
            clip_model=handle.model_id,
            weights=handle.weights_id,
            sampling=sampling_text(self.sampling),
            dtype="float16",
            extra={"transform": repr(handle.preprocess), "quantized": handle.quantized,
                   "preprocess": self.pipeline.preprocess, "compute_dtype": self.compute_dtype()},
        )

    def compute_dtype(self) -> str:
        """What the image tower computes in on this run's device (``--dtype`` resolved)."""
        return self.pipeline.for_device(self.clip.handle().device).dtype

    def identity(self) -> dict[str, Any]:
        return {"kind": "videos", **self.feature_spec().to_dict()}

    def cache(self) -> Any:
        """The feature cache for this CLIP model and sampling (None for random weights)."""
        if self._cache is None:
            if self.clip.handle().weights_id == "random":
                self._cache = False  # random weights differ on every load: never cache
            else:
                self._cache = FeatureCache(self.cache_dir, self.feature_spec(),
                                           feature_dim=self.feature_dim(self.clip))
        return self._cache or None

    def load(self, item: SourceItem) -> LoadedFeatures:
        with self.reading([item]) as load:
            return load(item)

    @contextlib.contextmanager
    def reading(self, planned: Sequence[SourceItem]) -> Iterator[Callable[[SourceItem], LoadedFeatures]]:
        reader = ReadAhead(self, planned)
        try:
            yield reader.load
        finally:
            reader.close()

    def extracted(self, item: SourceItem, fingerprint: str, outcome: ExtractedVideo) -> LoadedFeatures:
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
        return LoadedFeatures(features, outcome.times, outcome.meta.get("duration"), "extracted",
                              _frame_rate(outcome.meta.get("video_fps")))

    def cached(self, fingerprint: str, video: str | None = None) -> LoadedFeatures | None:
        cache = self.cache()
        entry = cache.get(fingerprint, video=video) if cache is not None else None
        if entry is None:
            return None
        self.cache_hits += 1
        return LoadedFeatures(entry.features.astype(np.float32), entry.times, entry.meta.get("duration"), "cached",
                              _frame_rate(entry.meta.get("video_fps")))


def _frame_rate(value: Any) -> float | None:
    """A recorded frame rate as a positive float, None when missing or no such number."""
    fps = finite_number(value)
    return fps if fps is not None and fps > 0 else None


class ReadAhead:
    """One run's video features: cached videos from the cache, the others decoded ahead,
    in one ``source.extractor`` call over all of them, in order.

    ``load(item)`` gives the item's features (``VideoFailed`` when it has none). An item
    that was not planned, or whose cache entry went missing since, is extracted on its own.
    """

    def __init__(self, source: VideoSource, planned: Sequence[SourceItem]) -> None:
        self.source = source
        self.fingerprints: dict[str, str] = {}
        self.unreadable: dict[str, str] = {}
        self.queue: list[SourceItem] = []  # planned videos to decode, in order, not yet taken
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
        self.outcomes = iter(self._extract(self.queue)) if self.queue else None

    def _extract(self, items: Sequence[SourceItem]) -> Iterator[ExtractedVideo]:
        source = self.source
        return source.extractor(source.clip.handle(), [item.ref for item in items], source.sampling, source.pipeline)

    def load(self, item: SourceItem) -> LoadedFeatures:
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
        loaded = self.source.cached(fingerprint, item.display)
        if loaded is not None:
            return loaded
        (outcome,) = self._extract([item])
        return self.source.extracted(item, fingerprint, outcome)

    def close(self) -> None:
        """Stop decoding ahead (the extractor's generator ends, and with it the pipeline's threads)."""
        close = getattr(self.outcomes, "close", None)  # an extractor may return a plain iterator
        if close is not None:
            close()


def open_feature_source(inputs: list[str], features_dir: str | os.PathLike | None,
                        sampling: tuple[str, float] | None, clip: ClipProvider, cache_dir: str | os.PathLike | None,
                        pipeline: PipelineOptions | None = None,
                        extractor: VideoFeatureExtractor = extract_video_features) -> FeatureSource:
    """The feature source of the inputs: a feature dataset, or video files."""
    if features_dir is None:
        if not inputs:
            raise InputError("no inputs: give video files, folders, globs or @list.txt, or --features DIR")
        return VideoSource(inputs, clip, cache_dir, pipeline, extractor)
    if sampling is not None:
        raise InputError("--stride/--fps apply to video inputs; --features DIR already holds features")
    return DatasetSource(features_dir, inputs)
