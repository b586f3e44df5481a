"""The one inference path of PSFTR: video features -> detections in video seconds.

``psftr evaluate`` (:func:`predict_dataset`: the videos of a ``WindowDataset``) and
``psftr detect`` (:func:`predict_video`: one video's features) both run
:func:`predict_videos`:

1. Windows: every video comes with its inference windows
   (:func:`psftr_core.data.slicing.make_windows`; :func:`video_windows` makes them from
   the snippet times of one video).
2. Padding: each window is cut from its video's features (resized in resize mode) and
   padded to the fixed input length of the windowing, so a window's model input, and
   hence its predictions, never depend on which other windows share its batch.
3. Model: batches of ``batch_size`` windows in video order (a batch may hold windows of
   several videos); the model returns raw outputs.
4. Scoring: :class:`~psftr_core.infer.scoring.PostProcess` keeps the top-k (query,
   class) pairs of each window, in video seconds (``inference.roi_weight`` /
   ``inference.contrast_weight``: the scoring family of that module).
5. Merge, per video: class-wise NMS at tIoU ``nms_iou`` (``inference.nms``), then
   detections scoring below ``inference.score_threshold`` are dropped:

   - ``"all"`` (``nms_within_windows=True``, default): plain class-wise NMS over all
     detections of the video.
   - ``"cross_window"`` (the paper): NMS only *across* windows, i.e. where windows
     overlap: two detections of the same window never suppress each other (the set
     prediction is meant to have removed duplicates inside a window), while a detection
     of one window suppresses an overlapping one of the same class from a neighbouring
     window. With calibrated scoring, near-duplicate queries of a window share their
     class score (it comes from the segment), and a briefly trained model leaves such
     duplicates, so they must compete too.

Output lists are sorted by score (ties: window order, then rank inside the window).
The paper's inference is ``inference.contrast_weight=0 inference.roi_weight=0.5
inference.nms=cross_window`` (``inference.scoring=model`` stands for the first two with
a model trained with the default ROI mix).

``inference.method=localizer`` replaces steps 1-5 by the training-free localizer
(:func:`psftr_core.infer.localizer.localize`, default settings) on the same features and
text, so a checkpoint's evaluation or detection can fall back to it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from psftr_core.config import InferenceConfig
from psftr_core.data.slicing import Windowing, WindowSpec, make_windows, resize_nearest
from psftr_core.data.windows import input_length, windowing_from_config
from psftr_core.infer.localizer import LocalizerConfig, localize
from psftr_core.infer.nms import nms
from psftr_core.infer.scoring import PostProcess, VideoCurves, WindowBatch, WindowDetections, video_curves


@dataclass
class VideoWindows:
    """One video ready for inference: raw CLIP ``features`` [T, D], snippet centre
    ``times`` [T] (seconds), ``duration`` (seconds; None = unknown) and its inference
    ``windows``."""

    video_id: str
    features: np.ndarray
    times: np.ndarray
    duration: float | None
    windows: list[WindowSpec]


def video_windows(
    video_id: str, features: np.ndarray, times: np.ndarray, duration: float | None, windowing: Windowing
) -> VideoWindows:
    """The inference windows of one video's features [T, D] with snippet times [T].

    Seconds per snippet: the median spacing of ``times``; for a single snippet, the
    video's duration (1 s when unknown).
    """
    num = len(features)
    if num >= 2:
        step = float(np.median(np.diff(times)))
    else:
        step = float(duration) if duration else 1.0
    windows = make_windows(video_id, num, step, [], windowing, training=False)
    return VideoWindows(video_id, features, times, duration, windows)


def window_input(features: np.ndarray, window: WindowSpec) -> np.ndarray:
    """[window.length, D] float32 model input of one window (unpadded)."""
    part = features[window.start : window.end]
    if window.resize_to is not None:
        part = resize_nearest(part, window.resize_to)
    return np.asarray(part, dtype=np.float32)


def pad_windows(inputs: Sequence[np.ndarray], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Window inputs [n_b, D] -> (features [B, L, D] zeros at padding, mask [B, L] True at
    padding), ``L = max(length, longest input)``."""
    length = max([length] + [len(x) for x in inputs])
    features = torch.stack([F.pad(torch.from_numpy(x), (0, 0, 0, length - len(x))) for x in inputs])
    lengths = torch.tensor([len(x) for x in inputs])
    return features, torch.arange(length)[None, :] >= lengths[:, None]


def merge_video(
    detections: Sequence[WindowDetections], class_names: Sequence[str], iou_threshold: float = 0.4,
    within_windows: bool = False, score_threshold: float = 0.0,
) -> list[dict]:
    """One video's window detections -> ``[{"segment", "label", "score"}]`` best first
    (class-wise NMS across windows, or also within them: see the module docstring),
    without those scoring below ``score_threshold``."""
    if not detections:
        return []
    segments = np.concatenate([d.segments for d in detections]).reshape(-1, 2)
    classes = np.concatenate([d.classes for d in detections]).astype(np.int64)
    scores = np.concatenate([d.scores for d in detections]).astype(np.float64)
    windows = np.concatenate([np.full(len(d.scores), d.window_index) for d in detections]).astype(np.int64)
    keep = nms(segments, scores, classes, iou_threshold, windows=None if within_windows else windows)
    if score_threshold > 0:  # after NMS = before it: a weaker detection never suppresses a stronger one
        keep = [i for i in keep if scores[i] >= score_threshold]
    return [
        {
            "segment": [float(segments[i, 0]), float(segments[i, 1])],
            "label": class_names[classes[i]],
            "score": float(scores[i]),
        }
        for i in keep
    ]


def window_batches(
    videos: Iterable[VideoWindows],
    text: torch.Tensor,
    input_length: int,
    batch_size: int = 16,
    with_curves: bool = False,
    device: str | torch.device = "cpu",
) -> Iterator[WindowBatch]:
    """The windows of ``videos`` in order, cut and padded to ``input_length`` (at least),
    ``batch_size`` at a time (steps 1-2 of the module docstring).

    Videos are read one after the other (``videos`` may be a generator); with
    ``with_curves`` each video's class curves are computed once (for ``contrast_weight`` > 0).
    """
    text_np = text.detach().cpu().numpy()
    rows: list[tuple[VideoWindows, int, VideoCurves | None]] = []  # (video, window index, its curves)
    for video in videos:
        curves = video_curves(video.features, video.times, text_np) if with_curves and video.windows else None
        for index in range(len(video.windows)):
            rows.append((video, index, curves))
            if len(rows) == batch_size:
                yield _window_batch(rows, text, input_length, device)
                rows = []
    if rows:
        yield _window_batch(rows, text, input_length, device)


def _window_batch(rows: list[tuple[VideoWindows, int, VideoCurves | None]], text: torch.Tensor, input_length: int,
                  device: str | torch.device) -> WindowBatch:
    windows = [video.windows[index] for video, index, _ in rows]
    features, mask = pad_windows([window_input(row[0].features, w) for row, w in zip(rows, windows)], input_length)
    return WindowBatch(features.to(device), mask.to(device), text, windows, [index for _, index, _ in rows],
                       [video.duration for video, _, _ in rows], [curves for _, _, curves in rows])


def predict_windows(
    model: Any,
    videos: Iterable[VideoWindows],
    text: Any,
    postprocess: PostProcess,
    input_length: int,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, list[WindowDetections]]:
    """Window detections of every video that has windows (steps 1-4 of the module docstring).

    ``text`` [K, D] class embeddings; ``input_length`` the padded window length;
    ``on_batch(n)`` after each batch of n windows. Returns video id -> its windows'
    detections in window order, videos in the order given.
    """
    return predict_windows_each(model, videos, text, {"": postprocess}, input_length, batch_size, device,
                                on_batch)[""]


@torch.no_grad()
def predict_windows_each(
    model: Any,
    videos: Iterable[VideoWindows],
    text: Any,
    postprocesses: Mapping[Any, PostProcess],
    input_length: int,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> dict[Any, dict[str, list[WindowDetections]]]:
    """:func:`predict_windows` for several post-processings at once: the model runs once
    per window batch and each of ``postprocesses`` re-scores its outputs. Returns, per key
    of ``postprocesses``, video id -> window detections (nothing runs when it is empty)."""
    found: dict[Any, dict[str, list[WindowDetections]]] = {key: {} for key in postprocesses}
    if not postprocesses:
        return found
    model.eval()
    text = torch.as_tensor(text, dtype=torch.float32).to(device)
    curves = any(post.needs_curves for post in postprocesses.values())
    for batch in window_batches(videos, text, input_length, batch_size, curves, device):
        outputs = model(batch.features, batch.mask, batch.text)
        for key, post in postprocesses.items():
            for window, detections in zip(batch.windows, post(outputs, batch)):
                found[key].setdefault(window.video_id, []).append(detections)
        if on_batch is not None:
            on_batch(len(batch.windows))
    return found


def predict_videos(
    model: Any,
    videos: Iterable[VideoWindows],
    text: Any,
    class_names: Sequence[str],
    postprocess: PostProcess,
    input_length: int,
    nms_iou: float = 0.4,
    nms_within_windows: bool = True,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    on_batch: Callable[[int], None] | None = None,
    score_threshold: float = 0.0,
) -> dict[str, list[dict]]:
    """Detections of every video that has windows (steps 1-5 of the module docstring):
    video id -> ``[{"segment", "label", "score"}]``; ``text`` row k embeds
    ``class_names[k]``, the other arguments as in :func:`predict_windows` and
    :func:`merge_video`."""
    found = predict_windows(model, videos, text, postprocess, input_length, batch_size, device, on_batch)
    return {video_id: merge_video(dets, class_names, nms_iou, nms_within_windows, score_threshold)
            for video_id, dets in found.items()}


def localizer_detections(features: np.ndarray, times: np.ndarray, duration: float | None, text: Any,
                         class_names: Sequence[str], score_threshold: float = 0.0) -> list[dict]:
    """``inference.method=localizer``: the training-free localizer's detections of one
    video (default settings), without those scoring below ``score_threshold``."""
    found = localize(features, times, np.asarray(text, dtype=np.float64), class_names, LocalizerConfig(),
                     duration=duration)
    return [d for d in found if d["score"] >= score_threshold] if score_threshold > 0 else found


def predict_video(
    model: Any, cfg: Any, features: np.ndarray, times: np.ndarray, duration: float | None, text: Any,
    class_names: Sequence[str], device: str | torch.device = "cpu", batch_size: int = 16,
) -> list[dict]:
    """Detections of one video: features [T, D], times [T] (seconds), text [K, D] ->
    ``[{"segment", "label", "score"}]``, with the windowing and inference settings of
    ``cfg`` (a ``PSFTRConfig``, e.g. the checkpoint's)."""
    inference = cfg.inference
    if inference.method == "localizer":
        if isinstance(text, torch.Tensor):
            text = text.detach().cpu().numpy()
        return localizer_detections(features, times, duration, text, class_names, inference.score_threshold)
    windowing = windowing_from_config(cfg.data)
    video = video_windows("video", features, times, duration, windowing)
    found = predict_videos(
        model, [video], text, class_names, PostProcess.from_config(cfg.model, inference), input_length(windowing),
        float(inference.nms_iou), inference.nms == "all", batch_size, device,
        score_threshold=float(inference.score_threshold),
    )
    return found.get("video", [])


def dataset_videos(window_dataset: Any, video_ids: Iterable[str] | None = None) -> Iterator[VideoWindows]:
    """Videos of an inference ``WindowDataset`` ready for inference, features loaded one
    video at a time: ``video_ids`` (a video without windows gets an empty list), or by
    default those with windows, in window order."""
    windows_of: dict[str, list[WindowSpec]] = {}
    for window in window_dataset.windows:
        windows_of.setdefault(window.video_id, []).append(window)
    dataset = window_dataset.dataset
    for video_id in windows_of if video_ids is None else video_ids:
        yield VideoWindows(video_id, dataset.load_features(video_id), dataset.snippet_times(video_id),
                           window_dataset.durations.get(video_id), windows_of.get(video_id, []))


def predict_dataset(
    model: Any,
    window_dataset: Any,
    text: torch.Tensor,
    topk: int = 100,
    nms_iou: float = 0.4,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    roi_weight: float | None = None,
    on_batch: Callable[[int], None] | None = None,
    scoring: str = "calibrated",
    nms_within_windows: bool = True,
    inference: InferenceConfig | None = None,
) -> dict[str, list[dict]]:
    """Detections for every video of an inference ``WindowDataset`` (ActivityNet schema).

    ``inference`` (e.g. a checkpoint's ``cfg.inference``) holds every inference setting;
    without it, ``topk``, ``nms_iou``, ``scoring`` and ``nms_within_windows`` make one
    (the other settings at their defaults). ``roi_weight``, when given, replaces
    ``inference.roi_weight`` (None keeps it; there, null = the model's ROI-CLIP mix).
    The windows, durations and padded length are the dataset's. Every video of the
    dataset appears in the result, with an empty list when it has no window (no features).
    """
    if inference is None:
        inference = InferenceConfig(topk=topk, nms_iou=nms_iou, scoring=scoring,
                                    nms="all" if nms_within_windows else "cross_window")
    if roi_weight is not None:
        inference = dataclasses.replace(inference, roi_weight=float(roi_weight))
    if inference.method == "localizer":
        text_np = torch.as_tensor(text).detach().cpu().numpy()
        found = {}
        for video in dataset_videos(window_dataset):
            found[video.video_id] = localizer_detections(
                video.features, video.times, window_dataset.records[video.video_id].duration, text_np,
                window_dataset.class_names, inference.score_threshold)
            if on_batch is not None:  # progress in windows, as for the model
                on_batch(len(video.windows))
    else:
        postprocess = PostProcess.from_config(model.cfg, inference)
        found = predict_videos(model, dataset_videos(window_dataset), text, window_dataset.class_names, postprocess,
                               window_dataset.length, float(inference.nms_iou), inference.nms == "all", batch_size,
                               device, on_batch, float(inference.score_threshold))
    return {video_id: found.get(video_id, []) for video_id in window_dataset.records}
