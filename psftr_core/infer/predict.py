"""From model outputs to detections in video time (method §6, "Inference").

Per window, every (query q, class k) pair gets a score, by ``inference.scoring``:

- ``"calibrated"`` (default): ``σ(actionness_q) · C_k(segment_q)``, where ``C_k`` is
  the outer-inner contrast (mean inside the segment minus the mean over flanks of a
  quarter of its length, at least 0) of the *video-calibrated CLIP class curve* of
  class k: per snippet, CLIP's softmax over the vocabulary of the frame-text cosine
  (scale 100) times a gate that says whether the frame stands out for that class
  within the whole video, smoothed (``baseline.class_curves`` and
  ``baseline.segment_contrast``, the training-free localizer's curves and segment
  score). The model decides where actions are and how action-like they are; CLIP,
  calibrated per video, decides which vocabulary class they are, and the contrast
  favours segments whose boundaries match the class evidence. This replaces the
  ROI-CLIP term of the paper with the same raw-CLIP evidence pooled over the segment,
  calibrated against the rest of the video, and leaves out the learned class logits:
  on the synthetic benchmark (docs/benchmarks.md) the learned logits fit the seen
  classes and transfer poorly to unseen ones, and an uncalibrated softmax assigns any
  action (also one outside the vocabulary) to some vocabulary class.
- ``"model"`` (the paper's formula): ``σ(actionness_q) · softmax_k(s_q)`` with the
  learned logits, optionally mixed with ROI-CLIP logits (cosine of the raw CLIP
  features pooled over each predicted segment with the text): ``(1 - w)·learned +
  w·ROI``, ``w = model.roi_logit_weight`` when ROI logits are on (``PSFTR.scores``).

The ``topk`` (100) best (query, class) pairs are kept, their normalised segments mapped
to video seconds through the window's offset and scale and clipped to the video. Per
video: the detections of all its windows are merged with class-wise NMS at tIoU
``nms_iou`` (0.4), by ``inference.nms``:

- ``"all"`` (default): plain class-wise NMS over all detections of the video.
- ``"cross_window"`` (the paper): applied only *across* windows, i.e. where windows
  overlap: two detections of the same window never suppress each other (the set
  prediction is meant to have removed duplicates inside a window), while a detection of
  one window suppresses an overlapping one of the same class from a neighbouring window.
  With calibrated scoring, near-duplicate queries of a window share their class score
  (it comes from the segment), and a briefly trained model leaves such duplicates, so
  they must compete too.

Output lists are sorted by score (ties: window order, then rank inside the window).
The paper's inference is ``inference.scoring=model inference.nms=cross_window``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from psftr_core.config import SCORINGS
from psftr_core.segments import segment_cw_to_se
from psftr_core.segments import tiou_matrix


@dataclass
class WindowDetections:
    """Top-k detections of one window: ``segments`` [k, 2] seconds, ``classes`` [k], ``scores`` [k]."""

    window_index: int
    segments: np.ndarray
    classes: np.ndarray
    scores: np.ndarray


def topk_pairs(scores: torch.Tensor, segments: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best ``k`` (query, class) pairs of one window.

    scores [Nq, K], segments [Nq, 2] (centre, width) -> (segments [k, 2] (start, end)
    normalised and clipped to [0, 1], class index [k], score [k]), best first; equal
    scores keep (query, class) order.
    """
    num_queries, num_classes = scores.shape
    flat = scores.reshape(-1)
    k = min(k, flat.numel())
    # stable descending sort (topk gives no tie guarantee)
    order = torch.sort(flat, descending=True, stable=True).indices[:k]
    query = torch.div(order, num_classes, rounding_mode="floor")
    cls = order % num_classes
    se = segment_cw_to_se(segments[query]).clamp(0.0, 1.0)
    return se, cls, flat[order]


def window_scores(model: Any, outputs: dict, features: torch.Tensor, mask: torch.Tensor, text: torch.Tensor,
                  roi_weight: float | None = None) -> torch.Tensor:
    """[B, Nq, K] final (query, class) scores, optionally with ROI-CLIP logits mixed in.

    roi_weight None: the model config decides (``PSFTR.inference_scores``:
    ``use_roi_logits`` / ``roi_logit_weight``); 0 disables mixing; w > 0 mixes
    ``(1 - w)·learned + w·ROI``.
    """
    if roi_weight is None:
        if hasattr(model, "inference_scores"):
            return model.inference_scores(outputs, features, mask, text)
        roi_weight = 0.0
    if roi_weight > 0:
        roi = model.roi_logits(features, mask, outputs["pred_segments"], text)
        logits = (1 - roi_weight) * outputs["pred_logits"] + roi_weight * roi
        return model.scores(outputs, logits)
    return model.scores(outputs)


@dataclass
class VideoCurves:
    """Video-calibrated CLIP class curves of one video: ``curves`` [T, K] in [0, 1] and
    the snippet centre ``times`` [T] in seconds (see the module docstring)."""

    curves: np.ndarray
    times: np.ndarray


def video_curves(features: Any, times: Any, text: Any) -> VideoCurves:
    """features [T, D] (raw CLIP, the whole video), times [T], text [K, D] -> VideoCurves."""
    from psftr_core.infer.localizer import LocalizerConfig, class_curves

    curves = class_curves(np.asarray(features, dtype=np.float64), np.asarray(text, dtype=np.float64),
                          LocalizerConfig())
    return VideoCurves(curves, np.asarray(times, dtype=np.float64).reshape(-1))


def window_detections(
    model: Any,
    outputs: dict,
    features: torch.Tensor,
    mask: torch.Tensor,
    text: torch.Tensor,
    windows: Sequence[Any],
    window_indices: Sequence[int],
    durations: dict[str, float],
    topk: int,
    scoring: str = "calibrated",
    curves_of: Callable[[str], VideoCurves] | None = None,
    roi_weight: float | None = None,
) -> list[WindowDetections]:
    """Detections of a batch of windows (row b is ``windows[b]``, numbered ``window_indices[b]``).

    ``scoring`` as in the module docstring; ``"calibrated"`` needs ``curves_of(video_id)``.
    ``roi_weight`` applies to ``"model"`` scoring only (see :func:`window_scores`).
    """
    from psftr_core.infer.localizer import segment_contrast

    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; expected one of {SCORINGS}")
    segments = outputs["pred_segments"].float().cpu()
    if scoring == "model":
        scores = window_scores(model, outputs, features, mask, text, roi_weight).float().cpu()
    else:
        if curves_of is None:
            raise ValueError("calibrated scoring needs the video's class curves (curves_of)")
        if "pred_actionness" in outputs:
            actionness = outputs["pred_actionness"].float().sigmoid().squeeze(-1).cpu().double().numpy()
        else:
            actionness = np.ones(segments.shape[:2])
    result = []
    for b, (window, index) in enumerate(zip(windows, window_indices)):
        upper = durations.get(window.video_id) or np.inf
        if scoring == "calibrated":
            se_all = segment_cw_to_se(segments[b]).clamp(0.0, 1.0).double().numpy()
            seconds = np.clip(window.to_video_time(se_all), 0.0, upper)
            video = curves_of(window.video_id)
            row = actionness[b][:, None] * segment_contrast(video.curves, video.times, seconds)
            window_scores_b = torch.from_numpy(row)
        else:
            window_scores_b = scores[b]
        se, cls, sc = topk_pairs(window_scores_b, segments[b], topk)
        seconds = np.clip(window.to_video_time(se.double().numpy()), 0.0, upper)
        result.append(WindowDetections(int(index), seconds, cls.numpy(), sc.double().numpy()))
    return result


def cross_window_nms(
    segments: np.ndarray, scores: np.ndarray, classes: np.ndarray, windows: np.ndarray, iou_threshold: float,
    within_windows: bool = False,
) -> np.ndarray:
    """Greedy class-wise NMS where only detections of different windows compete
    (``within_windows=True``: all detections of a class compete, plain class-wise NMS).

    All inputs have length N (segments [N, 2]). Returns kept indices, best score first
    (ties: lower index first). A detection is dropped when a kept one of the same class
    from another window (or any window) overlaps it with tIoU > ``iou_threshold``.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    alive = np.ones(n, dtype=bool)
    for cls in np.unique(classes):
        members = order[classes[order] == cls]
        if not within_windows and np.unique(windows[members]).size < 2:
            continue
        iou = tiou_matrix(segments[members], segments[members])
        win = windows[members]
        local_alive = np.ones(len(members), dtype=bool)
        for i in range(len(members)):
            if not local_alive[i]:
                continue
            later = np.arange(i + 1, len(members))
            competes = True if within_windows else win[later] != win[i]
            hit = later[(iou[i, later] > iou_threshold) & competes & local_alive[later]]
            local_alive[hit] = False
        alive[members[~local_alive]] = False
    kept = [int(i) for i in order if alive[i]]
    return np.asarray(kept, dtype=np.int64)


def merge_video(
    detections: Sequence[WindowDetections], class_names: Sequence[str], iou_threshold: float = 0.4,
    within_windows: bool = False,
) -> list[dict]:
    """One video's window detections -> ``[{"segment", "label", "score"}]`` best first
    (NMS across windows, or also within them: see :func:`cross_window_nms`)."""
    if not detections:
        return []
    segments = np.concatenate([d.segments for d in detections]).reshape(-1, 2)
    classes = np.concatenate([d.classes for d in detections]).astype(np.int64)
    scores = np.concatenate([d.scores for d in detections]).astype(np.float64)
    windows = np.concatenate([np.full(len(d.scores), d.window_index) for d in detections]).astype(np.int64)
    keep = cross_window_nms(segments, scores, classes, windows, iou_threshold, within_windows)
    return [
        {
            "segment": [float(segments[i, 0]), float(segments[i, 1])],
            "label": class_names[classes[i]],
            "score": float(scores[i]),
        }
        for i in keep
    ]


@torch.no_grad()
def predict_windows(
    model: Any,
    loader: Any,
    windows: Sequence[Any],
    durations: dict[str, float],
    text: torch.Tensor,
    topk: int = 100,
    device: str | torch.device = "cpu",
    roi_weight: float | None = None,
    on_batch: Callable[[int], None] | None = None,
    scoring: str = "model",
    curves_of: Callable[[str], VideoCurves] | None = None,
) -> dict[str, list[WindowDetections]]:
    """Run ``model`` over a loader of ``collate_windows`` batches.

    ``windows`` maps ``batch["window_index"]`` to ``WindowSpec``s; ``durations`` clips
    segments to each video; ``scoring`` / ``curves_of`` as in :func:`window_detections`.
    Returns video id -> window detections, in window order.
    """
    model.eval()
    text = text.to(device)
    per_video: dict[str, list[WindowDetections]] = {}
    for batch in loader:
        features = batch["features"].to(device)
        mask = batch["mask"].to(device)
        outputs = model(features, mask, text)
        indices = batch["window_index"].tolist()
        found = window_detections(model, outputs, features, mask, text, [windows[i] for i in indices], indices,
                                  durations, topk, scoring, curves_of, roi_weight)
        for window_index, detections in zip(indices, found):
            per_video.setdefault(windows[window_index].video_id, []).append(detections)
        if on_batch is not None:
            on_batch(len(indices))
    return per_video


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
) -> dict[str, list[dict]]:
    """Detections for every video of an inference ``WindowDataset`` (ActivityNet schema).

    Every video of the dataset appears in the result, with an empty list when it has no
    window (no features). ``scoring="calibrated"`` reads each video's raw features once
    for its class curves (the last video's are kept: windows come video by video).
    """
    from psftr_core.data.windows import collate_windows

    loader = torch.utils.data.DataLoader(
        window_dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_windows
    )
    dataset = window_dataset.dataset
    text_np = text.detach().float().cpu().numpy()
    last: dict[str, VideoCurves] = {}

    def curves_of(video_id: str) -> VideoCurves:
        if video_id not in last:
            last.clear()
            last[video_id] = video_curves(dataset.load_features(video_id), dataset.snippet_times(video_id), text_np)
        return last[video_id]

    per_video = predict_windows(
        model, loader, window_dataset.windows, window_dataset.durations, text, topk, device, roi_weight, on_batch,
        scoring, curves_of,
    )
    names = window_dataset.class_names
    return {
        video_id: merge_video(per_video.get(video_id, []), names, nms_iou, nms_within_windows)
        for video_id in window_dataset.records
    }
