"""The one filter stage: which of a video's candidate detections are kept.

Every route to detections ends here, with its settings built in one place:

- evaluation (:func:`psftr_core.infer.predict.predict_dataset`):
  :meth:`FilterSettings.from_inference` of the checkpoint's (or config's) ``inference``;
- the calibration grid (``psftr_core.train.calibration.grid_predictions``): the same for
  each candidate setting, without a score threshold (it chooses detect's threshold);
- ``psftr detect``: the model's settings (a checkpoint's ``from_inference``, the
  localizer's :meth:`FilterSettings.of_localizer`) with the user's flags over them.

Decoding versus filtering. A model's *decoding* makes the candidates: each gets a
segment in video seconds, a label and a score, and is never changed afterwards.
PSFTR's decoding (``psftr_core.infer.scoring.PostProcess``) keeps the ``inference.topk``
best (query, class) pairs of each window, maps them to video time, clips them to the
video, and the windows of a video are concatenated with each candidate's window index
(``predict.merge_windows``). The per-window top-k stays there: it is how a set
prediction is read (DETR's post-processing), it works on one window's raw outputs, and
a window's candidates must not depend on its neighbours. The localizer's decoding
scores its proposals (``candidates.localizer_candidates``). *Filtering* only decides which
candidates to keep: score thresholds, minimum length, class-wise NMS and a top-k per
video. NMS is here, in both modes, because it removes duplicates among finished
candidates and nothing else; the paper's mode (``inference.nms=cross_window``: only
candidates of different windows suppress each other, a window's set prediction having
removed its own duplicates) needs no more than the window index the decoding keeps. So
there is one NMS at one tIoU (``inference.nms_iou``, or detect's ``--nms-iou``), not one
at 0.4 after the windows and another at 0.5 in detect.

Steps of :func:`filter_detections`: clip to the video, thresholds (and minimum
length), NMS, top-k. Thresholding before greedy NMS gives what thresholding after it
gives: a candidate is judged only against the stronger candidates of its class kept
before it, and those below their class's threshold are the weakest of that class, so
they suppress nothing that is kept. Likewise NMS at tIoU t after NMS at t' <= t removes
nothing more in the same mode (no two kept segments that compete overlap more than t'). A minimum duration
is not neutral that way: a short segment dropped before NMS no longer suppresses a
longer one, which is the intent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from psftr_core.config import InferenceConfig
from psftr_core.infer.candidates import Candidates
from psftr_core.infer.localizer import LocalizerConfig
from psftr_core.infer.nms import nms


@dataclass(frozen=True)
class FilterSettings:
    """What :func:`filter_detections` keeps. Build it with :meth:`from_inference` or
    :meth:`of_localizer` (the one set of defaults), then replace what a caller overrides.

    Scores are in [0, 1] (see ``psftr_core.infer.detectors.detect_threshold`` for what
    they mean and why the models' default thresholds differ).

    Attributes:
        nms_iou: class-wise NMS: a candidate is dropped when its tIoU with a stronger
            kept candidate of its class is greater than this (None: no NMS; 1.0
            suppresses nothing).
        cross_window: NMS only between candidates of different windows (the paper's
            ``inference.nms=cross_window``); candidates from no windows all compete.
        score_threshold: the minimum score (kept: ``score >= threshold``).
        thresholds: minimum scores per label, in place of ``score_threshold``.
        min_duration: None keeps every candidate whatever its length (evaluation scores
            what the model makes, empty segments included); a number drops empty
            segments and those shorter than this (seconds).
        top_k: at most this many per video, the best (None: all).
        drop_nested: drop a segment that lies within, or holds, a stronger kept segment
            of its label (after NMS, before top-k). ``psftr detect`` sets it: a list read
            by people (and subtitles) should not stack "diving 1-6 s" over "diving 2-3 s".
            Evaluation keeps them: nested hypotheses at other scales are recall at high
            tIoU, which mAP rewards (docs/detect.md says what it costs).
    """

    nms_iou: float | None
    cross_window: bool = False
    score_threshold: float = 0.0
    thresholds: Mapping[str, float] = field(default_factory=dict)
    min_duration: float | None = None
    top_k: int | None = None
    drop_nested: bool = False

    @classmethod
    def from_inference(cls, inference: InferenceConfig) -> FilterSettings:
        """The filter of a model's ``inference`` settings: ``nms_iou``, ``nms`` (the mode)
        and ``score_threshold``; with ``method=localizer`` the localizer's NMS and top-k."""
        threshold = float(inference.score_threshold)
        if inference.method == "localizer":
            return dataclasses.replace(cls.of_localizer(LocalizerConfig()), score_threshold=threshold)
        return cls(nms_iou=float(inference.nms_iou), cross_window=inference.nms == "cross_window",
                   score_threshold=threshold)

    @classmethod
    def of_localizer(cls, cfg: LocalizerConfig) -> FilterSettings:
        """The training-free localizer's NMS (``nms_threshold``) and ``top_k``, which its
        candidates (``candidates.localizer_candidates``) leave to the filter."""
        return cls(nms_iou=float(cfg.nms_threshold), top_k=int(cfg.top_k))

    def threshold_of(self, label: str) -> float:
        return float(self.thresholds.get(label, self.score_threshold))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (run settings)."""
        return {"nms_iou": self.nms_iou, "nms": "cross_window" if self.cross_window else "all",
                "score_threshold": self.score_threshold, "thresholds": dict(self.thresholds),
                "min_duration": self.min_duration, "top_k": self.top_k, "drop_nested": self.drop_nested}


def filter_detections(found: Candidates, settings: FilterSettings, duration: float | None = None) -> list[dict]:
    """The candidates of one video that ``settings`` keep, best first, as
    ``[{"segment": [start, end], "label", "score"}]``.

    Steps: clip to [0, ``duration``] (no upper bound when it is None or <= 0; the
    decodings already clip to the video they know); drop non-finite scores, scores below
    their label's threshold and, with ``min_duration``, empty or shorter segments;
    class-wise NMS; the ``top_k`` best. Equal scores keep the candidates' order.
    """
    if not len(found):
        return []
    upper = float(duration) if duration and duration > 0 else np.inf
    starts = np.maximum(found.segments[:, 0], 0.0)
    ends = np.minimum(found.segments[:, 1], upper)
    scores = found.scores
    limits = np.array([settings.threshold_of(name) for name in found.class_names], dtype=np.float64)
    keep = np.isfinite(scores) & (scores >= limits[found.classes])
    if settings.min_duration is not None:
        keep &= (ends > starts) & (ends - starts >= settings.min_duration)
    index = np.flatnonzero(keep)
    limit = None if settings.top_k is None else max(int(settings.top_k), 0)
    early_limit = None if settings.drop_nested else limit  # nested ones go first, then the top-k
    if settings.nms_iou is not None and len(index):
        windows = found.windows[index] if settings.cross_window and found.windows is not None else None
        segments = np.stack([starts[index], ends[index]], axis=1)
        order = index[nms(segments, scores[index], found.classes[index], settings.nms_iou, max_keep=early_limit,
                          windows=windows)]
    else:
        order = index[np.argsort(-scores[index], kind="stable")][:early_limit]
    if settings.drop_nested:
        order = drop_nested(order, starts, ends, found.classes)[:limit]
    names = found.class_names
    return [{"segment": [float(starts[i]), float(ends[i])], "label": names[found.classes[i]], "score": float(scores[i])}
            for i in order]


NESTED_TOLERANCE = 1e-3  # seconds: the precision of the output times


def drop_nested(order: np.ndarray, starts: np.ndarray, ends: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``order`` (candidate indices, best first) without those that lie within, or hold,
    an earlier kept one of the same class (ends within ``NESTED_TOLERANCE``)."""
    kept: list[int] = []
    for i in order:
        nested = any(
            classes[j] == classes[i]
            and ((starts[j] - NESTED_TOLERANCE <= starts[i] and ends[i] <= ends[j] + NESTED_TOLERANCE)
                 or (starts[i] - NESTED_TOLERANCE <= starts[j] and ends[j] <= ends[i] + NESTED_TOLERANCE))
            for j in kept
        )
        if not nested:
            kept.append(int(i))
    return np.asarray(kept, dtype=np.int64)
