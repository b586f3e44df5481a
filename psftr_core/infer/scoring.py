"""From the raw outputs of PSFTR on a batch of windows to detections in video time.

:class:`PostProcess` plays the part of DETR's ``PostProcess``: the model returns raw
outputs (:class:`psftr_core.model.PSFTR`), and this turns them into the top-k detections
of each window. Every (query q, class k) pair of a window gets a score from one family
with two weights, ``w_r`` (``inference.roi_weight``) and ``w_c``
(``inference.contrast_weight``)::

    score(q, k) = σ(actionness_q) · ((1 − w_c) · P_k(q) + w_c · C_k(segment_q))
    P(q)        = softmax_k((1 − w_r) · learned_q + w_r · ROI_q)

Three sources of class evidence:

- ``learned``: the model's class logits ``pred_logits`` (class_proj / SPDE).
- ``ROI``: ROI-CLIP logits, ``τ · cos(raw CLIP features pooled over the predicted
  segment, text)`` (:func:`roi_clip_logits`); no parameters, so they are computed for
  any model, also one trained without them. A model with a visual→text map
  (``model.use_visual_text_map``) pools its mapped features (``clip_features``) instead,
  and its class curves below are of the mapped features too.
- ``C``: the outer-inner contrast (mean inside the segment minus the mean over flanks of
  a quarter of its length, at least 0) of the *video-normalised CLIP class curve* of
  class k: per snippet, CLIP's softmax over the vocabulary of the frame-text cosine
  (scale 100) times a gate that says whether the frame stands out for that class within
  the whole video, smoothed (``localizer.class_curves`` and ``curves.segment_contrast``,
  the training-free localizer's curves and segment score). It favours segments whose
  boundaries match the class evidence, and unlike a softmax it can say "none of the
  vocabulary" for an action outside it.

Special cases: ``w_c = 1`` is the CLIP contrast scoring (the model decides where
actions are and how action-like they are, the CLIP contrast which class; the learned
logits are not used); ``w_c = 0`` is a softmax of logits as in the paper, with
``w_r = 0.5`` the paper's mix, ``w_r = 1`` ROI-pooled CLIP logits only (as GAP) and
``w_r = 0`` the learned logits only. Without an actionness head ``σ(actionness)`` is 1.
Which weights suit a dataset depends on how far what the model learned on seen classes
transfers to unseen ones (docs/benchmarks.md).

The ``topk`` best (query, class) pairs of a window are kept, their normalised segments
mapped to video seconds through the window's offset and scale and clipped to the video.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from psftr_core.config import InferenceConfig, ModelConfig
from psftr_core.data.slicing import WindowSpec
from psftr_core.errors import InputError
from psftr_core.infer.curves import segment_contrast
from psftr_core.infer.localizer import LocalizerConfig, class_curves
from psftr_core.model.roi_align import roi_align_1d
from psftr_core.segments import segment_cw_to_se


@dataclass
class VideoCurves:
    """Video-normalised CLIP class curves of one video: ``curves`` [T, K] in [0, 1] and
    the snippet centre ``times`` [T] in seconds (see the module docstring)."""

    curves: np.ndarray
    times: np.ndarray


def video_curves(features: Any, times: Any, text: Any) -> VideoCurves:
    """features [T, D] (raw CLIP, the whole video), times [T], text [K, D] -> VideoCurves."""
    curves = class_curves(np.asarray(features, dtype=np.float64), np.asarray(text, dtype=np.float64),
                          LocalizerConfig())
    return VideoCurves(curves, np.asarray(times, dtype=np.float64).reshape(-1))


@dataclass
class WindowBatch:
    """B padded windows, the model's input, with what scoring needs to map each row back
    to its video.

    ``features`` [B, L, D] raw CLIP features, zeros at padding; ``mask`` [B, L] bool,
    True = padding; ``text`` [K, D] class embeddings; per row b: ``windows[b]``, its
    number ``window_indices[b]`` among the windows of its video, the video's duration
    ``durations[b]`` (seconds, None = unknown: no clipping at the end) and its class
    curves ``curves[b]`` (None unless ``contrast_weight`` > 0).
    """

    features: torch.Tensor
    mask: torch.Tensor
    text: torch.Tensor
    windows: Sequence[WindowSpec]
    window_indices: Sequence[int]
    durations: Sequence[float | None]
    curves: Sequence[VideoCurves | None]


@dataclass
class WindowDetections:
    """Top-k detections of one window: ``segments`` [k, 2] seconds, ``classes`` [k], ``scores`` [k]."""

    window_index: int
    segments: np.ndarray
    classes: np.ndarray
    scores: np.ndarray


def class_probabilities(outputs: dict, logits: torch.Tensor | None = None) -> torch.Tensor:
    """Score per (query, class) [B, Nq, K]: ``σ(actionness) · softmax_k(logits)``.

    ``logits`` defaults to ``outputs["pred_logits"]``. Without an actionness head the
    score is ``softmax_k(logits)`` alone.
    """
    probs = (outputs["pred_logits"] if logits is None else logits).softmax(dim=-1)
    if "pred_actionness" in outputs:
        probs = probs * outputs["pred_actionness"].sigmoid()
    return probs


def roi_clip_logits(
    features: torch.Tensor, mask: torch.Tensor | None, segments: torch.Tensor, text: torch.Tensor,
    roi_size: int = 16, samples_per_bin: int = 2, logit_scale: float = 100.0,
) -> torch.Tensor:
    """ROI-CLIP logits [B, Nq, K]: ``τ · cos(mean of ROIAlign(features, segment), text)``.

    features are the raw CLIP features [B, T, D] with padding ``mask`` [B, T] (True =
    padding; None = none); segments [B, Nq, 2] are (centre, width) fractions of the
    valid length (as ``pred_segments``), clipped to the video; text [K, D] or [B, K, D].
    ``roi_size`` bins of linear interpolation, averaged.
    """
    if mask is None:
        mask = torch.zeros(features.shape[:2], dtype=torch.bool, device=features.device)
    text = (text[None] if text.dim() == 2 else text).to(features.dtype)
    lengths = (~mask).sum(dim=1)
    length = lengths.to(features.dtype).view(-1, 1)
    centre, width = segments[..., 0], segments[..., 1]
    start = ((centre - width / 2) * length).clamp(min=0.0)
    end = torch.minimum((centre + width / 2) * length, length)
    bounds = torch.stack((start, torch.maximum(start, end)), dim=-1)
    video = features.masked_fill(mask[..., None], 0.0)
    pooled = roi_align_1d(video, bounds, roi_size, samples_per_bin, lengths).mean(dim=2)
    cos = torch.matmul(F.normalize(pooled, dim=-1), F.normalize(text, dim=-1).transpose(1, 2))
    return logit_scale * cos


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


def resolved_weights(model: ModelConfig, inference: InferenceConfig) -> tuple[float, float]:
    """``(w_r, w_c)`` of ``inference`` for a model trained with ``model``: a null
    ``roi_weight`` is the model's own mix (``model.roi_logit_weight`` when
    ``model.use_roi_logits``, else 0), a null ``contrast_weight`` follows ``scoring``
    (``"contrast"`` 1, ``"model"`` 0)."""
    if inference.roi_weight is not None:
        roi = float(inference.roi_weight)
    else:
        roi = float(model.roi_logit_weight) if model.use_roi_logits else 0.0
    if inference.contrast_weight is not None:
        contrast = float(inference.contrast_weight)
    else:
        contrast = 1.0 if inference.scoring == "contrast" else 0.0
    return roi, contrast


@dataclass
class PostProcess:
    """Raw PSFTR outputs of a :class:`WindowBatch` -> :class:`WindowDetections` per row.

    ``roi_weight`` (w_r) and ``contrast_weight`` (w_c) as in the module docstring;
    ``topk`` pairs kept per window; ``roi_size`` / ``roi_samples_per_bin`` /
    ``logit_scale`` configure the ROI-CLIP logits.
    """

    topk: int = 100
    roi_weight: float = 0.0
    contrast_weight: float = 1.0
    roi_size: int = 16
    roi_samples_per_bin: int = 2
    logit_scale: float = 100.0

    def __post_init__(self) -> None:
        for name in ("roi_weight", "contrast_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    @classmethod
    def from_config(cls, model: ModelConfig, inference: InferenceConfig | None = None) -> PostProcess:
        """The post-processing of a model trained with ``model`` (its ROI-CLIP settings)
        with the settings of ``inference`` (defaults when None; :func:`resolved_weights`)."""
        inference = inference or InferenceConfig()
        roi_weight, contrast_weight = resolved_weights(model, inference)
        if roi_weight > 0 and contrast_weight < 1 and model.feature_dim != model.text_dim:
            raise InputError(f"inference.roi_weight > 0 compares video features with text embeddings, but "
                             f"model.feature_dim ({model.feature_dim}) != model.text_dim ({model.text_dim}); "
                             "set inference.roi_weight=0")
        return cls(
            topk=int(inference.topk),
            roi_weight=roi_weight,
            contrast_weight=contrast_weight,
            roi_size=model.roi_size,
            roi_samples_per_bin=model.roi_samples_per_bin,
            logit_scale=model.logit_scale,
        )

    @property
    def needs_curves(self) -> bool:
        """Whether scoring reads the videos' class curves (``WindowBatch.curves``)."""
        return self.contrast_weight > 0

    def roi_logits(self, features: torch.Tensor, mask: torch.Tensor | None, segments: torch.Tensor,
                   text: torch.Tensor) -> torch.Tensor:
        """:func:`roi_clip_logits` with this post-processing's ROI settings: [B, Nq, K]."""
        return roi_clip_logits(features, mask, segments, text, self.roi_size, self.roi_samples_per_bin,
                               self.logit_scale)

    def class_logits(self, outputs: dict, features: torch.Tensor, mask: torch.Tensor | None,
                     text: torch.Tensor) -> torch.Tensor:
        """Mixed class logits [B, Nq, K]: ``(1 − w_r)·pred_logits + w_r·ROI``; at the ends
        only the one source is computed (``w_r = 1`` never reads ``pred_logits``)."""
        if self.roi_weight <= 0:
            return outputs["pred_logits"]
        # A model with a visual→text map gives its mapped features; else the raw ones.
        roi = self.roi_logits(outputs.get("clip_features", features), mask, outputs["pred_segments"], text)
        if self.roi_weight >= 1:
            return roi
        return (1 - self.roi_weight) * outputs["pred_logits"] + self.roi_weight * roi

    def class_scores(self, outputs: dict, features: torch.Tensor, mask: torch.Tensor | None,
                     text: torch.Tensor) -> torch.Tensor:
        """Scores at ``w_c = 0`` [B, Nq, K]: ``σ(actionness) · softmax_k(class_logits)``."""
        if self.roi_weight <= 0:
            return class_probabilities(outputs)
        return class_probabilities(outputs, self.class_logits(outputs, features, mask, text))

    def __call__(self, outputs: dict, batch: WindowBatch) -> list[WindowDetections]:
        """Top-k detections of every window of ``batch``, in video seconds (row order)."""
        segments = outputs["pred_segments"].float().cpu()
        w_c = self.contrast_weight
        model_scores = None
        if w_c < 1:
            model_scores = self.class_scores(outputs, batch.features, batch.mask, batch.text).float().cpu()
        if "pred_actionness" in outputs:
            actionness = outputs["pred_actionness"].float().sigmoid().squeeze(-1).cpu().double().numpy()
        else:
            actionness = np.ones(segments.shape[:2])
        result = []
        for b, (window, index) in enumerate(zip(batch.windows, batch.window_indices)):
            upper = batch.durations[b] or np.inf
            if w_c <= 0:
                row_scores = model_scores[b]
            else:
                contrast = actionness[b][:, None] * self._contrast(batch.curves[b], window, segments[b], upper)
                if w_c < 1:
                    contrast = (1 - w_c) * model_scores[b].double().numpy() + w_c * contrast
                row_scores = torch.from_numpy(contrast)
            se, cls, sc = topk_pairs(row_scores, segments[b], self.topk)
            seconds = np.clip(window.to_video_time(se.double().numpy()), 0.0, upper)
            result.append(WindowDetections(int(index), seconds, cls.numpy(), sc.double().numpy()))
        return result

    @staticmethod
    def _contrast(video: VideoCurves | None, window: WindowSpec, segments: torch.Tensor, upper: float) -> np.ndarray:
        """[Nq, K] contrast of the video's class curves over each query's segment (seconds)."""
        if video is None:
            raise ValueError("contrast_weight > 0 needs the video's class curves (WindowBatch.curves)")
        se = segment_cw_to_se(segments).clamp(0.0, 1.0).double().numpy()
        seconds = np.clip(window.to_video_time(se), 0.0, upper)
        return segment_contrast(video.curves, video.times, seconds)
