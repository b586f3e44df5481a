"""The zero-shot evaluation protocol: score a model, a checkpoint or the training-free
localizer on one split, or on every split of a ratio.

A split (ratio ``R``, index ``K``) divides the classes into seen (trained on) and
unseen. Evaluation runs on the split's evaluation videos with the unseen classes as the
vocabulary, and scores the detections against their unseen-class ground truth with
ActivityNet mAP (``psftr_core.evaluation.detection_map``; THUMOS14 thresholds
0.3:0.7:0.1, ActivityNet 0.5:0.95:0.05).

Checkpoints of a run directory: numbers come from ``last.pt`` (the last epoch) unless
best-on-test selection is asked for explicitly (``selection="best"``: ``best.pt``, kept
by ``psftr train --eval-every``), which the result records. Over all splits
(``RUN_DIR/split_K``) the result is the mean and population std per threshold.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from psftr_core.config import apply_overrides, preset_for_dataset
from psftr_core.data.builtins import builtin_dataset
from psftr_core.data.datasets import load_dataset
from psftr_core.device import resolve_device
from psftr_core.errors import InputError
from psftr_core.evaluation.detection_map import THUMOS_TIOUS, EvalResult, evaluate_detections
from psftr_core.infer.localizer import localize
from psftr_core.infer.predict import predict_dataset
from psftr_core.infer.scoring import resolved_weights
from psftr_core.features.text import TextTower
from psftr_core.runtime.checkpoint import build_model, check_feature_spec, feature_spec_of, load_checkpoint
from psftr_core.runtime.clip_source import ClipRequest
from psftr_core.runtime.text_source import class_prompt, class_text_tower
from psftr_core.runtime.inputs import class_text, evaluation_windows

SELECTIONS = ("last", "best")
BEST_HINT = " (best.pt exists only for runs trained with --eval-every)"


# ------------------------------------------------------------------ which splits, which checkpoints


def parse_split_index(split_index: int | str) -> int | None:
    """``--split-index``: an integer, or None for ``"all"``; InputError otherwise."""
    if str(split_index).strip().lower() == "all":
        return None
    try:
        return int(str(split_index))
    except ValueError:
        raise InputError(f"--split-index must be an integer or 'all', got {split_index!r}") from None


def split_indices(dataset: Any, ratio: str, split_index: int | str) -> list[int]:
    """The split indices ``--split-index`` names on ``dataset`` (range-checked)."""
    index = parse_split_index(split_index)
    if index is None:
        return list(range(len(dataset.splits(ratio))))
    dataset.split(ratio, index)  # validates the range
    return [index]


def default_tious(preset_name: str | None) -> tuple[float, ...]:
    """The mAP thresholds of a preset's benchmark: those of the built-in dataset of that
    name (``psftr_core.data.builtins``), else THUMOS14's."""
    kind = builtin_dataset(preset_name)
    return kind.tious if kind is not None else THUMOS_TIOUS


def check_selection(selection: str) -> str:
    if selection not in SELECTIONS:
        raise InputError(f"--select must be last or best, got {selection!r}")
    return selection


def resolve_checkpoint(checkpoint: str | os.PathLike, selection: str = "last") -> Path:
    """The checkpoint file meant by a file or run-directory argument.

    A run directory gives its ``last.pt`` (``best.pt`` with ``selection="best"``); with
    ``"best"``, a ``last.pt`` file gives the ``best.pt`` next to it.
    """
    checkpoint = Path(checkpoint)
    check_selection(selection)
    if checkpoint.is_dir():
        path = checkpoint / f"{selection}.pt"
        if not path.is_file():
            raise InputError(f"run directory {checkpoint} has no {selection}.pt{BEST_HINT if selection == 'best' else ''}")
        return path
    if selection == "best" and checkpoint.name == "last.pt":
        best = checkpoint.with_name("best.pt")
        if not best.is_file():
            raise InputError(f"--select best: {best} does not exist (it is written only with --eval-every)")
        return best
    return checkpoint


def find_split_checkpoints(run_dir: str | os.PathLike, count: int, selection: str = "last") -> list[Path]:
    """``RUN_DIR/split_K/{last,best}.pt`` for K < count; InputError naming what is missing."""
    check_selection(selection)
    root = Path(run_dir)
    if root.is_file():  # RUN_DIR/split_K/last.pt given: use its run directory
        root = root.parent.parent if root.parent.name.startswith("split_") else root.parent
    if not root.is_dir():
        raise InputError(f"run directory {root} does not exist (with --split-index all, --checkpoint is RUN_DIR)")
    paths = [root / f"split_{k}" / f"{selection}.pt" for k in range(count)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} of {count} split checkpoints are missing under {root}, e.g. {missing[0]}"
            f"{BEST_HINT if selection == 'best' else ''}; "
            f"train them with `psftr train ... --split-index all --output {root}`"
        )
    return paths


# ------------------------------------------------------------------ a model on one split


def predict_split(model: Any, cfg: Any, dataset: Any, split: Any, tower: TextTower | None, device: str,
                  text_cache_dir: Any = None, batch_size: int | None = None,
                  prompt: Any = None) -> dict[str, list[dict]]:
    """Detections of ``model`` on the evaluation videos of ``split`` (unseen-class vocabulary).

    ``cfg`` (a ``PSFTRConfig``) gives the windowing, every inference setting
    (``cfg.inference``, e.g. a checkpoint's calibrated choice with ``--set`` overrides),
    the prompt and the default batch size; ``tower`` the text source chosen for the unseen
    classes (``runtime.text_source.class_text_tower``; None: chosen now by the same rule);
    ``prompt`` the run's ``class_prompt`` when the caller has it (None: read from ``cfg.data``).
    The model's train/eval mode is left as it was.
    """
    windows = evaluation_windows(dataset, split, cfg.data)
    text = class_text(dataset, split.unseen, tower, class_prompt(cfg.data, dataset) if prompt is None else prompt,
                      text_cache_dir)
    was_training = model.training
    predictions = predict_dataset(model, windows, text, batch_size=batch_size or cfg.train.batch_size, device=device,
                                  inference=cfg.inference)
    model.train(was_training)
    return predictions


def score_split(dataset: Any, split: Any, predictions: dict, tious: Sequence[float]) -> EvalResult:
    """mAP of ``predictions`` against the unseen-class ground truth of ``split``."""
    return evaluate_detections(dataset.ground_truth(split), predictions, tious=tious, classes=list(split.unseen))


def evaluate_model(model: Any, cfg: Any, dataset: Any, split: Any, tower: TextTower | None, device: str,
                   tious: Sequence[float], text_cache_dir: Any = None, batch_size: int | None = None,
                   prompt: Any = None) -> EvalResult:
    """:func:`predict_split` scored by :func:`score_split`."""
    predictions = predict_split(model, cfg, dataset, split, tower, device, text_cache_dir, batch_size, prompt)
    return score_split(dataset, split, predictions, tious)


# ------------------------------------------------------------------ results


@dataclass
class CheckpointEvaluation:
    """Result of evaluating one checkpoint (or, with ``checkpoint=None``, the
    training-free localizer) on one split."""

    result: EvalResult
    predictions: dict[str, list[dict]]
    checkpoint: Path | None
    split_index: int
    epoch: int | None
    selection: str = "last"
    inference: Any = None  # the InferenceConfig used (checkpoints: its own, with --set overrides)
    weights: tuple[float, float] | None = None  # the (w_r, w_c) it scored with (infer.scoring.resolved_weights)

    @property
    def model(self) -> str:
        return "psftr" if self.checkpoint is not None else "localizer"

    def to_dict(self) -> dict:
        return {**self.result.to_dict(), "model": self.model,
                "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
                "split_index": self.split_index, "epoch": self.epoch, "selection": self.selection}


@dataclass
class SplitAggregate:
    """mAP over the splits of a ratio: mean and standard deviation per threshold.

    ``std`` is the population standard deviation over splits (numpy ``ddof=0``).
    """

    tious: list[float]
    mean: list[float]
    std: list[float]
    average_mean: float
    average_std: float
    per_split: list[CheckpointEvaluation] = field(default_factory=list)
    selection: str = "last"

    def to_dict(self) -> dict:
        return {
            "tious": list(self.tious),
            "mAP_mean": list(self.mean),
            "mAP_std": list(self.std),
            "average_mean": self.average_mean,
            "average_std": self.average_std,
            "num_splits": len(self.per_split),
            "selection": self.selection,
            "std": "population (ddof=0) over splits",
            "splits": [s.to_dict() for s in self.per_split],
        }


def aggregate(evaluations: Sequence[CheckpointEvaluation], selection: str = "last") -> SplitAggregate:
    maps = np.array([e.result.mAP for e in evaluations], dtype=np.float64)
    averages = np.array([e.result.average for e in evaluations], dtype=np.float64)
    return SplitAggregate(
        tious=list(evaluations[0].result.tious),
        mean=maps.mean(axis=0).tolist(),
        std=maps.std(axis=0).tolist(),
        average_mean=float(averages.mean()),
        average_std=float(averages.std()),
        per_split=list(evaluations),
        selection=selection,
    )


# ------------------------------------------------------------------ checkpoints and the localizer


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    dataset: Any,
    ratio: str,
    split_index: int,
    device: str = "auto",
    tious: Sequence[float] | None = None,
    batch_size: int | None = None,
    text_cache_dir: Any = None,
    selection: str = "last",
    overrides: Sequence[str] = (),
    clip: ClipRequest | None = None,
) -> CheckpointEvaluation:
    """Score a checkpoint on split ``ratio/split_index`` of ``dataset`` (a name/dir or a loaded dataset).

    ``tious`` default to the thresholds of the checkpoint's preset. The inference
    settings are the checkpoint's (for a calibrated run, those chosen on held-out seen
    classes, ``psftr_core.train.calibration``); ``overrides``: ``inference.KEY=VALUE``
    settings that replace them (e.g. ``inference.scoring=model`` for the paper's
    scoring); other sections are refused.
    ``selection`` is only recorded in the result. The unseen classes' text follows the
    one rule of ``runtime.text_source``: the dataset's table if it has them all, else
    the text tower the checkpoint was trained with (``text_clip``; else the features'
    CLIP); ``clip`` (the ``--clip-*`` flags) may point at a local copy of its weights,
    and naming another model or other weights is an InputError.
    """
    dataset = _loaded(dataset)
    path = Path(checkpoint)
    ckpt = load_checkpoint(path)
    split = dataset.split(ratio, split_index)
    _refuse_trained_classes(ckpt, split, path)
    check_feature_spec(ckpt, feature_spec_of(dataset), f"dataset {dataset.name}")
    tower = class_text_tower(dataset, split.unseen, clip, ckpt, str(path))
    device = resolve_device(device)
    model, cfg = build_model(ckpt, device)
    cfg = _with_inference_overrides(cfg, overrides)
    predictions = predict_split(model, cfg, dataset, split, tower, device, text_cache_dir, batch_size)
    result = score_split(dataset, split, predictions, tious or default_tious(ckpt.get("preset")))
    return CheckpointEvaluation(result, predictions, path, split_index, int(ckpt["epoch"]), selection, cfg.inference,
                                resolved_weights(cfg.model, cfg.inference))


def evaluate_localizer(
    dataset: Any,
    ratio: str,
    split_index: int,
    tious: Sequence[float] | None = None,
    localizer: Any = None,
    prompt: str | None = None,
    text_cache_dir: Any = None,
    clip: ClipRequest | None = None,
) -> CheckpointEvaluation:
    """Score the training-free localizer on split ``ratio/split_index`` of ``dataset``.

    The same protocol as :func:`evaluate_checkpoint`: evaluation videos of the split,
    vocabulary = its unseen classes, text by the rule of ``runtime.text_source`` (the
    dataset's table, else the features' CLIP, ``clip`` checked against it) on ``prompt``
    (default: the dataset's, as ``psftr detect`` does). ``localizer`` is a
    ``psftr_core.infer.localizer.LocalizerConfig`` (defaults when None). Nothing is trained.
    """
    dataset = _loaded(dataset)
    split = dataset.split(ratio, split_index)
    names = list(split.unseen)
    tower = class_text_tower(dataset, names, clip)
    text = class_text(dataset, names, tower, prompt, text_cache_dir).numpy()
    predictions = {
        video.video_id: localize(dataset.load_features(video.video_id), dataset.snippet_times(video.video_id),
                                 text, names, localizer, duration=video.duration)
        for video in dataset.eval_videos(split)
    }
    result = score_split(dataset, split, predictions, tious or default_tious(preset_for_dataset(dataset.name)))
    return CheckpointEvaluation(result, predictions, None, split_index, None, "last")


def evaluate_all_splits(run_dir: str | os.PathLike, dataset: Any, ratio: str, selection: str = "last",
                        on_split: Callable[[int, int], None] | None = None, **settings: Any) -> SplitAggregate:
    """:func:`evaluate_checkpoint` of ``RUN_DIR/split_K/last.pt`` (or ``best.pt``) on split K, for every K.

    ``settings``: the other keywords of :func:`evaluate_checkpoint` (``device``,
    ``tious``, ``batch_size``, ``text_cache_dir``, ``overrides``, ``clip``). ``on_split(k, count)``
    is called before each split.
    """
    dataset = _loaded(dataset)
    paths = find_split_checkpoints(run_dir, len(dataset.splits(ratio)), selection)
    return _every_split(
        dataset, ratio, lambda k: evaluate_checkpoint(paths[k], dataset, ratio, k, selection=selection, **settings),
        on_split, selection,
    )


def evaluate_localizer_all_splits(dataset: Any, ratio: str, on_split: Callable[[int, int], None] | None = None,
                                  **settings: Any) -> SplitAggregate:
    """:func:`evaluate_localizer` on every split of ``ratio``, aggregated (mean ± std).

    ``settings``: the other keywords of :func:`evaluate_localizer`.
    """
    dataset = _loaded(dataset)
    return _every_split(dataset, ratio, lambda k: evaluate_localizer(dataset, ratio, k, **settings), on_split, "last")


def _every_split(dataset: Any, ratio: str, evaluate_split: Callable[[int], CheckpointEvaluation],
                 on_split: Callable[[int, int], None] | None, selection: str) -> SplitAggregate:
    count = len(dataset.splits(ratio))
    evaluations = []
    for k in range(count):
        if on_split is not None:
            on_split(k, count)
        evaluations.append(evaluate_split(k))
    return aggregate(evaluations, selection)


def _loaded(dataset: Any) -> Any:
    """A loaded dataset from a name/folder, or ``dataset`` itself."""
    return load_dataset(dataset) if isinstance(dataset, (str, os.PathLike)) else dataset


def _refuse_trained_classes(ckpt: dict, split: Any, path: Path) -> None:
    """Refuse evaluations that would score classes the checkpoint was trained on."""
    leaked = sorted(set(ckpt.get("vocabulary", [])) & set(split.unseen))
    if leaked:
        trained = ckpt.get("split", {})
        raise InputError(
            f"checkpoint {path} was trained on class {leaked[0]!r}, which is unseen in split "
            f"{split.ratio}/{split.index} ({len(leaked)} such classes); evaluate it on the split it was trained for "
            f"(--split {trained.get('ratio')} --split-index {trained.get('index')})"
        )


def _with_inference_overrides(cfg: Any, overrides: Sequence[str]) -> Any:
    """``cfg`` with ``inference.*`` overrides applied; InputError for any other section."""
    if not overrides:
        return cfg
    bad = [o for o in overrides if not str(o).startswith("inference.")]
    if bad:
        raise InputError(f"evaluation can only change inference.* settings, not {bad[0]!r}")
    return apply_overrides(cfg, list(overrides))


def evaluate_baseline(*args: Any, **kwargs: Any) -> CheckpointEvaluation:
    """Deprecated name of :func:`evaluate_localizer` (one name for the localizer)."""
    warnings.warn("evaluate_baseline is now evaluate_localizer", DeprecationWarning, stacklevel=2)
    return evaluate_localizer(*args, **kwargs)
