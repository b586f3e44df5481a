"""Choose a run's inference settings on held-out *seen* classes, never on unseen ones.

Which member of the scoring family (``psftr_core.infer.scoring``) works best depends on
how far what the model learns on seen classes transfers to unseen ones, which differs
between datasets. ``psftr train`` therefore first trains a *calibration model* and
measures that on classes it has not seen, all taken from the split's seen classes:

1. Held-out classes (:func:`hold_out`): a third of the seen classes (at least 1, at
   most all but one), drawn with ``train.seed``. Held-out videos: as many as 30 % of the
   split's training videos (at least 1), drawn with the same seed among the training
   videos that hold a held-out-class instance (only those can score them).
2. The calibration model trains like the final one (same config, ``train.calibration_epochs``
   epochs, lr drops scaled to that length) on the other seen classes over the other
   training videos; held-out-class instances there are background, as unseen ones are
   in the real protocol.
3. It runs once over the held-out videos with every seen class as the vocabulary
   (:func:`scoring_vocabulary`: the held-out classes among those the calibration model
   trained on); every window batch's raw outputs are re-scored with each setting of the
   grid (:func:`candidates`: contrast weight × ROI weight × NMS mode) and the
   training-free localizer (``inference.method=localizer``) is scored on the same
   videos. The measure is the ActivityNet mAP averaged over the preset's tIoU
   thresholds, on the held-out classes with ground truth there (detections of the other
   classes are not counted). Why the whole seen vocabulary: scored among the few
   held-out classes alone, the softmax scorings (learned and ROI logits) had a far
   easier classification than among the unseen vocabulary later, and the calibration
   over-rated them; on development data (other generator seeds than the benchmark's,
   ``docs/calibration_rules.md``) the seen vocabulary brought the held-out ranking
   closer to the unseen one.
4. The prior choice (:data:`PRIOR_CHOICE`, CLIP contrast) is kept unless a setting leads
   it by more than its margin: ``train.calibration_prior_margin`` for the model's settings
   (default 1: never), ``train.calibration_localizer_margin`` for the localizer (default
   0.2); among those that do, the best wins (:func:`choose`: settings within
   :data:`TIE_TOLERANCE` of the best count as tied, and the tie goes to the simplest,
   :meth:`Candidate.simplicity`). Margins of 0 give the plain argmax. With
   ``train.calibration_folds`` > 1, steps 1-3 run once per disjoint held-out class fold
   and each setting's mAP is the mean over them (cross-fitting). Why these defaults:
   ``docs/calibration_rules.md`` (development data).
5. Detection threshold (:func:`best_f1_threshold`): the chosen setting's detections
   labelled with a held-out class on the held-out videos are matched to their ground truth at
   tIoU 0.5 (greedily by score, per class, as in the mAP), and the score threshold that
   maximises F1 over all of them is kept for ``psftr detect`` (:func:`psftr_core.runtime.checkpoint.default_score_threshold`).

The final model then trains on all seen classes (its weights do not depend on the
calibration: training is seeded afresh); the chosen settings go into its config's
``inference`` section, and :func:`calibration_record` (the grid, the choice, the
held-out class names and video ids, the threshold, wall time) into every checkpoint
(``calibration``) and ``RUN_DIR/calibration.json``. Calibration reads only the seen
classes' text and annotations. It is skipped, with the reason recorded, when the split
has fewer than two seen classes or no training video holds a held-out class.

Under DistributedDataParallel every rank trains the calibration model (the same batches
as the final training); rank 0 scores the grid and broadcasts the result.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from psftr_core.config import InferenceConfig, PSFTRConfig
from psftr_core.data.windows import WindowDataset, windowing_from_config
from psftr_core.evaluation.detection_map import evaluate_detections, true_positives
from psftr_core.infer.candidates import localizer_candidates
from psftr_core.infer.filtering import FilterSettings, filter_detections
from psftr_core.infer.predict import VideoWindows, dataset_videos, merge_windows, predict_windows_each
from psftr_core.infer.scoring import PostProcess
from psftr_core.model import PSFTR
from psftr_core.train.distributed import DistributedContext
from psftr_core.train.engine import train_epoch
from psftr_core.runtime.inputs import class_text
from psftr_core.runtime.text_source import class_prompt
from psftr_core.train.losses import build_criterion
from psftr_core.train.optimizer import build_optimizer

_log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
RECORD_VERSION = 1
HELD_OUT_CLASS_FRACTION = 1 / 3
HELD_OUT_VIDEO_FRACTION = 0.3
TIE_TOLERANCE = 1e-3  # average mAP (0.1 point): closer than this counts as a tie
THRESHOLD_TIOU = 0.5
THRESHOLD_RULE = ("maximum F1 at tIoU 0.5 of the chosen setting's held-out-class detections on the held-out "
                  "videos (greedy matching by score, per class)")

# The grid: w_c (contrast weight) × w_r (ROI weight, unused at w_c = 1) × NMS mode.
CONTRAST_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
ROI_WEIGHTS = (0.0, 0.5, 1.0)
NMS_CHOICES = ("all", "cross_window")


@dataclass(frozen=True)
class Candidate:
    """One inference setting of the grid: the model scored with weights (``contrast_weight``
    w_c, ``roi_weight`` w_r) and an NMS mode, or the training-free localizer."""

    method: str = "psftr"
    contrast_weight: float = 0.0
    roi_weight: float = 0.0
    nms: str = "all"

    @property
    def name(self) -> str:
        """A short label: the named members of the family, else the weights."""
        if self.method == "localizer":
            return "training-free localizer"
        nms = "" if self.nms == "all" else ", cross-window NMS"
        if self.contrast_weight >= 1:
            return f"CLIP contrast{nms}"
        if self.contrast_weight <= 0:
            if self.roi_weight == 0.5 and self.nms == "cross_window":
                return "paper's inference"
            named = {0.0: "learned logits", 0.5: "paper's logit mix", 1.0: "ROI-CLIP logits (GAP-style)"}
            if self.roi_weight in named:
                return named[self.roi_weight] + nms
        return f"w_c={self.contrast_weight:g}, w_r={self.roi_weight:g}{nms}"

    def simplicity(self) -> tuple:
        """Sort key of the tie-break, simplest first: the model before the localizer, an
        end of w_c (0 or 1) before a mix, then closest to the paper's inference (w_c = 0,
        w_r = 0.5, cross-window NMS)."""
        inside = 0.0 < self.contrast_weight < 1.0
        roi_gap = abs(self.roi_weight - 0.5) if self.contrast_weight < 1 else 0.0
        return (self.method != "psftr", inside, self.contrast_weight, roi_gap, self.nms != "cross_window")

    def settings(self) -> dict[str, Any]:
        """The ``inference.*`` keys this candidate sets. An end of w_c is written as the
        ``scoring`` shorthand (so ``--set inference.scoring=...`` keeps working), a mix
        as ``contrast_weight``."""
        if self.method == "localizer":
            return {"method": "localizer"}
        out: dict[str, Any] = {"method": "psftr", "nms": self.nms, "roi_weight": self.roi_weight}
        if self.contrast_weight in (0.0, 1.0):
            out.update(scoring="contrast" if self.contrast_weight == 1.0 else "model", contrast_weight=None)
        else:
            out["contrast_weight"] = self.contrast_weight
        return out

    def overrides(self) -> list[str]:
        """The same settings as ``--set`` arguments (``psftr evaluate --set ...``)."""
        return [f"inference.{key}={'null' if value is None else value}" for key, value in self.settings().items()]

    def inference(self, base: InferenceConfig) -> InferenceConfig:
        """``base`` with this candidate's settings."""
        return dataclasses.replace(base, **self.settings())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "contrast_weight": self.contrast_weight,
                "roi_weight": self.roi_weight, "nms": self.nms}


def candidates(roi_allowed: bool = True) -> list[Candidate]:
    """Every setting of the grid, then the localizer. ``roi_allowed=False`` (features and
    text of different widths: no ROI-CLIP logits) keeps only w_r = 0 below w_c = 1."""
    found = []
    for nms in NMS_CHOICES:
        for w_c in CONTRAST_WEIGHTS:
            for w_r in ROI_WEIGHTS if w_c < 1 else (0.0,):
                if w_r > 0 and not roi_allowed:
                    continue
                found.append(Candidate("psftr", w_c, w_r, nms))
    found.append(Candidate("localizer"))
    return found


# The prior choice the calibration shrinks toward (train.calibration_prior_margin): CLIP
# contrast, the best fixed scoring in 8 of 12 cells of development data (docs/calibration_rules.md).
PRIOR_CHOICE = Candidate("psftr", 1.0, 0.0, "all")


def choose(scores: dict[Candidate, float], tolerance: float = TIE_TOLERANCE, margin: float = 0.0,
           prior: Candidate = PRIOR_CHOICE, localizer_margin: float | None = None) -> Candidate:
    """The best candidate by average mAP; within ``tolerance`` of it, the simplest.

    Shrinkage toward a prior choice (a noisy held-out lead must be large): when ``prior``
    is scored, only candidates that beat it by more than their margin compete with it,
    ``margin`` for the model's settings and ``localizer_margin`` (default: ``margin``) for
    the training-free localizer. Margins of 0 give the plain argmax."""
    if prior in scores and (margin > 0 or (localizer_margin or 0.0) > 0):
        def needed(c: Candidate) -> float:
            return margin if c.method != "localizer" or localizer_margin is None else localizer_margin

        scores = {c: v for c, v in scores.items() if c == prior or v - scores[prior] > needed(c)}
    best = max(scores.values())
    tied = [c for c, value in scores.items() if value >= best - tolerance]
    return min(tied, key=Candidate.simplicity)


# ------------------------------------------------------------------ held-out classes and videos


@dataclass
class HeldOut:
    """The calibration's split of a zero-shot split's seen classes and training videos."""

    classes: list[str]  # held-out seen classes: the calibration's "unseen" vocabulary
    train_classes: list[str]  # the other seen classes: what the calibration model trains on
    videos: list[Any]  # held-out training videos (``VideoRecord``s) with a held-out-class instance
    train_videos: list[Any]  # the other training videos


def hold_out(seen: Sequence[str], records: Sequence[Any], seed: int,
             fraction: float = HELD_OUT_CLASS_FRACTION, fold: int = 0) -> HeldOut | str:
    """Held-out classes and videos (module docstring, step 1), or why there are none.

    ``records``: the split's training videos (``VideoRecord``s, seen-class annotations);
    ``fraction``: of the seen classes to hold out. ``fold`` k takes the k-th block of
    that many classes of the same permutation (wrapping around), so folds 0, 1, ... are
    disjoint while they fit (cross-fitting). Deterministic in (``seed``, ``fold``, the
    class names, the video ids).
    """
    names = sorted(seen)
    if len(names) < 2:
        return "a split with fewer than two seen classes has none to hold out"
    rng = np.random.default_rng(int(seed))
    count = min(len(names) - 1, max(1, round(len(names) * fraction)))
    order = rng.permutation(len(names))
    held = sorted(names[order[(fold * count + i) % len(names)]] for i in range(count))
    held_set = set(held)
    ordered = sorted(records, key=lambda r: r.video_id)
    holders = [r for r in ordered if any(a.label in held_set for a in r.annotations)]
    if not holders:
        return f"no training video holds an instance of the held-out classes ({', '.join(held)})"
    wanted = min(len(holders), max(1, round(len(ordered) * HELD_OUT_VIDEO_FRACTION)), len(ordered) - 1)
    if wanted < 1:
        return "a split with a single training video has none to hold out"
    chosen = {holders[i].video_id for i in rng.permutation(len(holders))[:wanted]}
    return HeldOut(held, [n for n in names if n not in held_set], [r for r in ordered if r.video_id in chosen],
                   [r for r in ordered if r.video_id not in chosen])


def scoring_vocabulary(held: HeldOut, among_seen: bool = True) -> list[str]:
    """The vocabulary the held-out videos are scored with: every seen class, the
    held-out ones and those the calibration model trained on (module docstring, step 3);
    ``among_seen=False``: the held-out classes alone (how it was before
    ``docs/calibration_rules.md``, which compares the two)."""
    return sorted(held.classes + held.train_classes) if among_seen else list(held.classes)


def only_classes(predictions: dict[str, list[dict]], classes: Sequence[str]) -> dict[str, list[dict]]:
    """``predictions`` without the detections of other classes."""
    wanted = set(classes)
    return {video: [d for d in found if d["label"] in wanted] for video, found in predictions.items()}


def held_out_ground_truth(held: HeldOut) -> dict[str, list[dict]]:
    """Held-out-class ground truth of the held-out videos (``evaluate_detections`` schema)."""
    wanted = set(held.classes)
    return {r.video_id: [{"segment": [a.start, a.end], "label": a.label} for a in r.annotations if a.label in wanted]
            for r in held.videos}


# ------------------------------------------------------------------ the calibration model


def calibration_config(cfg: PSFTRConfig) -> PSFTRConfig:
    """``cfg`` for the calibration model: ``train.calibration_epochs`` epochs (null: the
    run's), with the lr drop epochs scaled to that length."""
    out = dataclasses.replace(cfg)
    epochs = int(cfg.train.calibration_epochs or cfg.train.epochs)
    drops = tuple(max(1, round(e * epochs / cfg.train.epochs)) for e in cfg.train.lr_drop_epochs)
    out.train = dataclasses.replace(cfg.train, epochs=epochs, lr_drop_epochs=drops)
    return out


def train_calibration_model(cfg: PSFTRConfig, windows: WindowDataset, text: torch.Tensor, device: str,
                            dist: DistributedContext, reporter: Any | None = None,
                            seed: Callable[[int], None] | None = None) -> tuple[PSFTR, list[float]]:
    """Train a fresh model on ``windows`` (seen-class targets over ``text`` [K, D] on
    ``device``) the way ``psftr_core.train.run`` trains the final one; returns it (eval
    mode) and its epoch mean losses. ``reporter``: a ``TrainingReporter`` (or None);
    ``seed(n)`` seeds python/numpy/torch before the model is built."""
    tcfg = cfg.train
    if seed is not None:
        seed(tcfg.seed)
    model = PSFTR(cfg.model).to(device)
    optimizer = build_optimizer(model, tcfg)
    scaler = torch.amp.GradScaler("cuda", enabled=str(device).startswith("cuda"))
    criterion = build_criterion(tcfg)
    net = dist.wrap(model, device, find_unused_parameters=not tcfg.aux_loss)
    losses = []
    for epoch in range(tcfg.epochs):
        means = train_epoch(net, criterion, windows, optimizer, scaler, text, device, tcfg, epoch, dist, reporter)
        losses.append(means["loss"])
        if reporter is not None:
            reporter.epoch_trained(means)
            reporter.epoch_end(means)
    return model.eval(), losses


# ------------------------------------------------------------------ scoring the grid


def held_out_videos(dataset: Any, held: HeldOut, data_cfg: Any) -> tuple[list[VideoWindows], int]:
    """The held-out videos with their inference windows, and the padded window length."""
    windows = WindowDataset(dataset, held.videos, held.classes, windowing_from_config(data_cfg), training=False)
    return list(dataset_videos(windows, [r.video_id for r in held.videos])), windows.length


@torch.no_grad()
def grid_predictions(model: Any, model_cfg: Any, inference: InferenceConfig, grid: Sequence[Candidate],
                     videos: Sequence[VideoWindows], text: torch.Tensor, class_names: Sequence[str],
                     input_length: int, batch_size: int, device: str) -> dict[Candidate, dict[str, list[dict]]]:
    """Detections of every candidate on ``videos``: the model runs once per window batch
    and each model candidate re-scores its raw outputs (``PostProcess``); the localizer
    candidate reads the features. Each candidate's detections go through the filter stage
    with its settings (:func:`_candidate_filter`). ``text`` [K, D] embeds ``class_names``."""
    text = torch.as_tensor(text, dtype=torch.float32).to(device)
    posts = {c: PostProcess.from_config(model_cfg, c.inference(inference)) for c in grid if c.method == "psftr"}
    found = predict_windows_each(model, videos, text, posts, input_length, batch_size, device)
    result = {c: {v.video_id: filter_detections(merge_windows(per_video.get(v.video_id, []), class_names),
                                                _candidate_filter(c, inference)) for v in videos}
              for c, per_video in found.items()}
    if any(c.method == "localizer" for c in grid):
        text_np = text.detach().cpu().numpy()
        settings = _candidate_filter(Candidate("localizer"), inference)
        result[Candidate("localizer")] = {
            v.video_id: filter_detections(localizer_candidates(v.features, v.times, v.duration, text_np, class_names),
                                          settings) for v in videos}
    return result


def _candidate_filter(candidate: Candidate, inference: InferenceConfig) -> FilterSettings:
    """Evaluation's filter for ``candidate`` without a score threshold: every detection
    counts in the held-out mAP, and detect's threshold is chosen from them (step 5)."""
    return dataclasses.replace(FilterSettings.from_inference(candidate.inference(inference)), score_threshold=0.0)


def best_f1_threshold(ground_truth: dict[str, list[dict]], predictions: dict[str, list[dict]],
                      tiou: float = THRESHOLD_TIOU) -> tuple[float | None, float]:
    """The score threshold (keep ``score >= threshold``) that maximises F1 at ``tiou``,
    and that F1; ``(None, 0.0)`` when no detection matches.

    Detections are matched as the mAP does (``evaluation.detection_map.true_positives``);
    F1 is computed at every distinct score; the highest of the best thresholds wins.
    """
    if not any(predictions.values()) or not any(ground_truth.values()):
        return None, 0.0
    scores, hits, num_gt = true_positives(ground_truth, predictions, tiou)
    # a class without ground truth here is left out of the mAP, but its detections are false alarms
    labels = {g["label"] for gs in ground_truth.values() for g in gs}
    stray = [float(d["score"]) for ds in predictions.values() for d in ds if d["label"] not in labels]
    scores, hits = np.append(scores, stray), np.append(hits, np.zeros(len(stray), bool))
    order = np.argsort(-scores, kind="stable")
    scores = scores[order]
    tp = np.cumsum(hits[order])
    if not len(tp) or tp[-1] == 0:
        return None, 0.0
    last_of_score = np.append(scores[1:] != scores[:-1], True)  # a threshold keeps every equal score
    kept = np.arange(1, len(scores) + 1)
    f1 = np.where(last_of_score, 2 * tp / (kept + num_gt), -1.0)
    index = int(np.argmax(f1))  # first maximum = highest threshold
    return float(scores[index]), float(f1[index])


def score_grid(predictions: dict[Candidate, dict[str, list[dict]]], ground_truth: dict[str, list[dict]],
               class_names: Sequence[str], tious: Sequence[float]) -> dict[Candidate, Any]:
    """The ``EvalResult`` of every candidate on the held-out classes."""
    return {c: evaluate_detections(ground_truth, preds, tious=tious, classes=list(class_names))
            for c, preds in predictions.items()}


# ------------------------------------------------------------------ the whole step


@dataclass
class CalibrationRun:
    """What calibrating one split needs (the caller's ``SplitRun`` pieces)."""

    dataset: Any
    split: Any
    cfg: PSFTRConfig
    device: str
    tious: Sequence[float]
    text_tower: Any = None
    text_cache_dir: Any = None
    prompt: Any = None  # runtime.text_source.class_prompt of the run (None: read from cfg.data here)


def calibrate(run: CalibrationRun, dist: DistributedContext | None = None, reporter: Any | None = None,
              seed: Callable[[int], None] | None = None, held_out_fraction: float = HELD_OUT_CLASS_FRACTION,
              among_seen: bool = True, folds: Sequence[int] | None = None) -> dict:
    """Calibrate ``run`` (module docstring, steps 1-5); returns :func:`calibration_record`
    (with ``skipped`` = the reason when calibration was not possible). Every rank calls
    it; rank 0 scores, the others receive its record.

    ``folds``: the held-out class folds to measure (:func:`hold_out`), default the first
    ``train.calibration_folds``; each trains its own calibration model, and each
    setting's held-out mAP is the mean over the folds (cross-fitting). A fold that cannot
    hold out is left out. ``held_out_fraction``, ``among_seen`` and ``folds`` are there
    for the comparison in ``benchmarks/calibration_rules.py``."""
    dist = dist or DistributedContext()
    started = time.time()
    cfg = run.cfg
    folds = tuple(range(int(cfg.train.calibration_folds))) if folds is None else tuple(folds)
    if run.prompt is None:
        run = dataclasses.replace(run, prompt=class_prompt(cfg.data, run.dataset))
    measured, reasons = [], []
    for fold in folds:
        found = _measure_fold(run, dist, reporter, seed, held_out_fraction, among_seen, fold)
        (reasons if isinstance(found, str) else measured).append(found)
    if not measured:
        return skipped_record(run, reasons[0])
    record = None
    if dist.is_main:
        results = _mean_over_folds([m.results for m in measured])
        chosen = choose({c: r.average for c, r in results.items()}, margin=float(cfg.train.calibration_prior_margin),
                        localizer_margin=float(cfg.train.calibration_localizer_margin))
        truth, predictions = {}, {}
        for i, m in enumerate(measured):  # a video held out in two folds counts once per fold
            tag = "" if len(measured) == 1 else f"{i}:"
            truth.update({tag + v: g for v, g in m.truth.items()})
            predictions.update({tag + v: d for v, d in only_classes(m.predictions[chosen], m.held.classes).items()})
        threshold, f1 = best_f1_threshold(truth, predictions)
        record = calibration_record(run, measured, results, chosen, threshold, f1, time.time() - started)
        log_record(record)
    return dist.broadcast_object(record)


@dataclass
class FoldMeasure:
    """One held-out fold's calibration model scored (rank 0; None elsewhere)."""

    fold: int
    held: HeldOut
    vocabulary: list[str]
    epochs: int
    losses: list[float]
    results: dict[Candidate, Any] | None
    predictions: dict[Candidate, dict[str, list[dict]]] | None
    truth: dict[str, list[dict]] | None


def _measure_fold(run: CalibrationRun, dist: DistributedContext, reporter: Any | None,
                  seed: Callable[[int], None] | None, held_out_fraction: float, among_seen: bool,
                  fold: int) -> FoldMeasure | str:
    """Train fold ``fold``'s calibration model and score the grid with it, or why it cannot."""
    cfg, split = run.cfg, run.split
    held = hold_out(split.seen, run.dataset.train_videos(split), cfg.train.seed, held_out_fraction, fold)
    if isinstance(held, str):
        return held
    ccfg = calibration_config(cfg)
    windows = WindowDataset(run.dataset, held.train_videos, held.train_classes, windowing_from_config(cfg.data),
                            training=True)
    if len(windows) == 0:
        return "no training window holds an instance of the classes left for the calibration model"
    prompt = run.prompt
    text = class_text(run.dataset, held.train_classes, run.text_tower, prompt, run.text_cache_dir)
    model, losses = train_calibration_model(ccfg, windows, text.to(run.device), run.device, dist, reporter, seed)
    vocabulary = scoring_vocabulary(held, among_seen)
    if not dist.is_main:
        return FoldMeasure(fold, held, vocabulary, ccfg.train.epochs, losses, None, None, None)
    vocabulary_text = class_text(run.dataset, vocabulary, run.text_tower, prompt, run.text_cache_dir)
    videos, length = held_out_videos(run.dataset, held, cfg.data)
    grid = candidates(roi_allowed=cfg.model.feature_dim == cfg.model.text_dim)
    predictions = grid_predictions(model, cfg.model, cfg.inference, grid, videos, vocabulary_text, vocabulary,
                                   length, cfg.train.batch_size, run.device)
    truth = held_out_ground_truth(held)
    return FoldMeasure(fold, held, vocabulary, ccfg.train.epochs, losses,
                       score_grid(predictions, truth, held.classes, run.tious), predictions, truth)


@dataclass
class FoldMean:
    """A grid setting's held-out result averaged over folds (``EvalResult``'s fields used here)."""

    average: float
    mAP: list[float]
    per_class: dict[str, Any]


def _mean_over_folds(results: Sequence[dict[Candidate, Any]]) -> dict[Candidate, Any]:
    """Per candidate: one fold's ``EvalResult`` as it is, several averaged (per-class APs of all folds)."""
    if len(results) == 1:
        return results[0]
    out = {}
    for candidate in results[0]:
        found = [r[candidate] for r in results]
        per_class = {}
        for r in found:
            per_class.update(r.per_class)
        out[candidate] = FoldMean(float(np.mean([r.average for r in found])),
                                  [float(x) for x in np.mean([np.asarray(r.mAP, float) for r in found], axis=0)],
                                  per_class)
    return out


def _grid_rows(results: dict[Candidate, Any]) -> list[dict]:
    return [{**c.to_dict(), "average_map": float(r.average), "mAP": [float(x) for x in r.mAP],
             "per_class": {name: float(np.mean(aps)) for name, aps in r.per_class.items()}}
            for c, r in results.items()]


def calibration_record(run: CalibrationRun, measured: Sequence[FoldMeasure], results: dict[Candidate, Any],
                       chosen: Candidate, threshold: float | None, f1: float, seconds: float) -> dict:
    """The stored calibration (plain types: checkpoints load it with ``weights_only``).

    With one fold its held-out classes, videos and losses; with several, those of every
    fold together at the top and each fold's own (and its grid) under ``folds``; ``grid``
    holds the means over folds that the choice read."""
    first = measured[0]
    videos = list(dict.fromkeys(r.video_id for m in measured for r in m.held.videos))
    record = {
        **record_header(run),
        "skipped": None,
        "held_out_classes": [c for m in measured for c in m.held.classes],
        "train_classes": list(first.held.train_classes),
        "held_out_videos": videos,
        "vocabulary": list(first.vocabulary),
        "train_videos": len(first.held.train_videos),
        "epochs": int(first.epochs),
        "train_losses": [float(x) for x in first.losses],
        "tious": [float(t) for t in run.tious],
        "tie_tolerance": TIE_TOLERANCE,
        "prior_margin": float(run.cfg.train.calibration_prior_margin),
        "localizer_margin": float(run.cfg.train.calibration_localizer_margin),
        "prior": PRIOR_CHOICE.name,
        "grid": _grid_rows(results),
        "chosen": {**chosen.to_dict(), "average_map": float(results[chosen].average)},
        "inference": chosen.settings(),
        "score_threshold": threshold,
        "threshold_f1": float(f1),
        "threshold_rule": THRESHOLD_RULE,
        "seconds": round(float(seconds), 3),
    }
    if len(measured) > 1:
        record["folds"] = [{"fold": m.fold, "held_out_classes": list(m.held.classes),
                            "train_classes": list(m.held.train_classes),
                            "held_out_videos": [r.video_id for r in m.held.videos],
                            "train_videos": len(m.held.train_videos), "train_losses": [float(x) for x in m.losses],
                            "grid": _grid_rows(m.results)} for m in measured]
    return record


def record_header(run: CalibrationRun) -> dict:
    split = run.split
    return {"version": RECORD_VERSION, "dataset": str(run.dataset.name), "ratio": split.ratio,
            "index": int(split.index), "seed": int(run.cfg.train.seed)}


def skipped_record(run: CalibrationRun, reason: str) -> dict:
    _log.warning("calibration skipped: %s; the config's inference settings are kept", reason)
    return {**record_header(run), "skipped": reason, "inference": {}, "score_threshold": None}


def log_record(record: dict) -> None:
    for row in record["grid"]:
        _log.debug("calibration: %-45s average mAP %.4f", row["name"], row["average_map"])
    chosen = record["chosen"]
    _log.info("calibration chose %s (held-out average mAP %.4f on %d held-out classes, %d videos); detect "
                "threshold %s", chosen["name"], chosen["average_map"], len(record["held_out_classes"]),
                len(record["held_out_videos"]), record["score_threshold"])


# ------------------------------------------------------------------ using a calibration


def matches(record: Any, run: CalibrationRun) -> bool:
    """Whether a stored calibration (e.g. ``calibration.json`` of a resumed run) belongs to ``run``."""
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
        return False
    return all(record.get(k) == v for k, v in record_header(run).items())


def calibrated_config(cfg: PSFTRConfig, record: dict | None) -> PSFTRConfig:
    """``cfg`` with the inference settings a calibration chose (unchanged when skipped or None)."""
    if not record or not record.get("inference"):
        return cfg
    out = dataclasses.replace(cfg)
    out.inference = dataclasses.replace(cfg.inference, **record["inference"])
    return out


def grid_rows(record: dict) -> Iterable[tuple[str, float, bool]]:
    """(name, average mAP, chosen) per grid row of a record, best first."""
    chosen = record.get("chosen", {}).get("name")
    for row in sorted(record.get("grid", []), key=lambda r: -r["average_map"]):
        yield row["name"], float(row["average_map"]), row["name"] == chosen
