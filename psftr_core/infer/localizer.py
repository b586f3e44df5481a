"""Training-free zero-shot localizer: CLIP frame-text similarity -> segments.

Used by ``psftr detect`` without a checkpoint and by ``psftr evaluate --baseline``.

Pipeline for one video (features [T, D], class texts [K, D]):

1. L2-normalise frames and texts; cosine ``c[t, k]`` (optionally smoothed over
   ``cosine_smooth_window`` snippets).
2. Class curve ``p[t, k] = softmax_k(logit_scale * c)[t, k] * gate[t, k]``, then a
   moving average over ``smooth_window`` snippets.
   - The softmax over the vocabulary (CLIP's scale 100) says *which* class a frame
     looks like.
   - The gate says whether the frame stands out for that class within this video:
     ``gate = sigmoid(gate_slope * (z - gate_center))`` with the cosine standardised
     over time, ``z = (c - median_t c) / max(1.4826 * MAD_t c, gate_min_spread)``.
     Frames at the class's typical level (scene, background) get a low gate, and a
     frame must be ``gate_center`` robust standard deviations above it to count half.
     This is what handles a small vocabulary: with K = 1 the softmax is always 1 and
     the curve is the gate alone. The spread floor keeps constant features (MAD = 0)
     from amplifying rounding noise. ``use_gate=False`` gives the plain softmax.
   - ``class_score="independent"`` replaces both by a curve of that class alone:
     ``p[t, k] = sigmoid(logit_scale * (c[t, k] - median_t c[:, k] - independent_margin))``,
     CLIP's two-way softmax between the name and its own typical level in this video
     raised by a margin (0.04 cosine, chosen on development data, benchmarks/
     score_independence.py). Adding or removing other names then changes nothing of
     a class's curve, segments or scores (the ``top_k`` cut over all classes aside).
     The softmax and gate settings do not apply; the smoothing windows do.
3. Proposals per class: contiguous runs where the curve is >= each of ``thresholds``
   (multi-threshold grouping), duplicates removed.
4. Score of a run = its mean curve value minus the mean over flanks of
   ``contrast_ratio`` x its length on each side (outer-inner contrast; the video edge
   counts as curve value 0). Runs scoring <= ``min_score`` are dropped.
5. Class-wise NMS (``nms_threshold``) and the ``top_k`` best segments.

Segment times come from the snippet centre times: start of the first snippet to end of
the last (halfway to the neighbouring centres), clipped to [0, duration] when given.
Degenerate inputs give finite scores: a single snippet or constant features never stand
out (z = 0), so their curve is at most sigmoid(-gate_slope * gate_center) (independent:
sigmoid(-logit_scale * independent_margin)).

How well it does on the synthetic benchmark is in docs/benchmarks.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from psftr_core.errors import InputError
from psftr_core.infer.curves import multi_threshold_runs, outer_inner_contrast, runs_to_seconds, smooth_1d
from psftr_core.infer.nms import nms

CLASS_SCORES = ("relative", "independent")  # LocalizerConfig.class_score values (module docstring, step 2)


@dataclass
class LocalizerConfig:
    """Settings of the training-free localizer (defaults tuned on the synthetic benchmark,
    THUMOS-like rate of 3.75 features/s)."""

    logit_scale: float = 100.0  # CLIP's learned temperature
    smooth_window: int = 5  # snippets of moving average on the class curves (1 = off)
    cosine_smooth_window: int = 1  # snippets of moving average on the cosine before the softmax
    use_gate: bool = True  # per-class "stands out in this video" gate (needed for K = 1)
    gate_center: float = 1.0  # robust standard deviations above the median where the gate is 0.5
    gate_slope: float = 2.0  # gate sharpness per robust standard deviation
    gate_min_spread: float = 0.005  # floor of the robust spread (cosine units)
    thresholds: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    contrast_ratio: float = 0.25  # flank length as a share of the segment length
    min_snippets: int = 1  # shortest run kept
    min_score: float = 0.0  # drop runs whose contrast score is <= this
    nms_threshold: float = 0.5  # class-wise NMS tIoU
    top_k: int = 100  # segments returned per video
    snippet_seconds: float | None = None  # snippet length; None = from snippet_times spacing
    # "relative": softmax over the vocabulary x gate (a score shared among the names asked for);
    # "independent": the class's cosine against its own video median alone (module docstring, step 2)
    class_score: str = "relative"
    independent_margin: float = 0.04  # cosine above the class's video median where the independent curve is 0.5

    def __post_init__(self) -> None:
        if self.class_score not in CLASS_SCORES:
            raise InputError(f"the localizer's score must be relative or independent, got {self.class_score!r}")
        margin = self.independent_margin
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not np.isfinite(margin):
            raise InputError(f"independent_margin must be a finite cosine difference, got {self.independent_margin}")


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def class_curves(features: np.ndarray, text: np.ndarray, cfg: LocalizerConfig) -> np.ndarray:
    """Per-class score curves [T, K] in [0, 1] (steps 1-2 of the module docstring).

    features [T, D], text [K, D].
    """
    cos = _l2_normalise(features) @ _l2_normalise(text).T  # [T, K]
    cos = smooth_1d(cos, cfg.cosine_smooth_window)
    if cfg.class_score == "independent":
        return smooth_1d(independent_evidence(cos, cfg.logit_scale, cfg.independent_margin), cfg.smooth_window)
    logits = cfg.logit_scale * cos
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    if not cfg.use_gate:
        return smooth_1d(probs, cfg.smooth_window)
    median = np.median(cos, axis=0)  # [K]
    spread = np.maximum(1.4826 * np.median(np.abs(cos - median), axis=0), cfg.gate_min_spread)
    z = (cos - median) / spread
    gate = _sigmoid(cfg.gate_slope * (z - cfg.gate_center))
    # Smoothing the curve (not only the cosine) keeps a sharp step's boundary where it is:
    # the sharp softmax would turn any partly smoothed cosine into a full-on frame.
    return smooth_1d(probs * gate, cfg.smooth_window)


def independent_evidence(cos: np.ndarray, logit_scale: float, margin: float) -> np.ndarray:
    """``sigmoid(logit_scale * (cos - median_t cos - margin))`` per column: cos [T, K] -> [T, K] in [0, 1].

    Each column uses only its own values, so it is the same whatever the other columns are:
    0.5 where a frame is ``margin`` (cosine units) above the median of the class over the video.
    """
    elevation = cos - np.median(cos, axis=0)
    return _sigmoid(logit_scale * (elevation - margin))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), overflow-free


def localize(
    features: Any,
    snippet_times: Any,
    text: Any,
    class_names: Sequence[str],
    cfg: LocalizerConfig | None = None,
    *,
    duration: float | None = None,
) -> list[dict]:
    """Localize the classes of ``class_names`` in one video without training.

    Args:
        features: [T, D] frame features (CLIP image embeddings, any norm).
        snippet_times: [T] centre time of each feature, in seconds.
        text: [K, D] class text embeddings, row k for ``class_names[k]``.
        class_names: K names used as labels.
        cfg: LocalizerConfig (defaults when None).
        duration: video length in seconds; segments are clipped to [0, duration].

    Returns:
        ``[{"segment": [start_s, end_s], "label": name, "score": float}, ...]`` sorted by
        score, highest first (ties: earlier start, then class order), at most ``top_k``.
    """
    cfg = cfg or LocalizerConfig()
    return _localize(features, snippet_times, text, class_names, cfg, duration, cfg.nms_threshold, cfg.top_k)


def localizer_proposals(features: Any, snippet_times: Any, text: Any, class_names: Sequence[str],
                        cfg: LocalizerConfig | None = None, *, duration: float | None = None) -> list[dict]:
    """What :func:`localize` returns before its NMS and top-k: every scored run, in the
    same order (score desc, then start, then class). Callers that suppress on their own
    (``psftr_core.infer.filtering``) start from these."""
    return _localize(features, snippet_times, text, class_names, cfg or LocalizerConfig(), duration, None, None)


def _localize(features: Any, snippet_times: Any, text: Any, class_names: Sequence[str], cfg: LocalizerConfig,
              duration: float | None, nms_threshold: float | None, top_k: int | None) -> list[dict]:
    feats = np.asarray(features, dtype=np.float64)
    txt = np.asarray(text, dtype=np.float64)
    times = np.asarray(snippet_times, dtype=np.float64).reshape(-1)
    names = list(class_names)
    check_snippet_inputs("localize", feats, times, txt, names)
    if len(feats) == 0 or len(txt) == 0:
        return []

    curves = class_curves(feats, txt, cfg)
    return curves_to_detections(
        curves, times, names, lambda curve, first, last: outer_inner_contrast(curve, first, last, cfg.contrast_ratio),
        thresholds=cfg.thresholds, min_snippets=cfg.min_snippets, min_score=cfg.min_score,
        nms_threshold=nms_threshold, top_k=top_k, snippet_seconds=cfg.snippet_seconds, duration=duration)


def curves_to_detections(
    curves: np.ndarray,
    snippet_times: np.ndarray,
    class_names: Sequence[str],
    run_score: Callable[[np.ndarray, int, int], float],
    *,
    thresholds: Sequence[float],
    min_snippets: int = 1,
    min_score: float = 0.0,
    nms_threshold: float | None = 0.5,
    top_k: int | None = 100,
    snippet_seconds: float | None = None,
    duration: float | None = None,
) -> list[dict]:
    """Steps 3-5 of the module docstring for any class curves: runs -> scored segments.

    Args:
        curves: [T, K] per-snippet score of each class.
        snippet_times: [T] centre time of each snippet, in seconds.
        class_names: K labels.
        run_score: ``run_score(curve [T], first, last) -> float`` scores the run of
            snippets first..last (inclusive) of one class curve; runs scoring
            <= ``min_score`` are dropped.
        thresholds, min_snippets: multi-threshold grouping (``multi_threshold_runs``).
        nms_threshold, top_k: class-wise NMS, then the ``top_k`` best (None: neither).
        snippet_seconds, duration: run -> seconds conversion (``runs_to_seconds``).

    Returns:
        Detections as :func:`localize` returns them (same order and tie rules).
    """
    seg_list, score_list, label_list = [], [], []
    for k in range(len(class_names)):
        curve = curves[:, k]
        for first, last in multi_threshold_runs(curve, thresholds, min_snippets):
            score = run_score(curve, first, last)
            if score > min_score:
                seg_list.append((first, last))
                score_list.append(score)
                label_list.append(k)
    if not seg_list:
        return []

    segments = runs_to_seconds(seg_list, snippet_times, duration, snippet_seconds)
    scores = np.asarray(score_list)
    labels = np.asarray(label_list)
    # Deterministic order before NMS: score desc, then start, then class index.
    order = np.lexsort((labels, segments[:, 0], -scores))
    segments, scores, labels = segments[order], scores[order], labels[order]
    keep = (nms(segments, scores, labels, nms_threshold, max_keep=top_k) if nms_threshold is not None
            else np.arange(len(scores))[:top_k])
    return [
        {"segment": [float(segments[i, 0]), float(segments[i, 1])], "label": class_names[labels[i]],
         "score": float(scores[i])}
        for i in keep
    ]


def check_snippet_inputs(who: str, feats: np.ndarray, times: np.ndarray, txt: np.ndarray, names: list[str],
                         text_width: int | None = None) -> None:
    """InputError (prefixed ``who``) unless features [T, D], snippet times [T], text
    [K, text_width] (default D) and K class names agree, all finite."""
    if feats.ndim != 2 or txt.ndim != 2:
        raise InputError(f"{who}: features must be [T, D] and text [K, D], got {feats.shape} and {txt.shape}")
    width = feats.shape[1] if text_width is None else text_width
    if txt.shape[1] != width:
        raise InputError(f"{who}: text width {txt.shape[1]} does not match the features' {width}; "
                         "use text from the same CLIP model as the features")
    if len(times) != len(feats):
        raise InputError(f"{who}: {len(feats)} features but {len(times)} snippet times")
    if len(names) != len(txt):
        raise InputError(f"{who}: {len(txt)} text embeddings but {len(names)} class names")
    if not (np.isfinite(feats).all() and np.isfinite(txt).all()):
        raise InputError(f"{who}: features or text embeddings contain NaN or infinite values")
