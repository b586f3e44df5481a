"""Batches for training and inference from a feature dataset and a zero-shot split.

``WindowDataset`` turns videos (``VideoRecord``s of a ``FeatureDataset``) into windows
(see :mod:`psftr_core.data.slicing`) with their targets; ``collate_windows`` pads them into a
batch. Every window is padded to the same length (``slice_size`` in sliding mode,
``resize_length`` in resize mode), so a window's model input, and hence its
predictions, never depend on which other windows share its batch.

A batch is a dict:

- ``features`` [B, L, D] float32, zeros at padding; ``mask`` [B, L] bool, True = padding;
- ``saliency`` [B, L] float32 (1 inside a kept instance);
- ``targets``: B dicts with ``labels`` [N_b] int64 (index into the class list) and
  ``segments`` [N_b, 2] float32 (centre, width) normalised to the valid window length;
- ``window_index`` [B] int64: index into ``WindowDataset.windows`` (video id and the
  window <-> video time mapping live there).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from psftr_core.errors import InputError
from psftr_core.data.slicing import (
    Instance,
    Windowing,
    WindowSpec,
    make_windows,
    normalised_targets,
    resize_nearest,
    saliency_targets,
)

DEFAULT_CACHE_BYTES = 4 << 30  # features kept in memory across epochs (per process)


def windowing_from_config(data_cfg: Any) -> Windowing:
    """``Windowing`` from a ``config.DataConfig`` (resize mode when ``resize_length`` is set)."""
    resize = getattr(data_cfg, "resize_length", None)
    return Windowing(
        mode="resize" if resize else "sliding",
        slice_size=int(data_cfg.slice_size),
        slice_overlap=float(data_cfg.slice_overlap),
        inference_slice_overlap=float(data_cfg.inference_slice_overlap),
        resize_length=int(resize) if resize else 300,
        min_integrity=float(getattr(data_cfg, "min_instance_integrity", 0.75)),
    )


def input_length(windowing: Windowing) -> int:
    """The padded length of every window."""
    return windowing.resize_length if windowing.mode == "resize" else windowing.slice_size


def snippet_seconds(dataset: Any, record: Any, num_snippets: int) -> float:
    """Seconds covered by one feature of ``record``'s video.

    From the per-video timing (``feature_seconds`` / T) when known, else the dataset's
    feature rate, else the spacing of ``snippet_times``.
    """
    seconds = getattr(record, "feature_seconds", None)
    if seconds and num_snippets > 0:
        return float(seconds) / num_snippets
    fps = getattr(dataset, "feature_fps", None)
    if fps:
        return 1.0 / float(fps)
    times = np.asarray(dataset.snippet_times(record.video_id), dtype=np.float64)
    if times.size >= 2:
        return float(np.median(np.diff(times)))
    if times.size == 1 and times[0] > 0:
        return 2.0 * float(times[0])
    raise InputError(f"cannot tell the time covered by the features of video {record.video_id}")


def record_instances(record: Any, class_names: Sequence[str]) -> list[Instance]:
    """The record's annotations of the given classes (others are background)."""
    wanted = set(class_names)
    return [
        Instance(float(a.start), float(a.end), a.label)
        for a in record.annotations
        if a.label in wanted
    ]


class WindowDataset(torch.utils.data.Dataset):
    """Windows of ``records`` with targets over ``class_names``.

    training=True: training windows (overlap ``slice_overlap``, only windows with a
    kept instance); False: every inference window (overlap ``inference_slice_overlap``).
    Features are kept in memory after the first read (resized in resize mode), up to
    ``max_cache_bytes``; beyond that they are read from disk each time.
    """

    def __init__(
        self,
        dataset: Any,
        records: Sequence[Any],
        class_names: Sequence[str],
        windowing: Windowing,
        training: bool,
        max_cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.dataset = dataset
        self.class_names = list(class_names)
        self.class_index = {name: i for i, name in enumerate(self.class_names)}
        self.windowing = windowing
        self.training = training
        self.length = input_length(windowing)
        self.max_cache_bytes = max_cache_bytes
        self._cache: dict[str, np.ndarray] = {}
        self._cache_bytes = 0
        self.records = {r.video_id: r for r in records}
        self.durations: dict[str, float] = {}
        self.windows: list[WindowSpec] = []
        for record in records:
            num = self._num_snippets(record)
            # seconds per feature from the recorded timing (T of the timing record)
            info_num = getattr(record, "num_features", None) or num
            dt = snippet_seconds(dataset, record, int(info_num)) if num > 0 else 0.0
            self.durations[record.video_id] = float(record.duration or num * dt)
            self.windows.extend(
                make_windows(record.video_id, num, dt, record_instances(record, self.class_names), windowing, training)
            )

    def _num_snippets(self, record: Any) -> int:
        """T of the feature file itself (the timing record may be off by a snippet or two)."""
        if hasattr(self.dataset, "snippet_times"):
            return int(len(self.dataset.snippet_times(record.video_id)))
        num = getattr(record, "num_features", None)
        if num is None:
            num = np.asarray(self.dataset.load_features(record.video_id)).shape[0]
        return int(num)

    def _features(self, video_id: str) -> np.ndarray:
        """The array windows are cut from: the video's features, or in resize mode the
        features already resized (so the cache holds ``resize_length`` rows per video)."""
        cached = self._cache.get(video_id)
        if cached is not None:
            return cached
        feats = np.asarray(self.dataset.load_features(video_id))
        if feats.ndim != 2 or feats.shape[0] == 0:
            raise InputError(f"features of video {video_id} have shape {feats.shape}; expected [T, D] with T >= 1")
        if self.windowing.mode == "resize":
            feats = np.ascontiguousarray(resize_nearest(feats, self.windowing.resize_length))
        if self._cache_bytes + feats.nbytes <= self.max_cache_bytes:
            self._cache[video_id] = feats
            self._cache_bytes += feats.nbytes
        return feats

    def __len__(self) -> int:
        return len(self.windows)

    def window_features(self, window: WindowSpec) -> np.ndarray:
        """[window.length, D] float32 model input of one window (unpadded)."""
        source = self._features(window.video_id)
        if window.resize_to is not None:  # the whole video, resized once in _features
            return np.asarray(source, dtype=np.float32)
        return np.asarray(source[window.start : window.end], dtype=np.float32)

    def __getitem__(self, index: int) -> dict[str, Any]:
        window = self.windows[index]
        feats = self.window_features(window)
        segments = normalised_targets(window)
        labels = np.array([self.class_index[i.label] for i in window.instances], dtype=np.int64)
        return {
            "features": torch.from_numpy(feats),
            "segments": torch.from_numpy(segments),
            "labels": torch.from_numpy(labels),
            "saliency": torch.from_numpy(saliency_targets(segments, feats.shape[0])),
            "window_index": index,
            "pad_to": self.length,
        }


def collate_windows(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad a list of ``WindowDataset`` items into a batch (see the module docstring)."""
    length = max(max(it["pad_to"], it["features"].shape[0]) for it in items)
    dim = items[0]["features"].shape[1]
    batch = len(items)
    features = torch.zeros(batch, length, dim)
    mask = torch.ones(batch, length, dtype=torch.bool)
    saliency = torch.zeros(batch, length)
    for b, it in enumerate(items):
        n = it["features"].shape[0]
        features[b, :n] = it["features"]
        mask[b, :n] = False
        saliency[b, :n] = it["saliency"]
    return {
        "features": features,
        "mask": mask,
        "saliency": saliency,
        "targets": [{"labels": it["labels"], "segments": it["segments"]} for it in items],
        "window_index": torch.tensor([it["window_index"] for it in items], dtype=torch.int64),
    }
