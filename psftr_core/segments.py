"""Temporal segments: (centre, width) -> (start, end) and temporal IoU, in one place.

The torch functions are differentiable (training and inference on tensors); the numpy
``tiou_matrix`` serves NMS, evaluation and tests. torch is imported inside the torch
functions so that scoring a results file (numpy only) does not pay for importing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def segment_cw_to_se(segments: torch.Tensor) -> torch.Tensor:
    """(centre, width) [..., 2] -> (start, end) [..., 2]."""
    import torch

    centre, width = segments.unbind(-1)
    return torch.stack([centre - width / 2, centre + width / 2], dim=-1)


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1-D IoU of every (start, end) in ``a`` [N, 2] with every one in ``b`` [M, 2] -> [N, M].

    Differentiable; zero-length unions give IoU 0 instead of NaN.
    """
    import torch

    inter = (torch.min(a[:, None, 1], b[None, :, 1]) - torch.max(a[:, None, 0], b[None, :, 0])).clamp(min=0)
    length_a = (a[:, 1] - a[:, 0]).clamp(min=0)
    length_b = (b[:, 1] - b[:, 0]).clamp(min=0)
    union = length_a[:, None] + length_b[None, :] - inter
    return inter / union.clamp(min=1e-8)


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of ``a[i]`` with ``b[i]`` for (start, end) segments [N, 2] -> [N]."""
    import torch

    inter = (torch.min(a[:, 1], b[:, 1]) - torch.max(a[:, 0], b[:, 0])).clamp(min=0)
    union = (a[:, 1] - a[:, 0]).clamp(min=0) + (b[:, 1] - b[:, 0]).clamp(min=0) - inter
    return inter / union.clamp(min=1e-8)


def to_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """numpy view of an array-like or torch tensor (detached, on CPU)."""
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def tiou_matrix(a: Any, b: Any) -> np.ndarray:
    """Temporal IoU of every segment in ``a`` [N, 2] with every segment in ``b`` [M, 2].

    Segments are (start, end). Returns [N, M] float64. A pair whose union has zero
    length (two identical instants) gets IoU 0, never NaN (the official ActivityNet
    code's NaN never matches either); reversed segments (end < start) count as zero length.
    """
    a = to_numpy(a, np.float64).reshape(-1, 2)
    b = to_numpy(b, np.float64).reshape(-1, 2)
    a_start, a_end = a[:, 0:1], np.maximum(a[:, 1:2], a[:, 0:1])
    b_start, b_end = b[None, :, 0], np.maximum(b[None, :, 1], b[None, :, 0])
    inter = np.clip(np.minimum(a_end, b_end) - np.maximum(a_start, b_start), 0.0, None)
    union = (a_end - a_start) + (b_end - b_start) - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def clip_to_video_start(start: float, end: float) -> tuple[float, float] | None:
    """A ground-truth instance ``[start, end]`` (seconds) as it lies in its video, which
    starts at 0 s: the start clipped to 0, or None when it ends before 0 s (nothing of it
    is in the video; ``[-8, -2]`` is such an instance, ``[-2, 5]`` becomes ``[0, 5]``).

    The one rule of every ground-truth loader (files and datasets).
    """
    if start < 0 and end <= 0:
        return None
    return max(start, 0.0), end
