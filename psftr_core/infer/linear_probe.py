"""A learned linear probe: visual features -> text space, fitted on seen-class frames.

The simplest way to *learn* the modality gap from the seen classes, used as a reference
next to PSFTR in ``benchmarks/zero_shot.py``:

1. Fit ``W`` [D, D_text] by ridge regression (closed form) from the L2-normalised
   features of the snippets inside seen-class instances of the training videos to the
   L2-normalised text embedding of their class:
   shrunk towards the identity (CLIP's own alignment, the map the training-free
   localizer uses): ``W = argmin ‖XW − Y‖² + λ·n·‖W − I‖²
   = (XᵀX + λ·n·I)⁻¹ (XᵀY + λ·n·I)``, n the number of snippets. Without the
   identity prior (λ → 0 or ``prior=False``) the map only knows the directions of the
   seen classes' texts and discards everything else, unseen classes included.
2. At test time map every snippet, ``x ↦ xW``, and run the training-free localizer
   (``localizer.localize``) on the mapped features with the same text embeddings, so the
   probe and the localizer differ only in the learned map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from psftr_core.errors import InputError


@dataclass
class LinearProbe:
    """A fitted map ``weight`` [D, D_text]."""

    weight: np.ndarray

    def transform(self, features: Any) -> np.ndarray:
        """features [T, D] -> [T, D_text] (features L2-normalised first, as in fitting)."""
        x = np.asarray(features, dtype=np.float64)
        x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
        return x @ self.weight


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def fit_linear_probe(
    dataset: Any, videos: Sequence[Any], text: dict[str, Any], ridge: float = 1e-2, prior: bool = True
) -> LinearProbe:
    """Fit the probe on the snippets inside the instances of ``videos``.

    ``text`` maps each class to fit (the seen classes) to its embedding [D_text];
    instances of other classes are ignored. ``ridge`` is λ (relative to the snippet
    count, so it does not depend on the amount of data); ``prior`` shrinks towards
    the identity (needs D = D_text) instead of towards 0.
    """
    xs, ys = [], []
    targets = {name: _unit_rows(np.asarray(vec, dtype=np.float64)[None])[0] for name, vec in text.items()}
    for video in videos:
        times = np.asarray(dataset.snippet_times(video.video_id), dtype=np.float64)
        features = None
        for ann in video.annotations:
            if ann.label not in targets:
                continue
            inside = (times >= ann.start) & (times <= ann.end)
            if not inside.any():
                continue
            if features is None:
                features = _unit_rows(np.asarray(dataset.load_features(video.video_id), dtype=np.float64))
            xs.append(features[inside])
            ys.append(np.repeat(targets[ann.label][None], int(inside.sum()), axis=0))
    if not xs:
        raise InputError("linear probe: no snippet lies inside an instance of the given classes")
    x, y = np.concatenate(xs), np.concatenate(ys)
    eye = np.eye(x.shape[1])
    gram = x.T @ x + ridge * len(x) * eye
    rhs = x.T @ y
    if prior:
        if x.shape[1] != y.shape[1]:
            raise InputError(f"linear probe: an identity prior needs D = D_text, got {x.shape[1]} and {y.shape[1]}")
        rhs = rhs + ridge * len(x) * eye
    return LinearProbe(np.linalg.solve(gram, rhs))
