"""AdamW with up to three parameter groups, and the step learning-rate schedule.

Groups: the sampling-offset and reference-point layers at ``lr × lr_linear_proj_mult``;
when ``lr_backbone`` is set, the parameters whose name contains one of
``lr_backbone_names`` (by default the temporal convolution that reads the raw CLIP
features, ``temporal_conv``) at ``lr_backbone``; the rest at ``lr`` (also the backbone
parameters while ``lr_backbone`` is null). Weight decay ``weight_decay``. Schedule:
every group's lr is multiplied by ``lr_drop_factor`` at each epoch of
``lr_drop_epochs``. It is computed from the epoch number, so resuming needs no
scheduler state.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch


def param_groups(model: torch.nn.Module, train_cfg: Any) -> list[dict]:
    """AdamW parameter groups: base, sampling-offset/reference-point (×0.1), backbone
    (only while ``train_cfg.lr_backbone`` is set)."""
    proj, backbone, base = [], [], []
    backbone_names = train_cfg.lr_backbone_names if train_cfg.lr_backbone is not None else ()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if any(key in name for key in backbone_names):
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


def build_optimizer(model: torch.nn.Module, train_cfg: Any) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, train_cfg), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)


def lr_factor(epoch: int, drop_epochs: Sequence[int], factor: float) -> float:
    """Step schedule: multiplier of the base lr during (0-based) ``epoch``."""
    return factor ** sum(1 for e in drop_epochs if epoch >= e)


def set_epoch_lr(optimizer: torch.optim.Optimizer, epoch: int, train_cfg: Any) -> float:
    """Set every group's lr for (0-based) ``epoch``; returns the base group's lr."""
    factor = lr_factor(epoch, train_cfg.lr_drop_epochs, train_cfg.lr_drop_factor)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return optimizer.param_groups[0]["lr"]
