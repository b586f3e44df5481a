"""This process's place in a ``torchrun`` launch, and the collectives training needs.

A plain (non-``torchrun``) process is a world of one: every method is then the identity
or a no-op, so the training loop reads the same with and without DistributedDataParallel.
Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


class DistributedContext:
    """World size and ranks from torchrun's environment (single-process defaults)."""

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
        if device.startswith("cuda"):
            torch.cuda.set_device(self.local_rank)
            device = f"cuda:{self.local_rank}"
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
            self.owns_group = True
        return device

    def wrap(self, model: torch.nn.Module, device: str, find_unused_parameters: bool) -> torch.nn.Module:
        """``model`` in DistributedDataParallel when there are several ranks, else ``model``."""
        if not self.enabled:
            return model
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[self.local_rank] if str(device).startswith("cuda") else None,
            find_unused_parameters=find_unused_parameters,
        )

    def all_sum(self, values: list[float], device: str) -> list[float]:
        """Element-wise sum of ``values`` over the ranks (float64)."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """``obj`` of rank ``src`` on every rank (picklable; e.g. a calibration record)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        """Destroy the process group if :meth:`init` created it."""
        if self.owns_group:
            dist.destroy_process_group()
            self.owns_group = False


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a torchrun launch."""
    return int(os.environ.get("RANK", "0")) == 0
