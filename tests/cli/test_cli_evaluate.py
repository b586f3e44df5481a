"""``psftr evaluate --predictions ... --ground-truth ...``: table, JSON, warnings, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from psftr_cli.main import app

REPO = Path(__file__).resolve().parents[2]

GROUND_TRUTH = {
    "database": {
        "v1": {
            "subset": "test",
            "annotations": [
                {"segment": [0, 10], "label": "A"},
                {"segment": [20, 30], "label": "A"},
                {"segment": [40, 50], "label": "Ambiguous"},
            ],
        },
        "v2": {"subset": "test", "annotations": [{"segment": [0, 10], "label": "B"}]},
        "v3": {"subset": "val", "annotations": [{"segment": [0, 10], "label": "C"}]},
    }
}
# Class A: TP, FP, TP -> AP 5/6 at every threshold up to 1 (exact segments).
# Class B: no predictions -> AP 0. Mean over A, B (subset test): 5/12.
PREDICTIONS = {
    "version": "test",
    "results": {
        "v1": [
            {"segment": [0, 10], "label": "A", "score": 0.9},
            {"segment": [60, 70], "label": "A", "score": 0.8},
            {"segment": [20, 30], "label": "A", "score": 0.7},
            {"segment": [0, 10], "label": "Unknown", "score": 0.7},
        ],
        "elsewhere": [{"segment": [0, 10], "label": "A", "score": 0.1}],
    },
    "external_data": {"used": False, "details": ""},
}


@pytest.fixture()
def files(tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(GROUND_TRUTH))
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps(PREDICTIONS))
    return preds, gt


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()  # click >= 8.2 keeps stdout and stderr apart


def test_json_output_hand_computed(files):
    preds, gt = files
    result = _runner().invoke(
        app,
        ["evaluate", "--predictions", str(preds), "--ground-truth", str(gt), "--subset", "test", "--tious", "0.5,0.7", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["tious"] == [0.5, 0.7]
    assert data["mAP"] == pytest.approx([5 / 12, 5 / 12], abs=1e-12)
    assert data["average"] == pytest.approx(5 / 12, abs=1e-12)
    assert data["per_class"] == {"A": pytest.approx([5 / 6, 5 / 6]), "B": [0.0, 0.0]}
    assert data["counts"]["ignored_predictions_unknown_label"] == 1
    assert data["counts"]["predictions_on_videos_without_ground_truth"] == 1
    assert "'Unknown'" in result.stderr and "without ground truth" in result.stderr


def test_table_output_default_thumos_thresholds(files):
    preds, gt = files
    result = _runner().invoke(
        app, ["evaluate", "--predictions", str(preds), "--ground-truth", str(gt), "--subset", "test", "--per-class"]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    for header in ["0.3", "0.4", "0.5", "0.6", "0.7", "Avg"]:
        assert header in out
    assert "41.67" in out  # mAP 5/12 in percent
    assert "83.33" in out and "0.00" in out  # per-class A and B
    assert "warning" not in out  # warnings go to stderr
    assert "class(es) have no predictions" in result.stderr


def test_without_subset_all_classes_count(files):
    preds, gt = files
    result = _runner().invoke(
        app, ["evaluate", "--predictions", str(preds), "--ground-truth", str(gt), "--tious", "0.5", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mAP"] == pytest.approx([5 / 18], abs=1e-12)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "psftr_cli", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=60
    )


def _assert_one_line_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("psftr: error: ") and fragment in lines[0]


@pytest.mark.parametrize(
    "which, content, fragment",
    [
        ("predictions", "", "is empty"),
        ("predictions", '{"results": {"v1": [{"segment": [', "not valid JSON"),
        ("ground_truth", "", "is empty"),
        ("ground_truth", "<html>not json</html>", "not valid JSON"),
        ("ground_truth", '{"database": {"v1": {"annotations": [{"segment": [5, 4], "label": "A"}]}}}', "reversed"),
    ],
)
def test_bad_files_exit_2_with_one_line(tmp_path, files, which, content, fragment):
    preds, gt = files
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    if which == "predictions":
        preds = bad
    else:
        gt = bad
    _assert_one_line_error(_run_cli("evaluate", "--predictions", str(preds), "--ground-truth", str(gt)), fragment)


def test_missing_file_bad_tious_and_usage_exit_2(tmp_path, files):
    preds, gt = files
    _assert_one_line_error(
        _run_cli("evaluate", "--predictions", str(tmp_path / "nope.json"), "--ground-truth", str(gt)), "not found"
    )
    _assert_one_line_error(
        _run_cli("evaluate", "--predictions", str(preds), "--ground-truth", str(gt), "--tious", "0.3:0.1:0.1"),
        "stop is below start",
    )
    _assert_one_line_error(_run_cli("evaluate", "--predictions", str(preds)), "--ground-truth")
    _assert_one_line_error(
        _run_cli("evaluate", "--predictions", str(preds), "--ground-truth", str(gt), "--subset", "train"),
        "no videos in subset 'train'",
    )
    _assert_one_line_error(  # a results file needs no text tower
        _run_cli("evaluate", "--predictions", str(preds), "--ground-truth", str(gt), "--clip-pretrained", "w.pt"),
        "apply to --checkpoint and --baseline only",
    )


def test_subprocess_json_success(files):
    preds, gt = files
    proc = _run_cli("evaluate", "--predictions", str(preds), "--ground-truth", str(gt), "--subset", "test", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # stdout holds exactly the JSON document
    assert data["average"] == pytest.approx(5 / 12, abs=1e-12)
    assert "Traceback" not in proc.stderr


def test_command_module_does_not_import_torch():
    code = (
        "import sys, psftr_cli.commands.evaluate, psftr_cli.render, psftr_core.io.export;"
        "print('torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr


def test_ctrl_c_in_any_command_exits_130_with_one_line(files, monkeypatch):
    import importlib

    # (the package attribute ``evaluate`` is the command function, not its module)
    evaluate_command = importlib.import_module("psftr_cli.commands.evaluate")

    def interrupted(*args, **kwargs) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_command, "evaluate_predictions_file", interrupted)
    preds, gt = files
    result = _runner().invoke(app, ["evaluate", "--predictions", str(preds), "--ground-truth", str(gt)])
    assert result.exit_code == 130
    assert result.stderr == "psftr: interrupted\n" and result.stdout == ""
