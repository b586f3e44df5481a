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

The same module fits the class-agnostic actionness of the reference probes
(``psftr_core.infer.probes``), :func:`fit_actionness`:

1. Ridge regression with an unpenalised bias from the L2-normalised features of *every*
   snippet of the training videos to y = 1 inside an instance of a seen class, else 0:
   ``(w, b) = argmin ‖Xw + b − y‖² + λ·n·‖w‖²`` (λ relative to the snippet count n,
   as above). Only the given annotations are read: in the zero-shot protocol the
   training videos' instances of unseen classes are unknown (``train_videos`` drops
   them), so their snippets count as background, as they do for any model trained on
   the seen classes.
2. The regression output ``f = xw + b`` becomes a probability through
   ``sigmoid(a·f + c)``, (a, c) fitted by logistic regression on the same snippets
   (Platt scaling, with Platt's smoothed targets ``(n₊ + 1)/(n₊ + 2)`` and
   ``1/(n₋ + 2)`` so the fit stays finite when inside and outside separate). The
   ridge sets the direction, Platt the sharpness, so λ does not change how sharp the
   probabilities are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

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


@dataclass
class Actionness:
    """A fitted class-agnostic actionness: ``sigmoid(logit_scale·(x·weight + bias) + logit_offset)``.

    ``weight`` [D] and ``bias`` are the ridge regression onto the 0/1 target,
    ``logit_scale`` and ``logit_offset`` its Platt scaling (module docstring).
    """

    weight: np.ndarray
    bias: float
    logit_scale: float
    logit_offset: float

    def regression(self, features: Any) -> np.ndarray:
        """features [T, D] (any norm; L2-normalised first, as in fitting) -> ridge output [T]."""
        return _unit_rows(np.asarray(features, dtype=np.float64)) @ self.weight + self.bias

    def predict(self, features: Any) -> np.ndarray:
        """features [T, D] -> probability [T] in (0, 1) (up to float64 rounding near 1) that
        each snippet is inside an action."""
        return _sigmoid(self.logit_scale * self.regression(features) + self.logit_offset)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # 1 / (1 + e^-z) without overflow; stays > 0 down to z ≈ -745 (rounds to 1 above z ≈ 37)
    return np.exp(-np.logaddexp(0.0, -z))


def _labelled_snippets(dataset: Any, videos: Sequence[Any], seen: set[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per video: unit features [T, D] and the target [T] (1.0 inside an instance of a
    ``seen`` class, by snippet centre time as in :func:`fit_linear_probe`, else 0.0)."""
    for video in videos:
        times = np.asarray(dataset.snippet_times(video.video_id), dtype=np.float64)
        target = np.zeros(len(times))
        for ann in video.annotations:
            if ann.label in seen:
                target[(times >= ann.start) & (times <= ann.end)] = 1.0
        yield _unit_rows(np.asarray(dataset.load_features(video.video_id), dtype=np.float64)), target


def fit_actionness(dataset: Any, videos: Sequence[Any], seen_classes: Sequence[str], ridge: float = 10.0) -> Actionness:
    """Fit the actionness on every snippet of ``videos`` (module docstring).

    ``seen_classes``: the classes whose instances are actions; other annotations are
    not read. ``ridge`` is λ, relative to the snippet count. Features are read twice
    (the sums of the normal equations, then the outputs for Platt scaling), so memory
    stays [D, D] whatever the number of snippets. InputError without any snippet inside,
    or any outside, a seen-class instance.
    """
    seen = set(seen_classes)
    gram = xty = x_sum = None
    n = positives = 0.0
    for x, y in _labelled_snippets(dataset, videos, seen):
        if gram is None:
            gram, xty, x_sum = np.zeros((x.shape[1], x.shape[1])), np.zeros(x.shape[1]), np.zeros(x.shape[1])
        gram += x.T @ x
        xty += x.T @ y
        x_sum += x.sum(axis=0)
        n += len(y)
        positives += y.sum()
    if not 0 < positives < n:
        raise InputError(f"actionness: needs snippets both inside and outside instances of the seen classes; "
                         f"got {int(positives)} inside of {int(n)}")
    # Normal equations of the augmented system [X 1]; the bias (last row and column) is not penalised.
    dim = len(xty)
    augmented = np.zeros((dim + 1, dim + 1))
    augmented[:dim, :dim] = gram + ridge * n * np.eye(dim)
    augmented[:dim, dim] = augmented[dim, :dim] = x_sum
    augmented[dim, dim] = n
    solution = np.linalg.solve(augmented, np.append(xty, positives))
    weight, bias = solution[:dim], float(solution[dim])
    outputs, targets = [], []
    for x, y in _labelled_snippets(dataset, videos, seen):
        outputs.append(x @ weight + bias)
        targets.append(y)
    scale, offset = platt_scaling(np.concatenate(outputs), np.concatenate(targets))
    return Actionness(weight, bias, scale, offset)


def platt_scaling(outputs: np.ndarray, targets: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """(a, c) maximising the likelihood of ``sigmoid(a·outputs + c)`` for the 0/1
    ``targets`` [n], with Platt's smoothed targets (finite even when separable).

    Newton's method on the convex negative log-likelihood, halving a step that does
    not lower it; ``outputs`` are standardised first so the steps are well scaled.
    """
    positives = targets.sum()
    soft = np.where(targets > 0.5, (positives + 1) / (positives + 2), 1 / (len(targets) - positives + 2))
    centre, spread = float(outputs.mean()), max(float(outputs.std()), 1e-12)
    z = np.stack([(outputs - centre) / spread, np.ones_like(outputs)], axis=1)  # [n, 2]

    def loss(theta: np.ndarray) -> float:
        logits = z @ theta
        return float(np.sum(np.logaddexp(0.0, logits) - soft * logits))

    theta = np.array([0.0, np.log(soft.mean() / (1 - soft.mean()))])
    current = loss(theta)
    for _ in range(iterations):
        p = _sigmoid(z @ theta)
        gradient = z.T @ (p - soft)
        hessian = (z * (p * (1 - p))[:, None]).T @ z + 1e-12 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        while loss(theta - step) > current and np.abs(step).max() > 1e-12:
            step = step / 2
        theta = theta - step
        improved, current = current - loss(theta), loss(theta)
        if improved <= 1e-12 * max(current, 1.0):
            break
    # Back to the raw outputs: a·(f − centre)/spread + c.
    return float(theta[0] / spread), float(theta[1] - theta[0] * centre / spread)
