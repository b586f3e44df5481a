"""Training and checkpoint evaluation on the zero-shot protocol (psftr-model.md §4-7).

Training (:func:`train`): for each requested split, train PSFTR on the seen classes of
the training subset and write a self-describing checkpoint after every epoch.

- Optimiser: AdamW (weight decay ``train.weight_decay``) with three parameter groups:
  the sampling-offset and reference-point layers at ``lr × lr_linear_proj_mult``
  (0.1), parameters matching ``lr_backbone_names`` at ``lr_backbone`` (none in PSFTR:
  features are precomputed), the rest at ``lr``. Step schedule: ×``lr_drop_factor``
  at each epoch of ``lr_drop_epochs`` (computed from the epoch number, so resuming
  needs no scheduler state). Gradient norm clipped to ``clip_max_norm``.
- Reproducibility: python/numpy/torch are seeded from ``train.seed``; the model is
  initialised right after seeding; the window order of epoch e is a permutation drawn
  from a ``torch.Generator`` seeded with (seed, e), independent of everything else.
  Same seed → same losses on CPU. Each checkpoint stores the optimiser, AMP scaler
  and RNG states at the end of its epoch, so ``resume=True`` continues with exactly
  the losses of an uninterrupted run.
- Mixed precision (float16 autocast + GradScaler) on CUDA; float32 on CPU.
- DistributedDataParallel when started by ``torchrun`` (``WORLD_SIZE`` > 1): gloo on
  CPU, NCCL on CUDA. Each global batch of ``batch_size`` windows (the same sequence of
  windows as a single-process run) is dealt round-robin to the ranks, the loss
  normalisers (instances, snippets) are summed over ranks, so the averaged gradient
  equals the single-process gradient of the same batch up to float rounding (exactly
  equal losses need ``model.dropout=0``: dropout masks are drawn per rank). The last
  global batch is dropped when it has fewer windows than ranks. Only rank 0 writes.
- Progress on stderr (rich): epoch, iteration, loss terms, lr, ETA. ``metrics.jsonl``
  in the run directory gets one JSON object per logged iteration (``"event": "iter"``),
  per epoch (``"epoch"``) and per evaluation (``"eval"``).

Run directory layout::

    RUN_DIR/                     (one split)         RUN_DIR/            (--split-index all)
      run.json    what was run                         run.json
      config.yaml the resolved config                  split_0/  (the one-split layout)
      metrics.jsonl                                    ...
      last.pt     checkpoint after the last epoch      split_9/
      best.pt     best eval mAP (only with eval_every > 0)

Ctrl-C: checkpoints are written atomically after complete epochs, so an interrupted
run keeps the last complete ``last.pt``; ``resume=True`` continues from it.

Evaluation (:func:`evaluate_checkpoint`, :func:`evaluate_all_splits`): detections on
the evaluation videos of a split (test subset, unseen-class ground truth), scored with
ActivityNet mAP. Numbers come from ``last.pt`` (the last epoch) unless best-on-test
selection is asked for explicitly (``select="best"``), which the result records.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from psftr_core.device import resolve_device
from psftr_core.errors import InputError, PsftrError

SELECTIONS = ("last", "best")


# =========================================================================== requests


@dataclass
class TrainRequest:
    """What ``psftr train`` was asked to do (CLI flags, or library use).

    split_index: an int or ``"all"``. epochs/seed: override ``train.epochs``/``seed``.
    eval_every: evaluate on the split's test videos every N epochs (0 = never) and keep
    ``best.pt`` by average mAP (this is selection on the test set: report last-epoch
    numbers unless you ask for it). log_every: iterations between ``metrics.jsonl``
    lines. quiet: no progress display.
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
    quiet: bool = False
    text_cache_dir: str | os.PathLike | None = None


@dataclass
class SplitTrainResult:
    split_index: int
    run_dir: Path
    checkpoint: Path
    epochs_done: int
    epoch_losses: list[float]
    seconds: float
    skipped: bool = False


# =========================================================================== helpers


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def default_preset(dataset_name: str) -> str:
    return "anet" if str(dataset_name).lower() in ("anet", "activitynet", "activitynet13") else "thumos14"


def resolve_config(
    dataset: Any,
    preset_name: str | None,
    config_file: str | os.PathLike | None,
    overrides: Sequence[str],
    epochs: int | None,
    seed: int | None,
    batch_size: int | None = None,
) -> tuple[Any, str]:
    """The run's ``PSFTRConfig`` and the preset it starts from.

    Order: preset (default by dataset) → ``--config`` YAML → ``--set`` overrides →
    ``--epochs``/``--seed``. The feature and text widths are taken from the dataset.
    """
    import dataclasses

    from psftr_core.config import apply_overrides, load_config, preset, validate_config

    name = preset_name or default_preset(dataset.name)
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


def split_indices(dataset: Any, ratio: str, split_index: int | str) -> list[int]:
    if str(split_index).lower() == "all":
        return list(range(len(dataset.splits(ratio))))
    try:
        index = int(str(split_index))
    except ValueError:
        raise InputError(f"--split-index must be an integer or 'all', got {split_index!r}") from None
    dataset.split(ratio, index)  # validates the range
    return [index]


def lr_factor(epoch: int, drop_epochs: Sequence[int], factor: float) -> float:
    """Step schedule: multiplier of the base lr during (0-based) ``epoch``."""
    return factor ** sum(1 for e in drop_epochs if epoch >= e)


def param_groups(model: Any, train_cfg: Any) -> list[dict]:
    """AdamW parameter groups: base, sampling-offset/reference-point (×0.1), backbone."""
    proj, backbone, base = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if any(key in name for key in train_cfg.lr_backbone_names):
            backbone.append(p)
        elif any(key in name for key in train_cfg.lr_linear_proj_names):
            proj.append(p)
        else:
            base.append(p)
    groups = [{"params": base, "lr": train_cfg.lr, "base_lr": train_cfg.lr, "name": "base"}]
    if proj:
        lr = train_cfg.lr * train_cfg.lr_linear_proj_mult
        groups.append({"params": proj, "lr": lr, "base_lr": lr, "name": "linear_proj"})
    if backbone:
        groups.append({"params": backbone, "lr": train_cfg.lr_backbone, "base_lr": train_cfg.lr_backbone,
                       "name": "backbone"})
    return groups


def epoch_order(num_windows: int, seed: int, epoch: int) -> list[int]:
    """The window order of one epoch: a permutation seeded by (seed, epoch) only."""
    import torch

    generator = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) % (2**63))
    return torch.randperm(num_windows, generator=generator).tolist()


def global_batches(order: list[int], batch_size: int, world_size: int) -> list[list[int]]:
    """Cut an epoch order into global batches (a short tail is dropped if < world size)."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if batches and len(batches[-1]) < world_size:
        batches.pop()
    return batches


class _Dist:
    """Process-group facts for this process (single-process defaults)."""

    def __init__(self) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owns_group = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def init(self, device: str) -> str:
        """Start the process group if launched by torchrun; returns this rank's device."""
        if not self.enabled:
            return device
        import torch
        import torch.distributed as dist

        if device.startswith("cuda"):
            torch.cuda.set_device(self.local_rank)
            device = f"cuda:{self.local_rank}"
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
            self.owns_group = True
        return device

    def all_sum(self, values: list[float], device: str) -> list[float]:
        if not self.enabled:
            return values
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owns_group = False


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a torchrun launch."""
    return int(os.environ.get("RANK", "0")) == 0


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class MetricsLog:
    """Append-only ``metrics.jsonl`` (rank 0 only)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def truncate_after(self, epoch: int) -> None:
        """Drop records of epochs after ``epoch`` (left by an interrupted run)."""
        if not self.enabled or not self.path.exists():
            return
        from psftr_core.io.atomic import write_text

        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if int(record.get("epoch", 0)) <= epoch:
                kept.append(line)
        write_text(self.path, "".join(k + "\n" for k in kept))


def read_metrics(path: str | os.PathLike, event: str | None = None) -> list[dict]:
    """Records of a ``metrics.jsonl`` (optionally one event kind)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            if event is None or record.get("event") == event:
                records.append(record)
    return records


# =========================================================================== text


def text_embeddings(dataset: Any, class_names: Sequence[str], feature_spec: dict, device: str,
                    prompt: str | None, cache_dir: Any = None) -> Any:
    """[K, D] float32 tensor of class text embeddings (file or CLIP text tower)."""
    import torch

    from psftr_core.features.text import class_text_embeddings

    array = class_text_embeddings(
        dataset,
        class_names,
        clip_model=feature_spec.get("clip_model"),
        clip_pretrained=feature_spec.get("clip_pretrained"),
        cache_dir=cache_dir,
        prompt=prompt,
    )
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


# =========================================================================== training


def train(request: TrainRequest, console: Any = None) -> list[SplitTrainResult]:
    """Run ``psftr train``: one split, or every split into ``RUN_DIR/split_K``."""
    from psftr_core.data.datasets import load_dataset
    from psftr_core.data.splits import check_ratio

    check_ratio(request.ratio)
    dataset = load_dataset(request.dataset, data_root=request.data_root)
    indices = split_indices(dataset, request.ratio, request.split_index)
    cfg, preset_name = resolve_config(
        dataset, request.preset, request.config_file, request.overrides, request.epochs, request.seed,
        request.batch_size,
    )
    root = Path(request.output)
    many = str(request.split_index).lower() == "all"
    dist = _Dist()
    device = dist.init(resolve_device(request.device))
    console = console if console is not None else _stderr_console()
    run_dirs = {index: (root / f"split_{index}" if many else root) for index in indices}
    for run_dir in run_dirs.values():  # refuse before touching anything in RUN_DIR
        _check_fresh_run(run_dir, request.resume)
    results = []
    try:
        if dist.is_main:
            _write_run_info(root, request, preset_name, cfg, indices)
        for index, run_dir in run_dirs.items():
            results.append(
                train_split(dataset, request.ratio, index, cfg, preset_name, run_dir, device, request, console, dist)
            )
    finally:
        dist.close()
    return results


def _write_run_info(root: Path, request: TrainRequest, preset_name: str, cfg: Any, indices: list[int]) -> None:
    from psftr_core import __version__
    from psftr_core.io.atomic import write_json
    from psftr_core.config import save_config

    root.mkdir(parents=True, exist_ok=True)
    info = {
        "psftr_version": __version__,
        "dataset": str(request.dataset),
        "data_root": str(request.data_root) if request.data_root else None,
        "split_ratio": request.ratio,
        "split_indices": indices,
        "layout": "split_K/last.pt" if str(request.split_index).lower() == "all" else "last.pt",
        "preset": preset_name,
        "config_file": str(request.config_file) if request.config_file else None,
        "overrides": list(request.overrides),
        "seed": cfg.train.seed,
        "epochs": cfg.train.epochs,
        "eval_every": request.eval_every,
    }
    # A resumed run keeps its original description and config.
    if not request.resume or not (root / "run.json").exists():
        write_json(root / "run.json", info)
    if not request.resume or not (root / "config.yaml").exists():
        save_config(cfg, root / "config.yaml")


def _check_fresh_run(run_dir: Path, resume: bool) -> None:
    if not resume and (run_dir / "last.pt").exists():
        raise InputError(
            f"{run_dir / 'last.pt'} already exists: pass --resume to continue that run, or choose another --output"
        )


def train_split(
    dataset: Any,
    ratio: str,
    split_index: int,
    cfg: Any,
    preset_name: str,
    run_dir: Path,
    device: str,
    request: TrainRequest,
    console: Any,
    dist: _Dist | None = None,
) -> SplitTrainResult:
    """Train one split into ``run_dir`` (resuming from ``run_dir/last.pt`` if asked)."""
    import torch

    from psftr_core.train import checkpoint as ckpt_io
    from psftr_core.config import config_from_dict, config_to_dict
    from psftr_core.data.windows import WindowDataset, collate_windows, windowing_from_config
    from psftr_core.train.losses import LossWeights, SetCriterion
    from psftr_core.train.matcher import HungarianMatcher, MatchCosts
    from psftr_core.model import PSFTR

    dist = dist or _Dist()
    started = time.time()
    split = dataset.split(ratio, split_index)
    feature_spec = ckpt_io.feature_spec_of(dataset)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    _check_fresh_run(run_dir, request.resume)

    resume_ckpt = None
    if request.resume and last_path.exists():
        resume_ckpt = ckpt_io.load_checkpoint(last_path)
        if "train_state" not in resume_ckpt:
            raise InputError(f"{last_path} has no training state to resume from")
        _check_resume_matches(resume_ckpt, dataset, ratio, split_index, last_path)
        ckpt_io.check_feature_spec(resume_ckpt, feature_spec, f"dataset {dataset.name}")
        stored = config_from_dict(resume_ckpt["config"])
        # The run continues with its own config; only the epoch count may be raised.
        if request.epochs is not None:
            import dataclasses

            stored.train = dataclasses.replace(stored.train, epochs=int(request.epochs))
        cfg = stored
        preset_name = resume_ckpt.get("preset", preset_name)

    tcfg = cfg.train
    seed = int(tcfg.seed)
    seed_everything(seed)
    windowing = windowing_from_config(cfg.data)
    train_windows = WindowDataset(dataset, dataset.train_videos(split), split.seen, windowing, training=True)
    if len(train_windows) == 0:
        raise InputError(
            f"dataset {dataset.name}, split {ratio}/{split_index}: no training window holds a seen-class instance "
            f"(subset {dataset.train_subset!r}); check the annotations and the split"
        )
    text = text_embeddings(dataset, split.seen, feature_spec, device, cfg.data.prompt,
                           request.text_cache_dir).to(device)

    seed_everything(seed)  # the model's initial weights depend on the seed only
    model = PSFTR(cfg.model).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, tcfg), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    use_amp = str(device).startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    criterion = SetCriterion(
        LossWeights(tcfg.cls_loss_coef, tcfg.seg_loss_coef, tcfg.iou_loss_coef, tcfg.actionness_loss_coef,
                    tcfg.salient_loss_coef, tcfg.focal_alpha, tcfg.focal_gamma, tcfg.aux_loss),
        HungarianMatcher(MatchCosts(tcfg.set_cost_class, tcfg.set_cost_seg, tcfg.set_cost_iou,
                                    tcfg.focal_alpha, tcfg.focal_gamma)),
    )
    start_epoch, best_score, history = 0, -math.inf, []
    if resume_ckpt is not None:
        model.load_state_dict(resume_ckpt["model_state"])
        state = resume_ckpt["train_state"]
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") and use_amp:
            scaler.load_state_dict(state["scaler"])
        ckpt_io.restore_rng_state(state["rng"])
        start_epoch = int(resume_ckpt["epoch"])
        best_score = float(state.get("best_score", -math.inf))
        history = list(state.get("epoch_losses", []))

    metrics = MetricsLog(run_dir / "metrics.jsonl", dist.is_main)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        metrics.truncate_after(start_epoch)
    if start_epoch >= tcfg.epochs:
        if dist.is_main and not request.quiet:
            console.print(f"split {ratio}/{split_index}: already trained for {start_epoch} epochs ({last_path})")
        return SplitTrainResult(split_index, run_dir, last_path, start_epoch, history, 0.0, skipped=True)

    net = model
    if dist.enabled:
        # Without auxiliary losses the earlier layers' segment heads get no gradient
        # (their output only feeds the next layer's detached reference).
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if str(device).startswith("cuda") else None,
            find_unused_parameters=not tcfg.aux_loss,
        )

    def checkpoint_dict(epoch: int, epoch_metrics: dict, best: float) -> dict:
        return ckpt_io.make_checkpoint(
            model=model,
            config=config_to_dict(cfg),
            preset=preset_name,
            feature_spec=feature_spec,
            vocabulary=list(split.seen),
            split={"dataset": dataset.name, "ratio": ratio, "index": split_index,
                   "seen": list(split.seen), "unseen": list(split.unseen)},
            epoch=epoch,
            epochs_total=tcfg.epochs,
            metrics=epoch_metrics,
            train_state={
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if use_amp else {},
                "rng": ckpt_io.capture_rng_state(),
                "seed": seed,
                "best_score": best,
                "epoch_losses": list(history),
            },
        )

    show = dist.is_main and not request.quiet
    for epoch in range(start_epoch, tcfg.epochs):
        factor = lr_factor(epoch, tcfg.lr_drop_epochs, tcfg.lr_drop_factor)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        batches = global_batches(epoch_order(len(train_windows), seed, epoch), tcfg.batch_size, dist.world_size)
        if not batches:
            raise InputError(f"fewer training windows ({len(train_windows)}) than processes ({dist.world_size})")
        net.train()
        sums: dict[str, float] = {}
        epoch_started = time.time()
        with _Progress(console, show, epoch, tcfg.epochs, len(batches)) as progress:
            for it, global_batch in enumerate(batches):
                local = global_batch[dist.rank :: dist.world_size]
                batch = collate_windows([train_windows[i] for i in local])
                terms = _train_step(net, criterion, optimizer, scaler, batch, text, device, tcfg.clip_max_norm,
                                    use_amp, dist)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                lr = optimizer.param_groups[0]["lr"]
                progress.update(it + 1, terms, lr)
                if request.log_every and (it + 1) % request.log_every == 0:
                    metrics.write({"event": "iter", "epoch": epoch + 1, "iter": it + 1, "lr": lr,
                                   **{k: round(v, 6) for k, v in terms.items()}})
        means = {k: v / len(batches) for k, v in sums.items()}
        history.append(means["loss"])
        epoch_record = {"event": "epoch", "epoch": epoch + 1, "iters": len(batches),
                        "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - epoch_started, 3),
                        **means}
        metrics.write(epoch_record)
        epoch_metrics = {"train": means}

        is_best = False
        if request.eval_every and ((epoch + 1) % request.eval_every == 0 or epoch + 1 == tcfg.epochs):
            if dist.is_main:
                result = _evaluate_model(model, cfg, dataset, split, feature_spec, device,
                                         request.text_cache_dir, tious=default_tious(preset_name))
                epoch_metrics["eval"] = result.to_dict()
                metrics.write({"event": "eval", "epoch": epoch + 1, "tious": result.tious, "mAP": result.mAP,
                               "average": result.average})
                if show:
                    console.print(f"epoch {epoch + 1}: eval average mAP {100 * result.average:.2f}")
                if result.average > best_score:
                    best_score, is_best = result.average, True
            dist.barrier()
        if show and not console.is_terminal:
            console.print(
                f"epoch {epoch + 1}/{tcfg.epochs}: loss {means['loss']:.4f} "
                f"({time.time() - epoch_started:.1f} s)"
            )
        if dist.is_main:
            ckpt = checkpoint_dict(epoch + 1, epoch_metrics, best_score)
            ckpt_io.save_checkpoint(last_path, ckpt)
            if is_best:
                ckpt_io.save_checkpoint(best_path, ckpt)
        dist.barrier()
    return SplitTrainResult(split_index, run_dir, last_path, tcfg.epochs, history, time.time() - started)


def _check_resume_matches(ckpt: dict, dataset: Any, ratio: str, index: int, path: Path) -> None:
    split = ckpt["split"]
    if split.get("ratio") != ratio or int(split.get("index", -1)) != index:
        raise InputError(
            f"{path} was trained on split {split.get('ratio')}/{split.get('index')}, not {ratio}/{index}; "
            "resume with the same --split and --split-index"
        )
    if str(split.get("dataset")) != str(dataset.name):
        raise InputError(f"{path} was trained on dataset {split.get('dataset')!r}, not {dataset.name!r}")


def _train_step(net: Any, criterion: Any, optimizer: Any, scaler: Any, batch: dict, text: Any, device: str,
                clip_max_norm: float, use_amp: bool, dist: _Dist) -> dict[str, float]:
    """One optimisation step; returns the loss terms of the (global) batch as floats."""
    import torch

    features = batch["features"].to(device, non_blocking=True)
    mask = batch["mask"].to(device, non_blocking=True)
    saliency = batch["saliency"].to(device, non_blocking=True)
    targets = [{k: v.to(device) for k, v in t.items()} for t in batch["targets"]]
    local_instances = float(sum(len(t["labels"]) for t in targets))
    local_frames = float((~mask).sum().item())
    instances, frames = dist.all_sum([local_instances, local_frames], device)
    # DDP averages gradients over ranks: scale the normalisers so the mean equals the
    # single-process gradient of the union batch.
    instances /= dist.world_size
    frames /= dist.world_size

    with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
        outputs = net(features, mask, text)
    losses = criterion(outputs, targets, saliency, mask, num_instances=instances, num_frames=frames)
    loss = losses["loss"]
    if not torch.isfinite(loss):
        raise PsftrError(
            "training diverged (loss is not finite); lower train.lr or check the features for NaN/inf values"
        )
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_max_norm > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip_max_norm)
    scaler.step(optimizer)
    scaler.update()

    names = sorted(k for k in losses if k == "loss" or not k[-1].isdigit())
    values = [float(losses[k].detach()) for k in names]
    if dist.enabled:
        values = [v / dist.world_size for v in dist.all_sum(values, device)]
    return dict(zip(names, values))


class _Progress:
    """Rich progress bar for one epoch (a no-op when not shown or not a terminal).

    Shows the epoch, iterations, the running epoch mean of the loss terms, the lr and
    the time left in the epoch and in the whole run.
    """

    SHORT = {"loss": "loss", "loss_cls": "cls", "loss_seg": "l1", "loss_iou": "iou",
             "loss_actionness": "act", "loss_saliency": "sal"}

    def __init__(self, console: Any, show: bool, epoch: int, epochs: int, total: int) -> None:
        self.show = show and console.is_terminal
        self.console = console
        self.epoch, self.epochs, self.total = epoch, epochs, total
        self.progress = None
        self.sums: dict[str, float] = {}
        self.started = time.time()

    def __enter__(self) -> "_Progress":
        if self.show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[terms]} lr {task.fields[lr]} run ETA {task.fields[run_eta]}"),
                console=self.console,
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task(
                "train", total=self.total, epoch=f"{self.epoch + 1}/{self.epochs}", terms="", lr="", run_eta="-"
            )
        return self

    def update(self, done: int, terms: dict[str, float], lr: float) -> None:
        if self.progress is None:
            return
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        text = " ".join(f"{self.SHORT[k]} {self.sums[k] / done:.3f}" for k in self.SHORT if k in self.sums)
        per_iter = (time.time() - self.started) / done
        left = per_iter * ((self.total - done) + (self.epochs - self.epoch - 1) * self.total)
        eta = time.strftime("%H:%M:%S", time.gmtime(left))
        self.progress.update(self.task, completed=done, terms=text, lr=f"{lr:.1e}", run_eta=eta)

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()


# =========================================================================== evaluation


def default_tious(preset_name: str | None) -> tuple[float, ...]:
    from psftr_core.evaluation.detection_map import ANET_TIOUS, THUMOS_TIOUS

    return ANET_TIOUS if preset_name == "anet" else THUMOS_TIOUS


def _evaluate_model(model: Any, cfg: Any, dataset: Any, split: Any, feature_spec: dict, device: str,
                    text_cache_dir: Any, tious: Sequence[float], batch_size: int | None = None,
                    on_batch: Callable[[int], None] | None = None, predictions_out: dict | None = None) -> Any:
    from psftr_core.data.windows import WindowDataset, windowing_from_config
    from psftr_core.evaluation.detection_map import evaluate_detections
    from psftr_core.infer.predict import predict_dataset

    windows = WindowDataset(dataset, dataset.eval_videos(split), split.unseen, windowing_from_config(cfg.data),
                            training=False)
    text = text_embeddings(dataset, split.unseen, feature_spec, device, cfg.data.prompt, text_cache_dir)
    was_training = model.training
    predictions = predict_dataset(model, windows, text, topk=cfg.inference.topk, nms_iou=cfg.inference.nms_iou,
                                  batch_size=batch_size or cfg.train.batch_size, device=device, on_batch=on_batch,
                                  scoring=cfg.inference.scoring,
                                  nms_within_windows=cfg.inference.nms == "all")
    model.train(was_training)
    if predictions_out is not None:
        predictions_out.update(predictions)
    return evaluate_detections(dataset.ground_truth(split), predictions, tious=tious, classes=list(split.unseen))


@dataclass
class CheckpointEvaluation:
    """Result of evaluating one checkpoint (or, with ``checkpoint=None``, the
    training-free localizer) on one split."""

    result: Any  # EvalResult
    predictions: dict[str, list[dict]]
    checkpoint: Path | None
    split_index: int
    epoch: int | None
    selection: str = "last"

    @property
    def model(self) -> str:
        return "psftr" if self.checkpoint is not None else "baseline"

    def to_dict(self) -> dict:
        return {**self.result.to_dict(), "model": self.model,
                "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
                "split_index": self.split_index, "epoch": self.epoch, "selection": self.selection}


def _check_split_use(ckpt: dict, split: Any, ratio: str, index: int, dataset: Any, path: Path) -> None:
    """Refuse evaluations that would score classes the checkpoint was trained on."""
    leaked = sorted(set(ckpt.get("vocabulary", [])) & set(split.unseen))
    if leaked:
        trained = ckpt.get("split", {})
        raise InputError(
            f"checkpoint {path} was trained on class {leaked[0]!r}, which is unseen in split {ratio}/{index} "
            f"({len(leaked)} such classes); evaluate it on the split it was trained for "
            f"(--split {trained.get('ratio')} --split-index {trained.get('index')})"
        )


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
    show_progress: bool = False,
    overrides: Sequence[str] = (),
) -> CheckpointEvaluation:
    """Score a checkpoint on split ``ratio/split_index`` of ``dataset`` (a name/dir or a loaded dataset).

    ``overrides``: ``inference.KEY=VALUE`` settings that replace the checkpoint's (e.g.
    ``inference.scoring=model`` for the paper's scoring); other sections are refused.
    """
    from psftr_core.train import checkpoint as ckpt_io
    from psftr_core.data.datasets import load_dataset

    if isinstance(dataset, (str, os.PathLike)):
        dataset = load_dataset(dataset)
    path = Path(checkpoint)
    ckpt = ckpt_io.load_checkpoint(path)
    split = dataset.split(ratio, split_index)
    _check_split_use(ckpt, split, ratio, split_index, dataset, path)
    spec = ckpt_io.feature_spec_of(dataset)
    ckpt_io.check_feature_spec(ckpt, spec, f"dataset {dataset.name}")
    device = resolve_device(device)
    model, cfg = ckpt_io.build_model(ckpt, device)
    if overrides:
        from psftr_core.config import apply_overrides

        bad = [o for o in overrides if not str(o).startswith("inference.")]
        if bad:
            raise InputError(f"evaluation can only change inference.* settings, not {bad[0]!r}")
        cfg = apply_overrides(cfg, list(overrides))
    predictions: dict[str, list[dict]] = {}
    result = _evaluate_model(model, cfg, dataset, split, spec, device, text_cache_dir,
                             tious or default_tious(ckpt.get("preset")), batch_size, None, predictions)
    return CheckpointEvaluation(result, predictions, path, split_index, int(ckpt["epoch"]), selection)


def evaluate_baseline(
    dataset: Any,
    ratio: str,
    split_index: int,
    tious: Sequence[float] | None = None,
    localizer: Any = None,
    prompt: str | None = None,
    text_cache_dir: Any = None,
) -> CheckpointEvaluation:
    """Score the training-free localizer on split ``ratio/split_index`` of ``dataset``.

    The same protocol as :func:`evaluate_checkpoint`: evaluation videos of the split,
    vocabulary = its unseen classes, text from the dataset's embeddings file or the CLIP
    text tower on ``prompt`` (default: the config's prompt). ``localizer`` is a
    ``baseline.LocalizerConfig`` (defaults when None). Nothing is trained.
    """
    from psftr_core.infer.localizer import localize
    from psftr_core.train.checkpoint import feature_spec_of
    from psftr_core.config import DataConfig
    from psftr_core.data.datasets import load_dataset
    from psftr_core.evaluation.detection_map import evaluate_detections

    if isinstance(dataset, (str, os.PathLike)):
        dataset = load_dataset(dataset)
    split = dataset.split(ratio, split_index)
    names = list(split.unseen)
    text = text_embeddings(dataset, names, feature_spec_of(dataset), "cpu", prompt or DataConfig().prompt,
                           text_cache_dir).numpy()
    predictions = {
        video.video_id: localize(dataset.load_features(video.video_id), dataset.snippet_times(video.video_id),
                                 text, names, localizer, duration=video.duration)
        for video in dataset.eval_videos(split)
    }
    result = evaluate_detections(dataset.ground_truth(split), predictions,
                                 tious=tious or default_tious(default_preset(dataset.name)), classes=names)
    return CheckpointEvaluation(result, predictions, None, split_index, None, "last")


def evaluate_baseline_all_splits(
    dataset: Any,
    ratio: str,
    tious: Sequence[float] | None = None,
    localizer: Any = None,
    prompt: str | None = None,
    text_cache_dir: Any = None,
    on_split: Callable[[int, int], None] | None = None,
) -> "SplitAggregate":
    """:func:`evaluate_baseline` on every split of ``ratio``, aggregated (mean ± std)."""
    from psftr_core.data.datasets import load_dataset

    if isinstance(dataset, (str, os.PathLike)):
        dataset = load_dataset(dataset)
    count = len(dataset.splits(ratio))
    evaluations = []
    for k in range(count):
        if on_split is not None:
            on_split(k, count)
        evaluations.append(evaluate_baseline(dataset, ratio, k, tious, localizer, prompt, text_cache_dir))
    return aggregate(evaluations)


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


def find_split_checkpoints(run_dir: str | os.PathLike, count: int, selection: str = "last") -> list[Path]:
    """``RUN_DIR/split_K/{last,best}.pt`` for K < count; InputError naming what is missing."""
    if selection not in SELECTIONS:
        raise InputError(f"unknown checkpoint selection {selection!r}: use last or best")
    root = Path(run_dir)
    if root.is_file():  # RUN_DIR/split_K/last.pt given: use its run directory
        root = root.parent.parent if root.parent.name.startswith("split_") else root.parent
    if not root.is_dir():
        raise InputError(f"run directory {root} does not exist (with --split-index all, --checkpoint is RUN_DIR)")
    paths = [root / f"split_{k}" / f"{selection}.pt" for k in range(count)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        hint = (" (best.pt exists only for runs trained with --eval-every)" if selection == "best" else "")
        raise InputError(
            f"{len(missing)} of {count} split checkpoints are missing under {root}, e.g. {missing[0]}{hint}; "
            f"train them with `psftr train ... --split-index all --output {root}`"
        )
    return paths


def evaluate_all_splits(
    run_dir: str | os.PathLike,
    dataset: Any,
    ratio: str,
    device: str = "auto",
    tious: Sequence[float] | None = None,
    batch_size: int | None = None,
    text_cache_dir: Any = None,
    selection: str = "last",
    on_split: Callable[[int, int], None] | None = None,
    overrides: Sequence[str] = (),
) -> SplitAggregate:
    """Evaluate ``RUN_DIR/split_K/last.pt`` (or ``best.pt``) on split K for every K
    (``overrides`` as in :func:`evaluate_checkpoint`)."""
    from psftr_core.data.datasets import load_dataset

    if isinstance(dataset, (str, os.PathLike)):
        dataset = load_dataset(dataset)
    count = len(dataset.splits(ratio))
    paths = find_split_checkpoints(run_dir, count, selection)
    evaluations = []
    for k, path in enumerate(paths):
        if on_split is not None:
            on_split(k, count)
        evaluations.append(
            evaluate_checkpoint(path, dataset, ratio, k, device, tious, batch_size, text_cache_dir, selection,
                                overrides=overrides)
        )
    return aggregate(evaluations, selection)
