"""The localizer-fusion development check (benchmarks/localizer_fusion.py)."""

from __future__ import annotations

import json

import pytest

from benchmarks import localizer_fusion


def test_union_scales_the_localizer_and_suppresses_overlaps_per_class():
    model = [{"segment": [0.0, 10.0], "label": "a", "score": 0.6}]
    localizer = [{"segment": [1.0, 10.0], "label": "a", "score": 1.0},  # tIoU 0.9 with the model's: 0.5 < 0.6, dropped
                 {"segment": [1.0, 10.0], "label": "b", "score": 0.8},  # another class: kept
                 {"segment": [20.0, 30.0], "label": "a", "score": 0.2}]
    fused = localizer_fusion.fuse(model, localizer, alpha=0.5)
    assert [(d["label"], d["segment"], d["score"]) for d in fused] == [
        ("a", [0.0, 10.0], 0.6), ("b", [1.0, 10.0], 0.4), ("a", [20.0, 30.0], 0.1)]
    assert localizer_fusion.fuse([], [], 1.0) == []


@pytest.mark.parametrize("script", ["localizer_fusion", "t2v_vocabulary"])
def test_the_development_checks_refuse_the_benchmark_data_seed(script, tmp_path):
    import importlib

    run = tmp_path / "data_seed0" / "runs" / "transfer0" / "PSFTR" / "75_25_split0_seed0"
    run.mkdir(parents=True)
    (run / "rules_result.json").write_text(json.dumps({"task": {"data_seed": 0}, "result": {}}))
    with pytest.raises(SystemExit, match="data seed 0 is the benchmark's"):
        importlib.import_module(f"benchmarks.{script}").main(["--study", str(tmp_path)])


@pytest.mark.parametrize("script", ["localizer_fusion", "t2v_vocabulary"])
def test_a_folder_without_study_runs_is_one_line_not_an_empty_report(script, tmp_path):
    import importlib

    for study in (tmp_path, tmp_path / "missing"):
        with pytest.raises(SystemExit, match="no finished run of `python -m benchmarks.calibration_rules --out`"):
            importlib.import_module(f"benchmarks.{script}").main(["--study", str(study)])
