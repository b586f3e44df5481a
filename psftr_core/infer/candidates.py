"""A video's candidate detections: what a model's decoding gives the filter stage.

:class:`Candidates` holds them as arrays (segments, scores, classes and, for PSFTR, the
window each came from); :mod:`psftr_core.infer.filtering` decides which are kept.
PSFTR's come from ``predict.merge_windows``; the training-free localizer's from
:func:`localizer_candidates` (no torch needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from psftr_core.infer.localizer import LocalizerConfig, localizer_proposals


@dataclass
class Candidates:
    """One video's detections as a model's decoding gives them, before the filter.

    ``segments`` [N, 2] float64 (start, end) seconds; ``scores`` [N] float64;
    ``classes`` [N] int64 indices into ``class_names``; ``windows`` [N] int64, the index
    of the window (in its video) each came from, or None when they come from no windows
    (the localizer). Equal scores are kept in this order.
    """

    segments: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    class_names: Sequence[str]
    windows: np.ndarray | None = None

    @classmethod
    def empty(cls, class_names: Sequence[str]) -> Candidates:
        return cls(np.zeros((0, 2)), np.zeros(0), np.zeros(0, dtype=np.int64), list(class_names))

    @classmethod
    def from_detections(cls, detections: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> Candidates:
        """From ``[{"segment", "label", "score"}]`` whose labels are all in ``class_names``."""
        index = {name: k for k, name in enumerate(class_names)}
        return cls(
            np.array([d["segment"] for d in detections], dtype=np.float64).reshape(-1, 2),
            np.array([d["score"] for d in detections], dtype=np.float64).reshape(-1),
            np.array([index[d["label"]] for d in detections], dtype=np.int64).reshape(-1),
            list(class_names),
        )

    def __len__(self) -> int:
        return len(self.scores)


def localizer_candidates(features: np.ndarray, times: np.ndarray, duration: float | None, text: Any,
                         class_names: Sequence[str], cfg: LocalizerConfig | None = None) -> Candidates:
    """The training-free localizer's scored proposals of one video: features [T, D],
    times [T] seconds, text [K, D] (numpy or torch); ``cfg``: defaults when None.

    Without the localizer's own NMS and top-k: the filter stage applies them
    (``FilterSettings.of_localizer(cfg)``), which gives exactly what ``localize`` gives.
    """
    if hasattr(text, "detach"):  # a torch tensor
        text = text.detach().cpu().numpy()
    found = localizer_proposals(features, times, np.asarray(text, dtype=np.float64), class_names, cfg,
                                duration=duration)
    return Candidates.from_detections(found, class_names)
