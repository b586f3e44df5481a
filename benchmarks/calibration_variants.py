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


VARIANTS = {
    "held-out vocabulary": Variant(1 / 3, False, "a third of the seen classes held out, scored among themselves "
                                                 "(the calibration before this study)"),
    "seen vocabulary": Variant(1 / 3, True, "the same held-out classes, scored among every seen class (held-out "
                                            "and trained-on; the mAP still over the held-out classes only)"),
    "half held out": Variant(0.5, False, "half the seen classes held out, scored among themselves"),
    "half held out, seen vocabulary": Variant(0.5, True, "half the seen classes held out, scored among every "
                                                         "seen class"),
}
BEFORE = "held-out vocabulary, argmax"  # what psftr train shipped before the study (its baseline)
SHIPPED_RULE = "argmax"  # calibration.choose: the best held-out average mAP, ties to the simplest


def calibration_defaults() -> dict:
    """``calibration.calibrate``'s measurement arguments as ``psftr train`` calls it
    (their defaults): ``{"held_out_fraction": ..., "among_seen": ...}``."""
    from psftr_core.train import calibration

    parameters = inspect.signature(calibration.calibrate).parameters
    return {name: parameters[name].default for name in ("held_out_fraction", "among_seen")}


def shipped_combination() -> str | None:
    """The study's name of what ``psftr train`` does now (``"<variant>, argmax"``); None
    when no variant of the study measures that way."""
    shipped = calibration_defaults()
    for name, variant in VARIANTS.items():
        if math.isclose(variant.held_out_fraction, shipped["held_out_fraction"]) and (
                variant.among_seen == shipped["among_seen"]):
            return f"{name}, {SHIPPED_RULE}"
    return None
