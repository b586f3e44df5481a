"""``psftr train`` as a library call: train PSFTR on the seen classes of zero-shot splits.

:func:`train` trains one split into ``RUN_DIR`` or every split into ``RUN_DIR/split_K``
(layout: ``psftr_core.train.run_dir``). :func:`train_split` is the recipe for one split:
maybe resume → calibrate → data → model, loss, optimiser → for each epoch: train one
epoch (``psftr_core.train.engine``), evaluate if due, save ``last.pt``.

- Calibration (on unless ``TrainRequest.calibrate`` is False, ``psftr train
  --no-calibrate``): before the final model, a calibration model trained on part of the
  seen classes and videos chooses the inference settings on the held-out rest
  (``psftr_core.train.calibration``); the choice goes into the final checkpoints'
  config (``inference``) and their ``calibration`` record, and into
  ``RUN_DIR/calibration.json``. It does not change the final model's weights. A run
  resumed from ``last.pt`` keeps the calibration it had (or its absence); one resumed
  before its first checkpoint reuses ``calibration.json``.

- Config (:func:`resolve_config`): preset (by dataset) → ``--config`` YAML → ``--set``
  overrides → ``--epochs``/``--seed``/``--batch-size``; the input widths follow the data.
- Reproducibility: python/numpy/torch are seeded from ``train.seed``; the model is
  initialised right after seeding; the window order of an epoch depends on (seed,
  epoch) only. Same seed → same losses on CPU. Each checkpoint stores the optimiser,
  AMP scaler and RNG states at the end of its epoch, so ``resume=True`` continues with
  exactly the losses of an uninterrupted run.
- Mixed precision (float16 autocast + GradScaler) on CUDA; float32 on CPU.
- DistributedDataParallel when started by ``torchrun`` (``WORLD_SIZE`` > 1); how batches
  are dealt to the ranks is in ``psftr_core.train.engine``. Only rank 0 writes files and
  reports progress.
- Class text: the one rule of ``psftr_core.runtime.text_source``, decided per split on
  its seen classes (the dataset's ``text_embeddings`` table if it has them all, else the
  features' CLIP text tower, the ``clip_*`` flags checked against it), loaded and
  checked before anything is written, and used for all of the split's training and
  calibration; checkpoints record it (``text_clip``). Evaluations during training decide
  on the unseen classes by the same rule, as ``psftr evaluate`` does.
- Progress: ``on_progress(TrainEvent)`` if given, and ``RUN_DIR/metrics.jsonl``
  (``psftr_core.train.progress``).
- Periodic evaluation (``eval_every``) scores the split's test videos and keeps
  ``best.pt``: selection on the test set, so report last-epoch numbers unless asked.
- Ctrl-C: checkpoints are written atomically after complete epochs, so an interrupted
  run keeps the last complete ``last.pt``; ``resume=True`` continues from it, with the
  run's own settings: a request whose settings differ is refused naming each key
  (:func:`check_resumed_settings`); only ``epochs`` may change (said in a warning), and
  whether it calibrates must match.
- One run per run directory: :func:`train` holds ``RUN_DIR/.train.lock`` (rank 0 only)
  from before its first write to its end; a second run into it is refused at once.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from psftr_core.config import (PSFTRConfig, apply_overrides, config_from_dict, config_to_dict, load_config, preset,
                               SMALL_DATASET_VIDEOS, SMALL_PRESET, preset_for_dataset, validate_config)
from psftr_core.data.datasets import load_dataset
from psftr_core.data.splits import check_ratio
from psftr_core.device import resolve_device
from psftr_core.errors import InputError
from psftr_core.evaluation.protocol import default_tious, evaluate_model, parse_split_index, split_indices
from psftr_core.model import PSFTR
from psftr_core.features.text import TextTower
from psftr_core.io.atomic import write_json
from psftr_core.io.json_file import read_json_file
from psftr_core.train.calibration import (CALIBRATION_FILE, CalibrationRun, calibrate, calibrated_config,
                                          calibration_config, matches)
from psftr_core.runtime.checkpoint import (capture_rng_state, check_feature_spec, feature_spec_of, load_checkpoint,
                                         make_checkpoint, restore_rng_state, save_checkpoint)
from psftr_core.features.clip import same_clip_model
from psftr_core.runtime.clip_source import ClipRequest, checkpoint_text_tower
from psftr_core.runtime.text_source import class_prompt, class_text_tower
from psftr_core.train.distributed import DistributedContext
from psftr_core.train.engine import train_epoch
from psftr_core.runtime.inputs import class_text, training_windows
from psftr_core.train.losses import build_criterion
from psftr_core.train.metrics_log import MetricsLog
from psftr_core.train.optimizer import build_optimizer
from psftr_core.train.progress import TrainProgressCallback, TrainingReporter
from psftr_core.train.run_dir import (check_fresh_run, check_resume_settings, check_run_dir_free, recorded_preset,
                                     run_dir_lock, split_run_dirs, stored_config, write_run_info)

_log = logging.getLogger(__name__)


@dataclass
class TrainRequest:
    """What ``psftr train`` was asked to do (CLI flags, or library use).

    split_index: an int or ``"all"``. epochs/seed/batch_size: override ``train.epochs``
    / ``seed`` / ``batch_size``. eval_every: evaluate on the split's test videos every N
    epochs (0 = never) and keep ``best.pt`` by average mAP (this is selection on the test
    set: report last-epoch numbers unless you ask for it). log_every: iterations between
    ``metrics.jsonl`` lines (0 = per epoch only). clip_model / clip_pretrained /
    clip_config: the CLIP whose text tower encodes the class names (default: the one
    that made the features; ``psftr_core.runtime.clip_source``). calibrate: choose the
    inference settings on held-out seen classes first (``psftr_core.train.calibration``).
    """

    dataset: str
    ratio: str
    split_index: int | str
    output: str | os.PathLike
    epochs: int | None = None
    device: str = "auto"
    seed: int | None = None
    preset: str | None = None
    config_file: str | os.PathLike | None = None
    overrides: Sequence[str] = ()
    resume: bool = False
    data_root: str | os.PathLike | None = None
    eval_every: int = 0
    log_every: int = 10
    batch_size: int | None = None
    text_cache_dir: str | os.PathLike | None = None
    clip_model: str | None = None
    clip_pretrained: str | None = None
    clip_config: str | os.PathLike | None = None
    calibrate: bool = True

    @property
    def clip(self) -> ClipRequest:
        """The CLIP flags (the features' CLIP when not given, ``psftr_core.runtime.clip_source``)."""
        return ClipRequest(self.clip_model, self.clip_pretrained, self.clip_config)


@dataclass
class SplitTrainResult:
    split_index: int
    run_dir: Path
    checkpoint: Path
    epochs_done: int
    epoch_losses: list[float]
    seconds: float
    skipped: bool = False


# ------------------------------------------------------------------ set-up


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def training_video_count(dataset: Any) -> int | None:
    """Videos of the dataset's training subset (any label), None when it does not say."""
    subset = getattr(dataset, "train_subset", None)
    videos = getattr(dataset, "videos", None)
    if subset is None or not isinstance(videos, dict):
        return None
    return sum(1 for video in videos.values() if video.subset == subset)


def resolve_config(
    dataset: Any,
    preset_name: str | None,
    config_file: str | os.PathLike | None,
    overrides: Sequence[str],
    epochs: int | None,
    seed: int | None,
    batch_size: int | None = None,
) -> tuple[PSFTRConfig, str]:
    """The run's ``PSFTRConfig`` and the preset it starts from.

    Order: preset (default by dataset) → ``--config`` YAML → ``--set`` overrides →
    ``--epochs``/``--seed``/``--batch-size``. The feature and text widths are taken from
    the dataset.
    """
    count = training_video_count(dataset)
    name = preset_name or preset_for_dataset(dataset.name, count)
    if preset_name is None and name == SMALL_PRESET and config_file is None:
        _log.warning("preset small for a dataset of %d training videos (fewer than %d): a smaller, quicker model; "
                     "--preset thumos14 trains the paper's", count, SMALL_DATASET_VIDEOS)
    cfg = preset(name)
    if config_file is not None:
        cfg = load_config(config_file, base=cfg)
    dim = int(dataset.feature_dim)
    text_dim = dim
    if getattr(dataset, "text_embeddings", None):
        text_dim = int(np.asarray(next(iter(dataset.text_embeddings.values()))).reshape(-1).shape[0])
    cfg.model = dataclasses.replace(cfg.model, feature_dim=dim, text_dim=text_dim)
    cfg = apply_overrides(cfg, list(overrides))
    if cfg.model.feature_dim != dim:
        raise InputError(
            f"model.feature_dim={cfg.model.feature_dim} but dataset {dataset.name} has {dim}-d features; "
            "leave model.feature_dim unset (it follows the features)"
        )
    if epochs is not None:
        if epochs < 1:
            raise InputError(f"--epochs must be >= 1, got {epochs}")
        cfg.train = dataclasses.replace(cfg.train, epochs=int(epochs))
    if seed is not None:
        cfg.train = dataclasses.replace(cfg.train, seed=int(seed))
    if batch_size is not None:
        cfg.train = dataclasses.replace(cfg.train, batch_size=int(batch_size))
    return validate_config(cfg), name


@dataclass
class SplitRun:
    """What stays fixed while one split trains."""

    dataset: Any
    split: Any  # psftr_core.data.splits.Split
    cfg: PSFTRConfig
    preset_name: str
    feature_spec: dict
    run_dir: Path
    device: str
    text_tower: TextTower | None = None  # the seen classes' text source; None: the dataset's text_embeddings table
    eval_text_tower: TextTower | None = None  # the unseen classes' (eval_every); None: the table
    calibration: dict | None = None  # the calibration record (psftr_core.train.calibration)
    prompt: Any = None  # what the class names are encoded with (runtime.text_source.class_prompt), read once

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"


@dataclass
class TrainingState:
    """What changes while a split trains; a checkpoint's ``train_state`` restores it."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    epochs_done: int = 0
    best_score: float = -math.inf
    epoch_losses: list[float] = field(default_factory=list)

    def restore(self, ckpt: dict) -> None:
        """Weights, optimiser, scaler and RNG states as they were at the end of ``ckpt``'s epoch."""
        self.model.load_state_dict(ckpt["model_state"])
        state = ckpt["train_state"]
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        self.epochs_done = int(ckpt["epoch"])
        self.best_score = float(state.get("best_score", -math.inf))
        self.epoch_losses = list(state.get("epoch_losses", []))

    def train_state(self, seed: int) -> dict:
        """A checkpoint's ``train_state`` (what resuming needs)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "rng": capture_rng_state(),
            "seed": seed,
            "best_score": self.best_score,
            "epoch_losses": list(self.epoch_losses),
        }


def build_training_state(cfg: PSFTRConfig, device: str) -> TrainingState:
    """A freshly initialised model (the caller seeds first), its optimiser and AMP scaler."""
    model = PSFTR(cfg.model).to(device)
    optimizer = build_optimizer(model, cfg.train)
    scaler = torch.amp.GradScaler("cuda", enabled=str(device).startswith("cuda"))
    return TrainingState(model, optimizer, scaler)


def load_resume_checkpoint(run: SplitRun, resume: bool, calibrate: bool | None = None) -> dict | None:
    """``last.pt`` of ``run`` when resuming from it (checked against the run and, unless
    ``calibrate`` is None, against whether this request calibrates), else None."""
    path = run.last_path
    if not resume or not path.exists():
        return None
    ckpt = load_checkpoint(path)
    if "train_state" not in ckpt:
        raise InputError(f"{path} has no training state to resume from")
    trained = ckpt["split"]
    ratio, index = run.split.ratio, run.split.index
    if trained.get("ratio") != ratio or int(trained.get("index", -1)) != index:
        raise InputError(
            f"{path} was trained on split {trained.get('ratio')}/{trained.get('index')}, not {ratio}/{index}; "
            "resume with the same --split and --split-index"
        )
    if str(trained.get("dataset")) != str(run.dataset.name):
        raise InputError(f"{path} was trained on dataset {trained.get('dataset')!r}, not {run.dataset.name!r}")
    check_feature_spec(ckpt, run.feature_spec, f"dataset {run.dataset.name}")
    check_same_calibration_choice(ckpt, calibrate, path)
    trained_tower = checkpoint_text_tower(ckpt, where=str(path))
    if "text_clip" in ckpt and not same_text_tower(trained_tower, run.text_tower):  # older files lack the record
        raise InputError(
            f"{path} was trained with class text from {_text_words(trained_tower)}, but this run would use "
            f"{_text_words(run.text_tower)}; resume with the same --clip-* flags and dataset files"
        )
    return ckpt


def check_same_calibration_choice(ckpt: dict, calibrate: bool | None, path: Path) -> None:
    """A resumed run keeps its calibration (or its absence): refuse a request that asks otherwise."""
    if calibrate is None or "calibration" not in ckpt:  # older files lack the record
        return
    calibrated = ckpt["calibration"] is not None
    if calibrated != calibrate:
        had, asked = ("--calibrate", "--no-calibrate") if calibrated else ("--no-calibrate", "--calibrate")
        raise InputError(f"--resume: {path} was trained with {had}, this command gives {asked}; "
                         f"resume with {had}, or train a new run into another --output")


def check_resumed_settings(root: Path, run_dirs: dict[int, Path], cfg: PSFTRConfig, request: TrainRequest) -> None:
    """Refuse ``--resume`` with settings other than the run's (exit 2, naming each key and its
    two values): a resumed run continues with its own config, so they would be ignored.

    The run's settings are ``RUN_DIR/config.yaml`` (as resolved, before calibration), else
    (a run without it) its first ``last.pt``'s config less the calibrated inference keys.
    ``train.epochs`` may differ when ``--epochs`` (``request.epochs``) sets it.
    """
    epochs_given = {"train.epochs"} if request.epochs is not None else set()
    stored = stored_config(root)
    if stored is not None:
        check_resume_settings(cfg, stored, root / "config.yaml", epochs_given)
        return
    for run_dir in run_dirs.values():
        path = run_dir / "last.pt"
        if path.is_file():
            ckpt = load_checkpoint(path)
            record = ckpt.get("calibration")
            calibrated = (record.get("inference") or {}) if isinstance(record, dict) else {}
            skip = {"train.epochs", *(f"inference.{key}" for key in calibrated)}
            check_resume_settings(cfg, config_to_dict(config_from_dict(ckpt["config"])), path, skip)
            return


def same_text_tower(a: TextTower | None, b: TextTower | None) -> bool:
    """Whether two text towers (None: a text_embeddings table) encode class names alike."""
    if a is None or b is None:
        return a is b
    return (same_clip_model(a.model_name, b.model_name) and a.weights_id == b.weights_id
            and a.config == b.config)


def _text_words(tower: TextTower | None) -> str:
    return "the dataset's text_embeddings" if tower is None else tower.describe()


def resumed_run(run: SplitRun, ckpt: dict, epochs: int | None) -> SplitRun:
    """The run continues with its own config and preset; only the epoch count may change (said)."""
    cfg = config_from_dict(ckpt["config"])
    if epochs is not None and int(epochs) != cfg.train.epochs:
        _log.warning("resuming %s with %d epochs instead of its %d (--epochs)", run.last_path, int(epochs),
                     cfg.train.epochs)
        cfg.train = dataclasses.replace(cfg.train, epochs=int(epochs))
    return dataclasses.replace(run, cfg=cfg, preset_name=ckpt.get("preset", run.preset_name),
                               calibration=ckpt.get("calibration"))


def calibrated_run(run: SplitRun, request: TrainRequest, dist: DistributedContext,
                   on_progress: TrainProgressCallback | None) -> SplitRun:
    """``run`` with the inference settings chosen on held-out seen classes: computed now,
    or read back from ``RUN_DIR/calibration.json`` when resuming a run interrupted before
    its first checkpoint. Rank 0 writes ``calibration.json`` and reports the record."""
    path = run.run_dir / CALIBRATION_FILE
    calibration_run = CalibrationRun(run.dataset, run.split, run.cfg, run.device, default_tious(run.preset_name),
                                     run.text_tower, request.text_cache_dir, run.prompt)
    quiet_log = MetricsLog(run.run_dir / "metrics.jsonl", enabled=False)  # calibration epochs are not logged there
    reporter = TrainingReporter(quiet_log, on_progress if dist.is_main else None, 0, run.split.index,
                                calibration_config(run.cfg).train.epochs, stage="calibration")
    record = read_json_file(path, "calibration") if request.resume and path.is_file() else None
    reused = matches(record, calibration_run)
    if not reused:
        record = calibrate(calibration_run, dist, reporter, seed_everything)
        if dist.is_main:
            run.run_dir.mkdir(parents=True, exist_ok=True)
            write_json(path, record)
    reporter.calibrated(record, reused=reused)
    return dataclasses.replace(run, cfg=calibrated_config(run.cfg, record), calibration=record)


# ------------------------------------------------------------------ per epoch


def evaluation_due(eval_every: int, epoch: int, epochs: int) -> bool:
    """Evaluate after (0-based) ``epoch``: every ``eval_every`` epochs and after the last."""
    return bool(eval_every) and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs)


def evaluate_for_best(run: SplitRun, state: TrainingState, reporter: TrainingReporter,
                      text_cache_dir: Any) -> tuple[dict, bool]:
    """Score the model on the split's test videos; (the result as a dict, whether it is the best so far)."""
    result = evaluate_model(state.model, run.cfg, run.dataset, run.split, run.eval_text_tower, run.device,
                            default_tious(run.preset_name), text_cache_dir, prompt=run.prompt)
    reporter.evaluation(result)
    is_best = result.average > state.best_score
    if is_best:
        state.best_score = result.average
    return result.to_dict(), is_best


def save_epoch(run: SplitRun, state: TrainingState, epoch_metrics: dict, is_best: bool) -> None:
    """``last.pt`` (and ``best.pt`` when ``is_best``) after ``state.epochs_done`` epochs."""
    split = run.split
    ckpt = make_checkpoint(
        model=state.model,
        config=config_to_dict(run.cfg),
        preset=run.preset_name,
        feature_spec=run.feature_spec,
        vocabulary=list(split.seen),
        split={"dataset": run.dataset.name, "ratio": split.ratio, "index": split.index,
               "seen": list(split.seen), "unseen": list(split.unseen)},
        epoch=state.epochs_done,
        epochs_total=run.cfg.train.epochs,
        metrics=epoch_metrics,
        train_state=state.train_state(int(run.cfg.train.seed)),
        text_clip=run.text_tower.to_dict() if run.text_tower is not None else None,
        calibration=run.calibration,
    )
    save_checkpoint(run.last_path, ckpt)
    if is_best:
        save_checkpoint(run.best_path, ckpt)


# ------------------------------------------------------------------ training


def train(request: TrainRequest, on_progress: TrainProgressCallback | None = None) -> list[SplitTrainResult]:
    """Run ``psftr train``: one split, or every split into ``RUN_DIR/split_K``."""
    root = Path(request.output)
    dist = DistributedContext()
    if dist.is_main:  # another run in RUN_DIR: refuse before any work
        check_run_dir_free(root)
    check_ratio(request.ratio)
    dataset = load_dataset(request.dataset, data_root=request.data_root)
    indices = split_indices(dataset, request.ratio, request.split_index)
    # --resume without --preset: the run's own (the size rule could pick another after videos were added)
    asked_preset = request.preset or (recorded_preset(root) if request.resume else None)
    cfg, preset_name = resolve_config(dataset, asked_preset, request.config_file, request.overrides,
                                      request.epochs, request.seed, request.batch_size)
    # Choose each split's class text now (seen classes; with eval_every the unseen ones too):
    # missing or wrong weights fail before RUN_DIR is touched.
    splits = {index: dataset.split(request.ratio, index) for index in indices}
    towers = {index: (class_text_tower(dataset, split.seen, request.clip),
                      class_text_tower(dataset, split.unseen, request.clip) if request.eval_every else None)
              for index, split in splits.items()}
    prompt = class_prompt(cfg.data, dataset)  # a descriptions file that cannot be read: refused before RUN_DIR
    every_split = parse_split_index(request.split_index) is None
    run_dirs = split_run_dirs(root, indices, every_split)
    # The one lock on the root covers every split_K; only rank 0 writes, so only it locks.
    with run_dir_lock(root, enabled=dist.is_main):
        for run_dir in run_dirs.values():  # refuse before touching anything in RUN_DIR
            check_fresh_run(run_dir, request.resume)
        if request.resume:
            check_resumed_settings(root, run_dirs, cfg, request)
        device = dist.init(resolve_device(request.device))
        try:
            if dist.is_main:
                write_run_info(root, request, preset_name, cfg, indices, every_split)
            runs = [SplitRun(dataset, splits[index], cfg, preset_name, feature_spec_of(dataset), run_dir, device,
                             text_tower=towers[index][0], eval_text_tower=towers[index][1], prompt=prompt)
                    for index, run_dir in run_dirs.items()]
            return [train_split(run, request, dist, on_progress) for run in runs]
        finally:
            dist.close()


def train_split(run: SplitRun, request: TrainRequest, dist: DistributedContext | None = None,
                on_progress: TrainProgressCallback | None = None) -> SplitTrainResult:
    """Train one split into ``run.run_dir`` (resuming from its ``last.pt`` if asked)."""
    dist = dist or DistributedContext()
    started = time.time()
    check_fresh_run(run.run_dir, request.resume)
    resume_from = load_resume_checkpoint(run, request.resume, request.calibrate)
    if resume_from is not None:
        run = resumed_run(run, resume_from, request.epochs)
    elif request.calibrate:
        run = calibrated_run(run, request, dist, on_progress)
    tcfg, split = run.cfg.train, run.split

    seed_everything(tcfg.seed)
    windows = training_windows(run.dataset, split, run.cfg.data)
    text = class_text(run.dataset, split.seen, run.text_tower, run.prompt, request.text_cache_dir)
    text = text.to(run.device)
    seed_everything(tcfg.seed)  # the model's initial weights depend on the seed only
    state = build_training_state(run.cfg, run.device)
    criterion = build_criterion(tcfg)
    if resume_from is not None:
        state.restore(resume_from)

    metrics = MetricsLog(run.run_dir / "metrics.jsonl", dist.is_main)
    if dist.is_main:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        metrics.truncate_after(state.epochs_done)
    reporter = TrainingReporter(metrics, on_progress if dist.is_main else None, request.log_every, split.index,
                                tcfg.epochs)
    if state.epochs_done >= tcfg.epochs:
        reporter.already_trained(state.epochs_done, run.last_path)
        return SplitTrainResult(split.index, run.run_dir, run.last_path, state.epochs_done, state.epoch_losses, 0.0,
                                skipped=True)

    # Without auxiliary losses the earlier layers' segment heads get no gradient (their
    # output only feeds the next layer's detached reference): DDP must allow that.
    net = dist.wrap(state.model, run.device, find_unused_parameters=not tcfg.aux_loss)
    for epoch in range(state.epochs_done, tcfg.epochs):
        means = train_epoch(net, criterion, windows, state.optimizer, state.scaler, text, run.device, tcfg, epoch,
                            dist, reporter)
        state.epochs_done = epoch + 1
        state.epoch_losses.append(means["loss"])
        reporter.epoch_trained(means)

        epoch_metrics, is_best = {"train": means}, False
        if evaluation_due(request.eval_every, epoch, tcfg.epochs):
            if dist.is_main:
                epoch_metrics["eval"], is_best = evaluate_for_best(run, state, reporter, request.text_cache_dir)
            dist.barrier()
        reporter.epoch_end(means)
        if dist.is_main:
            save_epoch(run, state, epoch_metrics, is_best)
        dist.barrier()
    return SplitTrainResult(split.index, run.run_dir, run.last_path, tcfg.epochs, state.epoch_losses,
                            time.time() - started)
