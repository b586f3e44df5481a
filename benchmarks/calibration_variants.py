"""The ways the calibration can take its held-out measurement (the calibration study's
variants), and which of them ``psftr train`` uses now.

Shared by the study (``benchmarks.calibration_rules``) and the benchmark page's history
(``benchmarks.history``): a variant's name, joined with a rule's (``"seen vocabulary,
argmax"``), keys the study's saved numbers. What ships is read from the code, not
written here, so a page never names a calibration that no longer ships.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """How the held-out measurement is taken (``calibration.calibrate``'s arguments)."""

    held_out_fraction: float
    among_seen: bool
    words: str
    fold: int = 0  # which held-out class fold (calibration.hold_out)


VARIANTS = {
    "held-out vocabulary": Variant(1 / 3, False, "a third of the seen classes held out, scored among themselves "
                                                 "(the calibration before this study)"),
    "seen vocabulary": Variant(1 / 3, True, "the same held-out classes, scored among every seen class (held-out "
                                            "and trained-on; the mAP still over the held-out classes only)"),
    "half held out": Variant(0.5, False, "half the seen classes held out, scored among themselves"),
    "half held out, seen vocabulary": Variant(0.5, True, "half the seen classes held out, scored among every "
                                                         "seen class"),
    "seen vocabulary, fold 2": Variant(1 / 3, True, "as seen vocabulary with the next third of the seen "
                                                    "classes held out (disjoint from the first; its own "
                                                    "calibration model)", fold=1),
}
# Derived from two measured variants: each grid setting's held-out numbers averaged over both folds
# (cross-fitting over disjoint held-out class folds; costs a second calibration model).
CROSS_FIT = {"seen vocabulary, 2 folds": ("seen vocabulary", "seen vocabulary, fold 2")}
BEFORE = "held-out vocabulary, argmax"  # what psftr train shipped before the study (its baseline)
SHIPPED_RULE = "argmax"  # calibration.choose: the best held-out average mAP, ties to the simplest


def calibration_defaults() -> dict:
    """How ``psftr train`` calibrates now: ``calibration.calibrate``'s measurement arguments
    (their defaults, ``{"held_out_fraction": ..., "among_seen": ...}``) and the config's
    ``train.calibration_folds``, ``train.calibration_prior_margin`` and
    ``train.calibration_localizer_margin`` (``folds``, ``margin``, ``localizer_margin``)."""
    from psftr_core.config import TrainConfig
    from psftr_core.train import calibration

    parameters = inspect.signature(calibration.calibrate).parameters
    out = {name: parameters[name].default for name in ("held_out_fraction", "among_seen")}
    train = TrainConfig()
    return {**out, "folds": int(train.calibration_folds), "margin": float(train.calibration_prior_margin),
            "localizer_margin": float(train.calibration_localizer_margin)}


def rule_name(margin: float, localizer_margin: float | None = None) -> str:
    """The study's name of the pick rule with these prior margins (average mAP, fractions;
    ``localizer_margin`` None = ``margin``)."""
    localizer = margin if localizer_margin is None else localizer_margin
    if margin <= 0 and localizer <= 0:
        return SHIPPED_RULE
    if margin >= 1:
        return "always CLIP contrast" + (f", localizer margin {100 * localizer:g}" if localizer < 1 else "")
    return f"prior CLIP contrast, margin {100 * margin:g}" + (
        f", localizer margin {100 * localizer:g}" if localizer != margin else "")


def shipped_combination() -> str | None:
    """The study's name of what ``psftr train`` does now (``"<variant>, <rule>"``); None
    when no variant of the study measures that way."""
    shipped = calibration_defaults()
    rule = rule_name(shipped["margin"], shipped.get("localizer_margin"))
    for name, variant in VARIANTS.items():
        if variant.fold == 0 and math.isclose(variant.held_out_fraction, shipped["held_out_fraction"]) and (
                variant.among_seen == shipped["among_seen"]):
            if shipped["folds"] == 1:
                return f"{name}, {rule}"
            for cross, parts in CROSS_FIT.items():
                if parts[0] == name and len(parts) == shipped["folds"]:
                    return f"{cross}, {rule}"
    return None


def study_results(study: str) -> list:
    """The ``rules_result.json`` files of a calibration study's ``--out`` folder, sorted; one
    line (SystemExit) when there are none, so a wrong folder is not an empty report."""
    from pathlib import Path

    found = sorted(Path(study).glob("data_seed*/runs/*/PSFTR/*/rules_result.json"))
    if not found:
        raise SystemExit(f"{study}: no finished run of `python -m benchmarks.calibration_rules --out` there")
    return found


def localizer_lead(record: dict) -> float | None:
    """How far (points of held-out avg mAP) the localizer led the prior choice, CLIP contrast,
    in a calibration record; None when the record scored not both (e.g. skipped)."""
    from psftr_core.train.calibration import PRIOR_CHOICE

    localizer = [r["average_map"] for r in record.get("grid", []) if r.get("method") == "localizer"]
    prior = [r["average_map"] for r in record.get("grid", []) if r.get("name") == PRIOR_CHOICE.name]
    return 100 * (localizer[0] - prior[0]) if localizer and prior else None
