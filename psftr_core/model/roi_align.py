"""1-D ROIAlign: fixed-size features of arbitrary temporal segments."""

from __future__ import annotations

import torch


def roi_align_1d(
    features: torch.Tensor,
    segments: torch.Tensor,
    num_bins: int,
    samples_per_bin: int = 2,
    lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pool each segment into ``num_bins`` bins by linear interpolation.

    Coordinates are continuous snippet units: snippet i covers [i, i + 1) and its
    value sits at its centre i + 0.5 (torchvision's ``aligned=True`` convention).
    A segment [s, e] is cut into ``num_bins`` equal bins; bin b is the mean of
    ``samples_per_bin`` samples at ``s + (b + (j + 0.5) / S) · (e − s) / num_bins``,
    j = 0..S−1. A sample at position x reads ``f(x − 0.5)`` by linear interpolation
    between the two nearest snippets, with x − 0.5 clamped to ``[0, L − 1]`` (L =
    valid length), so padding never enters and the ends repeat the edge snippets.

    Args:
        features: [B, T, C].
        segments: [B, N, 2] (start, end) in snippet units.
        num_bins: bins per segment.
        samples_per_bin: S, samples averaged in each bin.
        lengths: [B] valid lengths (default T for all).

    Returns:
        [B, N, num_bins, C].

    Implemented as a sparse interpolation matrix [B, N·num_bins, T] times the
    features, which keeps memory at O(N·bins·T) instead of O(N·bins·S·C).
    """
    B, T, C = features.shape
    N = segments.shape[1]
    if lengths is None:
        lengths = torch.full((B,), T, device=features.device)
    dtype = features.dtype
    start, end = segments[..., 0:1].to(dtype), segments[..., 1:2].to(dtype)  # [B, N, 1]
    steps = (
        torch.arange(num_bins, device=features.device, dtype=dtype)[:, None]
        + (torch.arange(samples_per_bin, device=features.device, dtype=dtype)[None, :] + 0.5) / samples_per_bin
    ).flatten() / num_bins  # [bins·S] fractions of the segment
    x = start + steps * (end - start) - 0.5  # [B, N, bins·S] index coordinates
    last = (lengths.to(dtype) - 1.0).view(B, 1, 1)
    x = torch.minimum(x.clamp(min=0.0), last)
    left = x.floor()
    frac = x - left
    left = left.long()
    right = torch.minimum(left + 1, last.long())
    matrix = features.new_zeros(B, N * num_bins, samples_per_bin, T)
    rows = (B, N * num_bins, samples_per_bin, 1)
    matrix.scatter_add_(-1, left.view(rows), (1.0 - frac).view(rows))
    matrix.scatter_add_(-1, right.view(rows), frac.view(rows))
    matrix = matrix.mean(dim=2)  # average the samples of each bin
    return torch.bmm(matrix, features).view(B, N, num_bins, C)
