"""Temporal action detection mAP with the semantics of the official ActivityNet code.

The rules, applied per class and, for every tIoU threshold, independently:

1. Rank the class's predictions by score, highest first.
2. Walk the ranking. A prediction takes the still-unmatched ground-truth instance of
   its (video, class) with the highest tIoU; it is a true positive if that tIoU is at
   least the threshold, otherwise a false positive. Predictions on a video without
   ground truth of the class are false positives.
3. AP is all-point interpolated: precision is made non-increasing from the right and
   summed at each true positive, then divided by the number of ground-truth instances.
4. mAP at a threshold is the plain mean of AP over the classes that have ground truth
   (a class without predictions scores 0). "Avg" is the mean of mAP over thresholds.

Deterministic tie rules (the official code uses an unstable ``argsort`` for both):

- Equal scores keep input order: each class's predictions are ranked by a *stable*
  sort on descending score, where input order is the iteration order of the
  predictions mapping (the video order of the file) and then each video's list order.
- Equal tIoU: among equally overlapping unmatched ground truth, the prediction takes
  the one that comes first in the ground-truth list of its video.

Threshold comparison: a tIoU counts as reaching threshold ``t`` when
``tIoU >= t - 1e-9`` (``TIOU_EPS``). Thresholds are exact decimals and tIoU is a
ratio of float differences, so a pair whose exact tIoU equals the decimal threshold
(e.g. [0, 10] vs [0, 5] at 0.5, or [1.1, 2.1] vs [1.1, 1.4] at 0.3, whose float tIoU
is 0.2999999999999998) must not be lost to a rounding error of ~1e-16; the official
code compares without tolerance and would call the latter a false positive. Segment
times of real data have far fewer than nine significant decimals, so no genuinely
below-threshold pair is let through.

Matching is done per (video, class) group on a numpy tIoU matrix; within a group
the greedy walk over predictions is vectorised over all thresholds at once, and
predictions that reach no threshold against any ground truth are skipped.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from psftr_core.data.builtins.anet import ANET
from psftr_core.data.builtins.thumos14 import THUMOS14
from psftr_core.errors import InputError
from psftr_core.segments import clip_to_video_start, tiou_matrix

_log = logging.getLogger(__name__)

# The standard protocols' tIoU thresholds, defined once by their dataset descriptors.
THUMOS_TIOUS: tuple[float, ...] = THUMOS14.tious
ANET_TIOUS: tuple[float, ...] = ANET.tious

# Tolerance for "tIoU >= threshold" (see the module docstring).
TIOU_EPS = 1e-9

# Ground-truth label that marks regions excluded from evaluation (THUMOS14).
AMBIGUOUS_LABEL = "Ambiguous"


# --------------------------------------------------------------------------- thresholds


def _decimal(text: str, spec: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InputError(f"bad tIoU threshold {text.strip()!r} in {spec!r}: expected a decimal like 0.5") from None
    if not value.is_finite():
        raise InputError(f"bad tIoU threshold {text.strip()!r} in {spec!r}: expected a decimal like 0.5")
    return value


def parse_tious(spec: str) -> tuple[float, ...]:
    """Parse ``"0.3,0.5"`` or ``"0.3:0.7:0.1"`` (start:stop:step, stop included) or a mix.

    The arithmetic is done in ``decimal.Decimal``, so ``0.3:0.7:0.1`` gives exactly
    (0.3, 0.4, 0.5, 0.6, 0.7) and ``0.5:0.95:0.05`` the ten ActivityNet thresholds,
    each the float nearest to its decimal. Thresholds must lie in (0, 1] and be
    distinct. Raises InputError on anything else.
    """
    values: list[Decimal] = []
    for part in spec.split(","):
        if not part.strip():
            raise InputError(f"bad tIoU list {spec!r}: empty item (use e.g. 0.3,0.5 or 0.3:0.7:0.1)")
        pieces = part.split(":")
        if len(pieces) == 1:
            values.append(_decimal(pieces[0], spec))
        elif len(pieces) == 3:
            start, stop, step = (_decimal(p, spec) for p in pieces)
            if step <= 0:
                raise InputError(f"bad tIoU range {part.strip()!r}: the step must be positive")
            if stop < start:
                raise InputError(f"bad tIoU range {part.strip()!r}: stop is below start")
            count = int((stop - start) / step) + 1  # exact in Decimal
            if count > 1000:
                raise InputError(f"bad tIoU range {part.strip()!r}: more than 1000 thresholds")
            values.extend(start + i * step for i in range(count))
        else:
            raise InputError(f"bad tIoU item {part.strip()!r}: use a number (0.5) or start:stop:step (0.3:0.7:0.1)")
    for value in values:
        if not (0 < value <= 1):
            raise InputError(f"tIoU threshold {value} is outside (0, 1]")
    if len(set(values)) != len(values):
        raise InputError(f"tIoU thresholds in {spec!r} repeat a value")
    return tuple(float(v) for v in values)


def _as_thresholds(tious: Iterable[float | str | Decimal] | str) -> np.ndarray:
    if isinstance(tious, str):
        return np.asarray(parse_tious(tious), dtype=np.float64)
    values = []
    for t in tious:
        try:
            value = float(t) if not isinstance(t, str) else float(_decimal(t, t))
        except (TypeError, ValueError):
            raise InputError(f"bad tIoU threshold {t!r}: expected a number") from None
        if not (0 < value <= 1):
            raise InputError(f"tIoU threshold {t} is outside (0, 1]")
        values.append(value)
    if not values:
        raise InputError("no tIoU thresholds given")
    if len(set(values)) != len(values):
        raise InputError("tIoU thresholds repeat a value")
    return np.asarray(values, dtype=np.float64)


# --------------------------------------------------------------------------- results


@dataclass
class EvalResult:
    """mAP per threshold, its average, AP per class and counts of what was scored.

    ``per_class`` maps each evaluated class (those with ground truth; sorted by name,
    or in the order of ``classes`` when given) to its AP per threshold. ``counts`` (all ints):

    - ``predictions``: predictions given;
    - ``evaluated_predictions``: predictions of an evaluated class (ranked and scored);
    - ``ignored_predictions_unknown_label``: label has no ground truth / not in
      ``classes``; left out of the evaluation;
    - ``predictions_on_videos_without_ground_truth``: evaluated predictions on a video
      with no ground truth of any evaluated class (each is a false positive);
    - ``ground_truth_instances`` / ``ground_truth_videos``: evaluated ground truth;
    - ``ground_truth_videos_without_predictions``: of those videos, how many have no
      evaluated prediction;
    - ``ignored_ground_truth_instances``: ground truth of classes not in ``classes``;
    - ``classes``: classes in the mean; ``classes_without_predictions``;
      ``classes_without_ground_truth``: requested classes left out of the mean.
    """

    tious: list[float]
    mAP: list[float]
    average: float
    per_class: dict[str, list[float]]
    counts: dict[str, int]
    ignored_labels: list[str] = field(default_factory=list)
    classes_without_predictions: list[str] = field(default_factory=list)
    classes_without_ground_truth: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The ``--json`` schema: tious, mAP, average, per_class, counts."""
        return {
            "tious": list(self.tious),
            "mAP": list(self.mAP),
            "average": self.average,
            "per_class": {name: list(aps) for name, aps in self.per_class.items()},
            "counts": dict(self.counts),
        }


# --------------------------------------------------------------------------- input checks


def _is_number(value: Any) -> bool:
    """A finite real number (numpy scalars included, bool excluded)."""
    kind = type(value)
    if kind is float or kind is int:  # fast path for what json.load gives
        return math.isfinite(value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _segment(what: str, video: str, index: int, entry: Any) -> tuple[float, float, str]:
    try:
        start, end = entry["segment"]
        label = entry["label"]
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f"{what} for video {video!r}, entry {index}: expected {{\"segment\": [start, end], \"label\": ...}}"
        ) from None
    if not (_is_number(start) and _is_number(end)):
        raise InputError(f"{what} for video {video!r}, entry {index}: segment must be two finite numbers")
    if end < start:
        raise InputError(
            f"{what} for video {video!r}, entry {index}: reversed segment [{start}, {end}] (end must not be before start)"
        )
    if not isinstance(label, str):
        raise InputError(f"{what} for video {video!r}, entry {index}: label must be a string")
    return float(start), float(end), label


def _entries(what: str, data: Any) -> Iterable[tuple[str, list]]:
    if not isinstance(data, Mapping):
        raise InputError(f"{what} must map video ids to lists of segments")
    for video, entries in data.items():
        if not isinstance(entries, (list, tuple)):
            raise InputError(f"{what} for video {video!r}: expected a list of segments")
        yield str(video), entries


# --------------------------------------------------------------------------- matching


def _match_group(tiou: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Greedy matching of one (video, class) group at every threshold.

    tiou: [P, G], rows in rank order. reach: [T] thresholds minus ``TIOU_EPS``.
    Returns tp: [T, P] bool.
    """
    num_t = reach.shape[0]
    num_p, num_g = tiou.shape
    tp = np.zeros((num_t, num_p), dtype=bool)
    if num_g == 1:
        # One instance: at each threshold the first prediction reaching it takes it.
        hits = tiou[None, :, 0] >= reach[:, None]  # [T, P]
        found = hits.any(axis=1)
        tp[np.flatnonzero(found), hits.argmax(axis=1)[found]] = True
        return tp
    # Predictions below the lowest threshold against every instance are FPs everywhere.
    candidates = np.flatnonzero(tiou.max(axis=1) >= reach.min())
    taken = np.zeros((num_t, num_g), dtype=bool)
    rows = np.arange(num_t)
    for p in candidates:
        # Taken instances get -1 so the best free one wins; argmax picks the first
        # (lowest ground-truth index) among equal tIoU.
        free_tiou = np.where(taken, -1.0, tiou[p][None, :])  # [T, G]
        best = free_tiou.argmax(axis=1)
        ok = free_tiou[rows, best] >= reach
        tp[ok, p] = True
        taken[rows[ok], best[ok]] = True
        if taken.all():
            break
    return tp


def _average_precision(tp: np.ndarray, num_gt: int) -> np.ndarray:
    """All-point interpolated AP per threshold. tp: [T, P] bool in rank order -> [T]."""
    if tp.shape[1] == 0:
        return np.zeros(tp.shape[0])
    precision = np.cumsum(tp, axis=1) / np.arange(1, tp.shape[1] + 1)
    # Max precision at this rank or later (precision envelope from the right).
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    return (envelope * tp).sum(axis=1) / num_gt


# --------------------------------------------------------------------------- evaluation


def evaluate_detections(
    ground_truth: Mapping[str, Sequence[Mapping[str, Any]]],
    predictions: Mapping[str, Sequence[Mapping[str, Any]]],
    tious: Iterable[float | str | Decimal] | str = THUMOS_TIOUS,
    classes: Sequence[str] | None = None,
) -> EvalResult:
    """ActivityNet detection mAP of ``predictions`` against ``ground_truth``.

    ground_truth: ``{video_id: [{"segment": [s, e], "label": str}, ...]}``.
    predictions: ``{video_id: [{"segment": [s, e], "label": str, "score": float}, ...]}``.
    tious: thresholds (floats, decimal strings, or a ``parse_tious`` spec string).
    classes: the classes to evaluate (mAP over those of them with ground truth);
    default: every label in the ground truth. Predictions with other labels are
    ignored and counted, ground truth of other labels is ignored and counted.

    Score ties keep input order (stable sort); see the module docstring for this,
    the ground-truth tie rule and the threshold tolerance. Zero-length segments are
    valid (they overlap nothing, as in the official code); reversed segments,
    non-finite numbers or missing fields raise InputError naming the video.
    """
    thresholds = _as_thresholds(tious)
    matches = _match(ground_truth, predictions, thresholds, classes)
    gt, gt_keep, preds, class_names = matches.gt, matches.gt_keep, matches.preds, matches.class_names

    ap = np.zeros((len(class_names), thresholds.shape[0]))
    classes_without_predictions = []
    for k, (name, group) in enumerate(zip(class_names, matches.groups)):
        if group.tp.shape[1] == 0:
            classes_without_predictions.append(name)
            continue
        ap[k] = _average_precision(group.tp, group.num_gt)

    mean_ap = ap.mean(axis=0)
    gt_videos_scored = set(gt.video[gt_keep].tolist())
    counts = {
        "predictions": preds.total,
        "evaluated_predictions": int(preds.score.size),
        "ignored_predictions_unknown_label": preds.total - int(preds.score.size),
        "predictions_on_videos_without_ground_truth": preds.on_videos_without_ground_truth,
        "ground_truth_instances": int(gt_keep.sum()),
        "ground_truth_videos": len(gt_videos_scored),
        "ground_truth_videos_without_predictions": len(gt_videos_scored - set(preds.video.tolist())),
        "ignored_ground_truth_instances": int((~gt_keep).sum()),
        "classes": len(class_names),
        "classes_without_predictions": len(classes_without_predictions),
        "classes_without_ground_truth": len(matches.requested_missing),
    }
    return EvalResult(
        tious=[float(t) for t in thresholds],
        mAP=[float(m) for m in mean_ap],
        average=float(mean_ap.mean()),
        per_class={name: [float(a) for a in ap[k]] for k, name in enumerate(class_names)},
        counts=counts,
        ignored_labels=sorted(preds.ignored_labels),
        classes_without_predictions=classes_without_predictions,
        classes_without_ground_truth=matches.requested_missing,
    )


def true_positives(
    ground_truth: Mapping[str, Sequence[Mapping[str, Any]]],
    predictions: Mapping[str, Sequence[Mapping[str, Any]]],
    tiou: float,
    classes: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The matching of :func:`evaluate_detections` at one threshold, for a detector's
    operating point instead of a ranking: every evaluated prediction's score [P], whether
    it is a true positive [P] bool (both ordered per class by descending score, classes
    one after another), and the number of evaluated ground-truth instances."""
    matches = _match(ground_truth, predictions, _as_thresholds([tiou]), classes)
    scores = [g.scores for g in matches.groups]
    hits = [g.tp[0] for g in matches.groups]
    return (np.concatenate(scores) if scores else np.zeros(0), np.concatenate(hits) if hits else np.zeros(0, bool),
            sum(g.num_gt for g in matches.groups))


@dataclass
class _ClassMatch:
    """One class's predictions in rank order: ``scores`` [P], ``tp`` [T, P] per
    threshold; ``num_gt`` evaluated instances of the class."""

    scores: np.ndarray
    tp: np.ndarray
    num_gt: int


@dataclass
class _Matches:
    gt: _GroundTruth
    gt_keep: np.ndarray
    preds: _Predictions
    class_names: list[str]
    requested_missing: list[str]
    groups: list[_ClassMatch]


def _match(ground_truth: Mapping[str, Sequence[Mapping[str, Any]]],
           predictions: Mapping[str, Sequence[Mapping[str, Any]]], thresholds: np.ndarray,
           classes: Sequence[str] | None) -> _Matches:
    """Flatten, choose the classes, and match every class's predictions at ``thresholds``."""
    gt = _flatten_ground_truth(ground_truth)
    class_names, requested_missing = _classes_to_score(gt.labels, classes)
    class_index = {name: k for k, name in enumerate(class_names)}
    gt_class, gt_keep = gt.class_ids(class_index)
    preds = _flatten_predictions(predictions, gt.video_index, class_index, set(gt.video[gt_keep].tolist()))
    groups = []
    for k in range(len(class_names)):
        gt_sel = np.flatnonzero(gt_keep & (gt_class == k))
        pr_sel = np.flatnonzero(preds.cls == k)
        ranked, tp = _class_true_positives(gt.video[gt_sel], gt.bounds[gt_sel], preds.video[pr_sel],
                                           preds.bounds[pr_sel], preds.score[pr_sel], thresholds - TIOU_EPS)
        groups.append(_ClassMatch(preds.score[pr_sel][ranked], tp, int(gt_sel.size)))
    return _Matches(gt, gt_keep, preds, class_names, requested_missing, groups)


@dataclass
class _GroundTruth:
    """Every ground-truth instance, flattened: ``video`` [G] (index into ``video_index``),
    ``labels`` (G names), ``bounds`` [G, 2] seconds."""

    video_index: dict[str, int]
    video: np.ndarray
    labels: list[str]
    bounds: np.ndarray

    def class_ids(self, class_index: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """[G] class index per instance (-1: not evaluated) and the [G] mask of evaluated ones."""
        ids = np.array([class_index.get(label, -1) for label in self.labels], dtype=np.int64)
        return ids, ids >= 0


def _flatten_ground_truth(ground_truth: Mapping[str, Sequence[Mapping[str, Any]]]) -> _GroundTruth:
    video_index: dict[str, int] = {}
    videos: list[int] = []
    labels: list[str] = []
    bounds: list[tuple[float, float]] = []
    for video, entries in _entries("ground truth", ground_truth):
        vi = video_index.setdefault(video, len(video_index))
        for i, entry in enumerate(entries):
            start, end, label = _segment("ground truth", video, i, entry)
            videos.append(vi)
            labels.append(label)
            bounds.append((start, end))
    return _GroundTruth(video_index, np.array(videos, dtype=np.int64), labels,
                        np.array(bounds, dtype=np.float64).reshape(-1, 2))


def _classes_to_score(gt_labels: Sequence[str], classes: Sequence[str] | str | None) -> tuple[list[str], list[str]]:
    """(classes scored: requested ones with ground truth, or every ground-truth label
    sorted; requested classes without ground truth)."""
    present = set(gt_labels)
    if isinstance(classes, str):
        classes = [classes]
    if classes is None:
        names, missing = sorted(present), []
    else:
        names = [c for c in dict.fromkeys(classes) if c in present]
        missing = [c for c in dict.fromkeys(classes) if c not in present]
    if not names:
        raise InputError("the ground truth has no instances of the evaluated classes; nothing to score")
    return names, missing


@dataclass
class _Predictions:
    """The scored predictions, flattened in input order (the order the score-tie rule
    refers to): ``video`` [P] (-1: a video without ground truth), ``cls`` [P],
    ``bounds`` [P, 2], ``score`` [P]; with what was counted on the way."""

    video: np.ndarray
    cls: np.ndarray
    bounds: np.ndarray
    score: np.ndarray
    total: int
    ignored_labels: set[str]
    on_videos_without_ground_truth: int


def _flatten_predictions(predictions: Mapping[str, Sequence[Mapping[str, Any]]], video_index: Mapping[str, int],
                         class_index: Mapping[str, int], gt_videos: set[int]) -> _Predictions:
    videos: list[int] = []
    classes: list[int] = []
    bounds: list[tuple[float, float]] = []
    scores: list[float] = []
    total = 0
    ignored_labels: set[str] = set()
    elsewhere = 0
    for video, entries in _entries("predictions", predictions):
        vi = video_index.get(video, -1)
        for i, entry in enumerate(entries):
            total += 1
            start, end, label = _segment("predictions", video, i, entry)
            try:
                score = entry["score"]
            except (KeyError, TypeError, IndexError):
                score = None
            if not _is_number(score):
                raise InputError(f"predictions for video {video!r}, entry {i}: score must be a finite number")
            k = class_index.get(label)
            if k is None:
                ignored_labels.add(label)
                continue
            if vi not in gt_videos:
                elsewhere += 1
            videos.append(vi)
            classes.append(k)
            bounds.append((start, end))
            scores.append(float(score))
    return _Predictions(np.array(videos, dtype=np.int64), np.array(classes, dtype=np.int64),
                        np.array(bounds, dtype=np.float64).reshape(-1, 2), np.array(scores, dtype=np.float64),
                        total, ignored_labels, elsewhere)


def _class_true_positives(gt_video: np.ndarray, gt_bounds: np.ndarray, pr_video: np.ndarray, pr_bounds: np.ndarray,
                          pr_score: np.ndarray, reach: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rank order of one class's P predictions ([P] indices into them) and their
    [num_thresholds, P] TP flags in that order.

    Ranking is a stable sort on descending score (input order among ties); matching is
    per video, the ground truth in list order (``_match_group``).
    """
    ranked = np.argsort(-pr_score, kind="stable")
    ranked_video = pr_video[ranked]
    tp = np.zeros((reach.shape[0], ranked.size), dtype=bool)
    by_video = np.argsort(ranked_video, kind="stable")  # rank order kept inside a video
    sorted_video = ranked_video[by_video]
    for video in np.unique(gt_video):
        lo, hi = np.searchsorted(sorted_video, [video, video + 1])
        if lo == hi:
            continue
        positions = by_video[lo:hi]  # rank positions of this video's predictions
        tiou = tiou_matrix(pr_bounds[ranked[positions]], gt_bounds[gt_video == video])
        tp[:, positions] = _match_group(tiou, reach)
    return ranked, tp


# --------------------------------------------------------------------------- files


def load_ground_truth(path: str | os.PathLike, subset: str | None = None) -> dict[str, list[dict]]:
    """Read ground truth for ``evaluate_detections`` from an annotation JSON file.

    Accepts the ActivityNet / THUMOS14 layout ``{"database": {video_id: {"subset": str,
    "annotations": [{"segment": [s, e], "label": str}]}}}`` (only videos of ``subset``
    when given) or a plain ``{video_id: [{"segment", "label"}]}`` mapping (no subsets).
    Instances labelled ``Ambiguous`` are dropped, and so are those that end before 0 s
    (one warning with the count; a start before 0 s is clipped to 0, the rule of
    :func:`~psftr_core.segments.clip_to_video_start`); videos left without instances stay
    (predictions on them are false positives). Raises InputError on a bad file.
    """
    from psftr_core.io.json_file import read_json_file

    data = read_json_file(path, "ground-truth")
    if isinstance(data, dict) and "database" in data:
        database = data["database"]
        if not isinstance(database, dict):
            raise InputError(f"ground-truth file {path}: \"database\" must map video ids to video records")
        records: dict[str, Any] = {}
        subsets: set[str] = set()
        for video, record in database.items():
            if not isinstance(record, dict) or not isinstance(record.get("annotations", []), list):
                raise InputError(
                    f"ground-truth file {path}: video {video!r} must be an object with an \"annotations\" list"
                )
            subsets.add(str(record.get("subset")))
            if subset is None or record.get("subset") == subset:
                records[video] = record.get("annotations", [])
        if subset is not None and not records:
            raise InputError(
                f"ground-truth file {path} has no videos in subset {subset!r} "
                f"(subsets present: {', '.join(sorted(subsets))})"
            )
    elif isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        if subset is not None:
            raise InputError(
                f"ground-truth file {path} has no subset information; leave out --subset"
            )
        records = data
    else:
        raise InputError(
            f"ground-truth file {path} is not an annotation file "
            '(expected {"database": {video_id: {"subset", "annotations"}}})'
        )

    ground_truth: dict[str, list[dict]] = {}
    before_zero = 0
    for video, entries in records.items():
        kept = []
        for i, entry in enumerate(entries):
            try:
                start, end, label = _segment("ground truth", video, i, entry)
            except InputError as err:
                raise InputError(f"ground-truth file {path}: {err}") from None
            if label == AMBIGUOUS_LABEL:
                continue
            in_video = clip_to_video_start(start, end)
            if in_video is None:
                before_zero += 1
                continue
            kept.append({"segment": list(in_video), "label": label})
        ground_truth[video] = kept
    if before_zero:
        _log.warning(f"ground-truth file {path}: dropped {before_zero} instance{'s' if before_zero != 1 else ''} "
                    "ending before 0 s")
    if not any(ground_truth.values()):
        raise InputError(f"ground-truth file {path} has no annotated instances" + (
            f" in subset {subset!r}" if subset is not None else ""))
    return ground_truth
