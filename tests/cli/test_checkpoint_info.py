"""``psftr checkpoint info`` on a real tiny checkpoint, and ``--checkpoint`` references in
detect / evaluate: known values, one-line refusals with exit 2, nothing loaded."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from cli_runner import run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from test_checkpoint_ref import COMMIT, _Server, lay_out_hub_cache  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A ``psftr train`` checkpoint (1 epoch, no calibration) of a tiny model on 32-d
    synthetic features: 8 classes, split 75_25/0 (6 seen, 2 unseen); its dataset is ../../data."""
    from psftr_core.train.run import train
    from train_helpers import make_tiny_dataset, one_thread, request

    root = tmp_path_factory.mktemp("checkpoint_info")
    dataset = make_tiny_dataset(root / "data", num_splits=1, train_videos=4, test_videos=2)
    with one_thread():
        (result,) = train(request(dataset, root / "run", epochs=1))
    return Path(result.checkpoint)


def one_error_line(err: str, *named: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("psftr: error: "), err
    assert "Traceback" not in err and all(name in lines[0] for name in named), err


def test_info_prints_known_values(trained, capsys, monkeypatch):
    code, out, err = run_cli(["info", trained], capsys, monkeypatch, command="checkpoint")
    assert code == 0, err
    rows = dict(line.split(None, 1) for line in out.splitlines())
    assert rows["dataset"].endswith("split 75_25/0 (6 seen, 2 unseen classes)")
    assert rows["vocabulary"].startswith("6 seen classes: ")
    assert rows["features"].startswith("32-d")
    assert rows["epochs"] == "1 of 1, resumable"
    assert rows["calibration"].startswith("not calibrated")


def test_info_json_parses_with_the_checkpoint_facts(trained, capsys, monkeypatch):
    import torch

    raw = torch.load(trained, weights_only=True)
    code, out, _ = run_cli(["info", trained, "--json"], capsys, monkeypatch, command="checkpoint")
    facts = json.loads(out)
    assert code == 0
    assert facts["split"] == {"ratio": "75_25", "index": 0, "seen": 6, "unseen": 2}
    assert facts["vocabulary"] == {"size": 6, "names": raw["vocabulary"]}
    assert facts["features"]["dim"] == 32 and facts["calibration"]["status"] == "none"
    assert facts["parameters"] == sum(t.numel() for t in raw["model_state"].values())
    assert facts["preset"] == raw["preset"] and facts["psftr_version"] == raw["psftr_version"]
    assert facts["torch_version"] == torch.__version__  # the writer records its torch


def test_info_and_detect_through_a_hub_reference(trained, tmp_path, capsys, monkeypatch):
    hub = tmp_path / "hub"
    lay_out_hub_cache(hub, {"psftr/last.pt": trained.read_bytes()})
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    ref = f"hf:owner/repo/psftr/last.pt@{COMMIT}"
    code, out, err = run_cli(["info", ref, "--json"], capsys, monkeypatch, command="checkpoint")
    assert code == 0, err
    assert json.loads(out)["checkpoint"] == str(hub / "models--owner--repo" / "snapshots" / COMMIT / "psftr/last.pt")
    # detect runs the hub copy as it runs the local file: the same segments
    data = trained.parents[1] / "data"
    args = ["--features", data, "-a", "group1 action01,group1 action03", "--quiet", "--format", "jsonl", "--threshold", "0"]
    local = run_cli([*args, "--checkpoint", trained], capsys, monkeypatch)
    hubbed = run_cli([*args, "--checkpoint", "hf:owner/repo/psftr/last.pt"], capsys, monkeypatch)
    assert local[0] == hubbed[0] == 0 and hubbed[1] == local[1] and local[1].strip()


def test_detect_refuses_a_checksum_mismatch_before_loading(trained, tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    from psftr_core.runtime import checkpoint

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("PSFTR_CACHE_DIR", str(tmp_path / "cache"))
    loads = []
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda *a, **k: loads.append(a))
    server = _Server({"/last.pt": trained.read_bytes()})
    try:
        code, out, err = run_cli(["--features", trained.parents[1] / "data", "-a", "group1 action01", "--checkpoint",
                                  server.url("/last.pt"), "--checkpoint-sha256", "0" * 64, "-o", tmp_path / "o.json"],
                                 capsys, monkeypatch)
    finally:
        server.close()
    assert code == 2 and loads == [] and server.requests == ["/last.pt"]
    one_error_line(err, "--checkpoint-sha256", hashlib.sha256(trained.read_bytes()).hexdigest())
    assert not (tmp_path / "o.json").exists() and [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("command, args, named", [
    ("checkpoint", ["info", "hf:onlyowner"], "hf:OWNER/REPO/FILE"),
    ("checkpoint", ["info", "ftp://host/last.pt"], "unknown scheme 'ftp://'"),
    ("checkpoint", ["info", "https://host/last.pt"], "--checkpoint-sha256"),
    ("detect", ["--features", "d", "-a", "x", "--checkpoint", "hf:onlyowner"], "--checkpoint hf:onlyowner"),
    ("detect", ["--features", "d", "-a", "x", "--checkpoint-sha256", "0" * 64], "--checkpoint-sha256"),
    ("detect", ["--features", "d", "-a", "x", "--checkpoint", "hf:o/r/last.pt", "--checkpoint-sha256", "xyz"],
     "--checkpoint-sha256 'xyz'"),
    ("evaluate", ["--checkpoint", "gs://b/last.pt", "--dataset", "d", "--split", "75_25"], "unknown scheme"),
    ("evaluate", ["--checkpoint", "hf:o/r/last.pt", "--dataset", "d", "--split", "75_25", "--split-index", "all"],
     "--split-index all"),
    ("evaluate", ["--checkpoint", "hf:o/r/missing.pt", "--dataset", str(Path(__file__).resolve().parents[2] / "examples" / "demo"),
                  "--split", "75_25"],
     "not in the local hub cache"),  # (a dataset that exists: a missing one is said first)
])
def test_bad_references_are_one_line_with_exit_2(command, args, named, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    code, out, err = run_cli(args, capsys, monkeypatch, command=command)
    assert code == 2 and out == ""
    one_error_line(err, named)


def test_describe_a_calibrated_checkpoint():
    from psftr_core.runtime.checkpoint import describe_checkpoint

    record = {"skipped": None, "held_out_classes": ["a", "b"], "score_threshold": 0.25,
              "chosen": {"name": "learned logits", "average_map": 0.5}}
    ckpt = {"calibration": record, "config": {"inference": {"method": "psftr", "scoring": "model"}}}
    facts = describe_checkpoint(ckpt)
    assert facts["calibration"] == {"status": "calibrated", "skipped": None, "chosen": "learned logits",
                                    "held_out_average_map": 0.5, "score_threshold": 0.25, "held_out_classes": 2}
    assert facts["inference"]["scoring"] == "model" and facts["inference"]["nms"] is None
    assert describe_checkpoint({"calibration": {"skipped": "one seen class"}})["calibration"]["status"] == "skipped"
