"""The localizer has one name: the protocol's old ``evaluate_baseline`` still works, with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from psftr_core.evaluation import protocol

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"


def test_evaluate_baseline_is_the_deprecated_name_of_evaluate_localizer():
    new = protocol.evaluate_localizer(str(DEMO), "75_25", 0)
    with pytest.warns(DeprecationWarning, match="evaluate_baseline is now evaluate_localizer"):
        old = protocol.evaluate_baseline(str(DEMO), "75_25", 0)
    assert old.result.to_dict() == new.result.to_dict()
    assert new.model == "localizer" and new.to_dict()["model"] == "localizer"
