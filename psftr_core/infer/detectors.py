"""What runs on one video's features in ``psftr detect``: the localizer or a checkpoint.

A :class:`Detector` turns features [T, D] and text [K, D] into that video's candidate
detections (:class:`~psftr_core.infer.candidates.Candidates`, not yet filtered) and
carries the model's own filter settings and default score threshold, which detect's
flags override (:func:`detect_threshold` explains the score scale). PSFTR's inference
path (:mod:`psftr_core.infer.predict`, torch) is imported only with a checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from psftr_core.defaults import DEFAULT_THRESHOLDS
from psftr_core.device import resolve_device
from psftr_core.features.cache import video_fingerprint
from psftr_core.infer.candidates import Candidates, localizer_candidates
from psftr_core.infer.filtering import FilterSettings
from psftr_core.infer.localizer import LocalizerConfig


@dataclass
class Detector:
    """A model for detect: ``candidates(features [T, D], times [T], duration, text [K, D],
    names) -> Candidates`` and what the model fixes.

    ``filters``: the model's filter settings (a checkpoint's ``inference``, the
    localizer's NMS); ``threshold``: a checkpoint's calibrated score threshold (None:
    :data:`DEFAULT_THRESHOLDS` of ``kind``); ``clip_model`` / ``clip_pretrained`` /
    ``clip_weights_id`` / ``text_clip`` / ``sampling`` / ``feature_dim`` / ``prompt``:
    set by a checkpoint (its training features); ``check_dataset`` refuses a feature dataset the model cannot use;
    ``identity``: what makes its detections differ (JSON values); ``ran``: what runs, in
    a few words, for the summary line (``kind`` when None).
    """

    kind: str  # "localizer" | "psftr"
    details: str
    candidates: Callable[..., Candidates]
    filters: FilterSettings
    clip_model: str | None = None
    clip_pretrained: str | None = None
    clip_weights_id: str | None = None  # what the features' weights were (tag or file sha256)
    text_clip: dict[str, Any] | None = None  # the text tower the checkpoint was trained with
    sampling: tuple[str, float] | None = None  # ("stride", 8) or ("fps", 2.0)
    feature_dim: int | None = None
    prompt: str | None = None
    threshold: float | None = None
    check_dataset: Callable[[Any], None] | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    ran: str | None = None


def detect_threshold(detector: Detector, threshold: float | None = None) -> float:
    """The score threshold of a run: ``threshold`` when given, else the checkpoint's
    calibrated one, else :data:`DEFAULT_THRESHOLDS` of the model's kind. It replaces a
    checkpoint's ``inference.score_threshold`` (evaluation's, usually 0): one threshold.

    What the scores are, both in [0, 1]:

    - the localizer: the outer-inner contrast of a class curve (per snippet CLIP's
      softmax over the vocabulary times a "stands out in this video" gate), i.e. the
      curve's mean inside the segment minus its mean around it. A real action's curve
      is high inside and low around (the demo's actions score 0.5-0.8): 0.3.
    - PSFTR: σ(actionness) × class evidence (a softmax probability over the
      vocabulary, or that CLIP contrast, or a mix: ``psftr_core.infer.scoring``). The
      product of two numbers below 1, with the class evidence spread over the
      vocabulary, is much smaller: 0.03. ``psftr train`` replaces it by the F1-best
      threshold on held-out seen classes (``runtime.checkpoint.default_score_threshold``).
    """
    if threshold is not None:
        return float(threshold)
    return float(detector.threshold) if detector.threshold is not None else DEFAULT_THRESHOLDS[detector.kind]


# The default threshold of the localizer's vocabulary-independent score (``class_score=
# "independent"``): its scores run higher than the relative ones; 0.6 gave the best F1 at
# tIoU 0.5 on the development data (synthetic seeds 1 and 2, the demo), 0.3 kept too many
# wrong segments (benchmarks/score_independence.py, docs/detect.md).
INDEPENDENT_THRESHOLD = 0.6


def localizer_detector(localizer_config: LocalizerConfig | None = None) -> Detector:
    """The training-free localizer (:mod:`psftr_core.infer.localizer`) with ``localizer_config``."""
    cfg = localizer_config or LocalizerConfig()
    independent = cfg.class_score == "independent"

    def candidates(features: np.ndarray, times: np.ndarray, duration: float | None, text: np.ndarray,
                   names: list[str]) -> Candidates:
        return localizer_candidates(features, times, duration, text, names, cfg)

    score = ", each action scored on its own" if independent else ""
    return Detector("localizer", f"training-free localizer (CLIP frame-text similarity{score}, "
                    "psftr_core.infer.localizer)",
                    candidates, FilterSettings.of_localizer(cfg),
                    identity={"kind": "localizer", "localizer": dataclasses.asdict(cfg)},
                    threshold=INDEPENDENT_THRESHOLD if independent else None)


def checkpoint_detector(checkpoint: str | os.PathLike, device: str) -> Detector:
    """A PSFTR model from a ``psftr train`` checkpoint.

    The checkpoint records the CLIP model, weights and feature rate of its training
    features; video inputs are extracted the same way. Each video goes through the
    inference path of evaluation (:func:`psftr_core.infer.predict.predict_video`) with the
    checkpoint's windowing and inference settings, and its filter settings are the
    evaluation's (:meth:`FilterSettings.from_inference`).
    """
    from psftr_core.infer.predict import predict_video
    from psftr_core.runtime.checkpoint import (
        build_model, check_feature_spec, default_score_threshold, feature_spec_of, load_checkpoint,
    )

    torch_device = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    net, cfg = build_model(ckpt, device=torch_device)
    spec = ckpt["feature_spec"]
    if spec.get("frames_per_feature"):
        sampling: tuple[str, float] | None = ("stride", int(spec["frames_per_feature"]))
    elif spec.get("feature_fps"):
        sampling = ("fps", float(spec["feature_fps"]))
    else:
        sampling = None
    split = ckpt.get("split") or {}
    where = f"{split.get('dataset', '?')} split {split.get('ratio', '?')}/{split.get('index', '?')}"
    details = (
        f"PSFTR checkpoint {Path(checkpoint).name} (trained on {where}, epoch {ckpt.get('epoch')}"
        f"{', CLIP ' + spec['clip_model'] if spec.get('clip_model') else ''})"
    )
    ran = None
    if cfg.inference.method == "localizer":  # say what runs, as evaluate does
        details += "; its calibration chose the training-free localizer, which is what runs"
        ran = "localizer (chosen by the checkpoint's calibration)"

    def candidates(features: np.ndarray, times: np.ndarray, duration: float | None, text: np.ndarray,
                   names: list[str]) -> Candidates:
        return predict_video(net, cfg, features, times, duration, text, names, torch_device)

    return Detector(
        kind="psftr",
        details=details,
        candidates=candidates,
        filters=FilterSettings.from_inference(cfg.inference),
        clip_model=spec.get("clip_model"),
        clip_pretrained=spec.get("clip_pretrained"),
        clip_weights_id=spec.get("clip_weights_id"),
        text_clip=ckpt.get("text_clip") if isinstance(ckpt.get("text_clip"), dict) else None,
        sampling=sampling,
        feature_dim=int(spec["feature_dim"]) if spec.get("feature_dim") else None,
        prompt=getattr(cfg.data, "prompt", None),
        threshold=default_score_threshold(ckpt),  # chosen on held-out seen classes by psftr train
        ran=ran,
        check_dataset=lambda dataset: check_feature_spec(
            ckpt, feature_spec_of(dataset), where=f"the feature dataset {dataset.root}"
        ),
        identity={"kind": "psftr", "checkpoint": video_fingerprint(checkpoint)},  # a content id of the file
    )
