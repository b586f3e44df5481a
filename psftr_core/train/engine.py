"""One epoch of training: the batches of an epoch, the optimisation step, the epoch loop.

As in DETR's ``engine.py``, :func:`train_one_epoch` only runs the model, the criterion
and the optimiser over one epoch's batches; ``psftr_core.train.run`` builds them, sets
the learning rate, evaluates and saves. :func:`train_step` is a single optimisation
step (a seam: tests replace it to interrupt training between steps).

Batches: the window order of epoch e is a permutation drawn from a ``torch.Generator``
seeded with (seed, e) only, cut into global batches of ``batch_size`` windows. Under
DistributedDataParallel each global batch (the same windows as a single-process run) is
dealt round-robin to the ranks and the loss normalisers (instances, snippets) are
summed over ranks, so the averaged gradient equals the single-process gradient of the
same batch up to float rounding (exactly equal losses need ``model.dropout=0``: dropout
masks are drawn per rank). The last global batch is dropped when it has fewer windows
than ranks.

Class dropout (``train.vocab_dropout`` > 0, ``psftr_core.train.vocabulary_dropout``):
each step's text vocabulary is a random subset of the seen classes that keeps every class
of the batch's ground truth; the labels are remapped to the subset before the model,
matcher and criterion see them. Off (the default), the step is unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import torch

from psftr_core.data.windows import collate_windows
from psftr_core.errors import InputError, PsftrError
from psftr_core.train.distributed import DistributedContext
from psftr_core.train.optimizer import set_epoch_lr
from psftr_core.train.vocabulary_dropout import VocabularyDropout, build_vocabulary_dropout


def epoch_order(num_windows: int, seed: int, epoch: int) -> list[int]:
    """The window order of one epoch: a permutation seeded by (seed, epoch) only."""
    generator = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) % (2**63))
    return torch.randperm(num_windows, generator=generator).tolist()


def global_batches(order: list[int], batch_size: int, world_size: int) -> list[list[int]]:
    """Cut an epoch order into global batches (a short tail is dropped if < world size)."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if batches and len(batches[-1]) < world_size:
        batches.pop()
    return batches


def rank_batches(windows: Any, batches: list[list[int]], dist: DistributedContext) -> Iterator[dict]:
    """This rank's share of each global batch, collated (``collate_windows``), one by one."""
    for global_batch in batches:
        yield collate_windows([windows[i] for i in global_batch[dist.rank :: dist.world_size]])


def train_step(net: torch.nn.Module, criterion: Any, optimizer: torch.optim.Optimizer, scaler: Any, batch: dict,
               text: torch.Tensor, device: str, clip_max_norm: float, dist: DistributedContext,
               vocab_dropout: VocabularyDropout | None = None) -> dict[str, float]:
    """One optimisation step on ``batch``; returns the loss terms of the (global) batch as floats.

    ``batch``: ``features`` [B, T, D], ``mask`` [B, T] (True = padding), ``saliency``
    [B, T], ``targets`` (B dicts); ``text``: [K, D'] class text on ``device``. Mixed
    precision (float16 autocast) exactly when ``scaler`` is enabled, i.e. on CUDA.
    ``vocab_dropout``: this epoch's class dropout (None: the full vocabulary).
    """
    features = batch["features"].to(device, non_blocking=True)
    mask = batch["mask"].to(device, non_blocking=True)
    saliency = batch["saliency"].to(device, non_blocking=True)
    targets = [{k: v.to(device) for k, v in t.items()} for t in batch["targets"]]
    if vocab_dropout is not None:
        targets, text, _ = vocab_dropout.apply(targets, text, dist, device)
    local_instances = float(sum(len(t["labels"]) for t in targets))
    local_frames = float((~mask).sum().item())
    instances, frames = dist.all_sum([local_instances, local_frames], device)
    # DDP averages gradients over ranks: scale the normalisers so the mean equals the
    # single-process gradient of the union batch.
    instances /= dist.world_size
    frames /= dist.world_size

    with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=scaler.is_enabled()):
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


def train_one_epoch(net: torch.nn.Module, criterion: Any, batches: Iterable[dict], optimizer: torch.optim.Optimizer,
                    scaler: Any, text: torch.Tensor, device: str, clip_max_norm: float, dist: DistributedContext,
                    on_iteration: Callable[[int, dict[str, float]], None] | None = None,
                    vocab_dropout: VocabularyDropout | None = None) -> dict[str, float]:
    """:func:`train_step` on every batch; returns the epoch means of the loss terms.

    ``on_iteration(iteration, terms)`` (1-based iteration) is called after each step;
    ``vocab_dropout``: the epoch's class dropout (None: off).
    """
    net.train()
    sums: dict[str, float] = {}
    iterations = 0
    for batch in batches:
        terms = train_step(net, criterion, optimizer, scaler, batch, text, device, clip_max_norm, dist,
                           vocab_dropout=vocab_dropout)
        iterations += 1
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v
        if on_iteration is not None:
            on_iteration(iterations, terms)
    return {k: v / iterations for k, v in sums.items()}


def train_epoch(net: torch.nn.Module, criterion: Any, windows: Any, optimizer: torch.optim.Optimizer, scaler: Any,
                text: torch.Tensor, device: str, train_cfg: Any, epoch: int, dist: DistributedContext,
                reporter: Any | None = None) -> dict[str, float]:
    """Epoch ``epoch`` (0-based) of ``train_cfg``'s schedule over ``windows``: its learning
    rate, the seeded window order cut into this rank's batches, :func:`train_one_epoch`.

    ``reporter`` (a ``TrainingReporter`` or None) hears ``epoch_start`` and each iteration;
    returns the epoch means of the loss terms. Used by the final training and calibration.
    """
    lr = set_epoch_lr(optimizer, epoch, train_cfg)
    batches = global_batches(epoch_order(len(windows), train_cfg.seed, epoch), train_cfg.batch_size, dist.world_size)
    if not batches:
        raise InputError(f"fewer training windows ({len(windows)}) than processes ({dist.world_size})")
    if reporter is not None:
        reporter.epoch_start(epoch + 1, len(batches), lr)
    return train_one_epoch(net, criterion, rank_batches(windows, batches, dist), optimizer, scaler, text, device,
                           train_cfg.clip_max_norm, dist,
                           on_iteration=reporter.iteration if reporter is not None else None,
                           vocab_dropout=build_vocabulary_dropout(train_cfg, epoch))
