"""The one inference path of PSFTR: video features -> candidate detections in video seconds.

Three entries, one job each:

- :func:`predict_video` (``psftr detect``): one video's candidates (:class:`~psftr_core.infer.candidates.Candidates`),
  left to the caller to filter (detect puts the user's flags over the model's settings);
- :func:`predict_dataset` (``psftr evaluate``): every video of a ``WindowDataset``,
  filtered with :meth:`FilterSettings.from_inference` of the ``inference`` settings;
- ``psftr_core.train.calibration.grid_predictions``: one model run re-scored by many
  settings (:func:`predict_windows_each`), each filtered with its own.

All of them decode the same way:

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
5. Merge, per video (:func:`merge_windows`): the windows' pairs concatenated in window
   order, each with its window's index. Nothing is removed here: NMS (either mode of
   ``inference.nms``, at ``inference.nms_iou``) and ``inference.score_threshold`` are the
   filter stage's (:mod:`psftr_core.infer.filtering` says why).

The paper's inference is ``inference.contrast_weight=0 inference.roi_weight=0.5
inference.nms=cross_window`` (``inference.scoring=model`` stands for the first two with
a model trained with the default ROI mix).

``inference.method=localizer`` replaces steps 1-5 by the training-free localizer's
candidates (:func:`~psftr_core.infer.candidates.localizer_candidates`, default settings) on the same features and
text, so a checkpoint's evaluation or detection can fall back to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from psftr_core.config import InferenceConfig
from psftr_core.data.slicing import Windowing, WindowSpec, make_windows, resize_nearest
from psftr_core.data.windows import input_length, windowing_from_config
from psftr_core.infer.candidates import Candidates, localizer_candidates
from psftr_core.infer.filtering import FilterSettings, filter_detections
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


def merge_windows(detections: Sequence[WindowDetections], class_names: Sequence[str]) -> Candidates:
    """One video's window detections -> its candidates (step 5 of the module docstring):
    concatenated in window order, then rank inside the window, each with its window index."""
    if not detections:
        return Candidates.empty(class_names)
    return Candidates(
        np.concatenate([d.segments for d in detections]).reshape(-1, 2).astype(np.float64),
        np.concatenate([d.scores for d in detections]).astype(np.float64),
        np.concatenate([d.classes for d in detections]).astype(np.int64),
        list(class_names),
        np.concatenate([np.full(len(d.scores), d.window_index) for d in detections]).astype(np.int64),
    )


def window_batches(
    videos: Iterable[VideoWindows],
    text: torch.Tensor,
    input_length: int,
    batch_size: int = 16,
    with_curves: bool = False,
    device: str | torch.device = "cpu",
    curve_features: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Iterator[WindowBatch]:
    """The windows of ``videos`` in order, cut and padded to ``input_length`` (at least),
    ``batch_size`` at a time (steps 1-2 of the module docstring).

    Videos are read one after the other (``videos`` may be a generator); with
    ``with_curves`` each video's class curves are computed once (for ``contrast_weight`` > 0),
    from ``curve_features(features)`` when given (a model's visual→text map), else the raw features.
    """
    text_np = text.detach().cpu().numpy()
    rows: list[tuple[VideoWindows, int, VideoCurves | None]] = []  # (video, window index, its curves)
    for video in videos:
        curves = None
        if with_curves and video.windows:
            clip = video.features if curve_features is None else curve_features(video.features)
            curves = video_curves(clip, video.times, text_np)
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
    for batch in window_batches(videos, text, input_length, batch_size, curves, device,
                                curve_features=_text_space_of(model, device)):
        outputs = model(batch.features, batch.mask, batch.text)
        for key, post in postprocesses.items():
            for window, detections in zip(batch.windows, post(outputs, batch)):
                found[key].setdefault(window.video_id, []).append(detections)
        if on_batch is not None:
            on_batch(len(batch.windows))
    return found


def _text_space_of(model: Any, device: str | torch.device) -> Callable[[np.ndarray], np.ndarray] | None:
    """The model's visual→text map on a whole video's features [T, D] (numpy), or None without one."""
    model = getattr(model, "module", model)  # DistributedDataParallel wraps the model
    if not getattr(getattr(model, "cfg", None), "use_visual_text_map", False):
        return None

    def mapped(features: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(features), dtype=torch.float32, device=device)
        return model.to_text_space(x).float().cpu().numpy()

    return mapped


def video_candidates(
    model: Any,
    videos: Iterable[VideoWindows],
    text: Any,
    class_names: Sequence[str],
    postprocess: PostProcess,
    input_length: int,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Candidates]:
    """Candidates of every video that has windows (steps 1-5 of the module docstring):
    video id -> :class:`Candidates`; ``text`` row k embeds ``class_names[k]``, the other
    arguments as in :func:`predict_windows`."""
    found = predict_windows(model, videos, text, postprocess, input_length, batch_size, device, on_batch)
    return {video_id: merge_windows(dets, class_names) for video_id, dets in found.items()}


def predict_video(
    model: Any, cfg: Any, features: np.ndarray, times: np.ndarray, duration: float | None, text: Any,
    class_names: Sequence[str], device: str | torch.device = "cpu", batch_size: int = 16,
) -> Candidates:
    """Candidates of one video: features [T, D], times [T] (seconds), text [K, D], with
    the windowing and inference settings of ``cfg`` (a ``PSFTRConfig``, e.g. the
    checkpoint's). Not filtered: ``filter_detections(found, FilterSettings.from_inference(
    cfg.inference), duration)`` gives what evaluation would keep of this video."""
    inference = cfg.inference
    if inference.method == "localizer":
        return localizer_candidates(features, times, duration, text, class_names)
    windowing = windowing_from_config(cfg.data)
    video = video_windows("video", features, times, duration, windowing)
    found = video_candidates(model, [video], text, class_names, PostProcess.from_config(cfg.model, inference),
                             input_length(windowing), batch_size, device)
    return found.get("video", Candidates.empty(class_names))


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
    inference: InferenceConfig | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, list[dict]]:
    """Evaluation's detections of every video of an inference ``WindowDataset``
    (ActivityNet schema, best first): each video's candidates through the filter stage
    with :meth:`FilterSettings.from_inference` of ``inference`` (e.g. a checkpoint's
    ``cfg.inference``; defaults when None).

    The windows, durations and padded length are the dataset's; ``on_batch(n)`` after
    each batch of n windows. Every video of the dataset appears in the result, with an
    empty list when it has no window (no features).
    """
    inference = inference or InferenceConfig()
    if inference.method == "localizer":
        found = {}
        for video in dataset_videos(window_dataset):
            found[video.video_id] = localizer_candidates(
                video.features, video.times, window_dataset.records[video.video_id].duration, text,
                window_dataset.class_names)
            if on_batch is not None:  # progress in windows, as for the model
                on_batch(len(video.windows))
    else:
        postprocess = PostProcess.from_config(model.cfg, inference)
        found = video_candidates(model, dataset_videos(window_dataset), text, window_dataset.class_names,
                                 postprocess, window_dataset.length, batch_size, device, on_batch)
    settings = FilterSettings.from_inference(inference)
    # No duration: the decodings clipped every candidate to the video they were given.
    return {video_id: filter_detections(found[video_id], settings) if video_id in found else []
            for video_id in window_dataset.records}
