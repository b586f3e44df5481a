"""From model outputs to detections in video time (method §6, "Inference").

Per window: the final score of (query q, class k) is ``σ(actionness_q) · softmax_k(s_q)``
(``PSFTR.scores``); the ``topk`` (100) best (query, class) pairs are kept, their
normalised segments mapped to video seconds through the window's offset and scale and
clipped to the video. Per video: the detections of all its windows are merged with
class-wise NMS at tIoU ``nms_iou`` (0.4) applied only *across* windows, i.e. where
windows overlap: two detections of the same window never suppress each other (the set
prediction has already removed duplicates inside a window), while a detection of one
window suppresses an overlapping one of the same class from a neighbouring window when
their tIoU exceeds the threshold. Output lists are sorted by score (ties: window order,
then rank inside the window).

Optionally the learned class logits are mixed with ROI-CLIP logits (cosine of the raw
CLIP features pooled over each predicted segment with the text):
``(1 - w)·learned + w·ROI``, ``w = model.roi_logit_weight`` when ROI logits are on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from psftr_core.postprocess import tiou_matrix


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
    cw = segments[query]
    se = torch.stack([cw[:, 0] - cw[:, 1] / 2, cw[:, 0] + cw[:, 1] / 2], dim=-1).clamp(0.0, 1.0)
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


def cross_window_nms(
    segments: np.ndarray, scores: np.ndarray, classes: np.ndarray, windows: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """Greedy class-wise NMS where only detections of different windows compete.

    All inputs have length N (segments [N, 2]). Returns kept indices, best score first
    (ties: lower index first). A detection is dropped when a kept one of the same class
    from another window overlaps it with tIoU > ``iou_threshold``.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    alive = np.ones(n, dtype=bool)
    for cls in np.unique(classes):
        members = order[classes[order] == cls]
        if np.unique(windows[members]).size < 2:
            continue
        iou = tiou_matrix(segments[members], segments[members])
        win = windows[members]
        local_alive = np.ones(len(members), dtype=bool)
        for i in range(len(members)):
            if not local_alive[i]:
                continue
            later = np.arange(i + 1, len(members))
            hit = later[(iou[i, later] > iou_threshold) & (win[later] != win[i]) & local_alive[later]]
            local_alive[hit] = False
        alive[members[~local_alive]] = False
    kept = [int(i) for i in order if alive[i]]
    return np.asarray(kept, dtype=np.int64)


def merge_video(
    detections: Sequence[WindowDetections], class_names: Sequence[str], iou_threshold: float = 0.4
) -> list[dict]:
    """One video's window detections -> ``[{"segment", "label", "score"}]`` best first."""
    if not detections:
        return []
    segments = np.concatenate([d.segments for d in detections]).reshape(-1, 2)
    classes = np.concatenate([d.classes for d in detections]).astype(np.int64)
    scores = np.concatenate([d.scores for d in detections]).astype(np.float64)
    windows = np.concatenate([np.full(len(d.scores), d.window_index) for d in detections]).astype(np.int64)
    keep = cross_window_nms(segments, scores, classes, windows, iou_threshold)
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
) -> dict[str, list[WindowDetections]]:
    """Run ``model`` over a loader of ``collate_windows`` batches.

    ``windows`` maps ``batch["window_index"]`` to ``WindowSpec``s; ``durations`` clips
    segments to each video. Returns video id -> window detections, in window order.
    """
    model.eval()
    text = text.to(device)
    per_video: dict[str, list[WindowDetections]] = {}
    for batch in loader:
        features = batch["features"].to(device)
        mask = batch["mask"].to(device)
        outputs = model(features, mask, text)
        scores = window_scores(model, outputs, features, mask, text, roi_weight).float().cpu()
        segments = outputs["pred_segments"].float().cpu()
        for b, index in enumerate(batch["window_index"].tolist()):
            window = windows[index]
            se, cls, sc = topk_pairs(scores[b], segments[b], topk)
            seconds = window.to_video_time(se.double().numpy())
            duration = durations.get(window.video_id)
            seconds = np.clip(seconds, 0.0, duration if duration else np.inf)
            per_video.setdefault(window.video_id, []).append(
                WindowDetections(index, seconds, cls.numpy(), sc.double().numpy())
            )
        if on_batch is not None:
            on_batch(len(batch["window_index"]))
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
) -> dict[str, list[dict]]:
    """Detections for every video of an inference ``WindowDataset`` (ActivityNet schema).

    Every video of the dataset appears in the result, with an empty list when it has no
    window (no features).
    """
    from psftr_core.data_pipeline import collate_windows

    loader = torch.utils.data.DataLoader(
        window_dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_windows
    )
    per_video = predict_windows(
        model, loader, window_dataset.windows, window_dataset.durations, text, topk, device, roi_weight, on_batch
    )
    names = window_dataset.class_names
    return {
        video_id: merge_video(per_video.get(video_id, []), names, nms_iou) for video_id in window_dataset.records
    }
