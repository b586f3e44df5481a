"""Every file in ``examples/`` works as its comments say."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_python_api_example_runs_offline_and_writes_csv_json_and_timelines(tmp_path, capsys):
    report = load_example("detect_api").main(tmp_path)
    printed = capsys.readouterr().out
    assert "training-free localizer" in printed and "segments.csv" in printed
    rows = list(csv.DictReader(io.StringIO((tmp_path / "segments.csv").read_text(encoding="utf-8"), newline="")))
    assert len(rows) == len(report.segments) > 0
    doc = json.loads((tmp_path / "segments.json").read_text(encoding="utf-8"))
    assert sorted(doc["results"]) == ["synth_test_0000", "synth_test_0001", "synth_test_0002"]
    assert sorted(p.name for p in (tmp_path / "timelines").iterdir()) == [
        "synth_test_0000.png", "synth_test_0001.png", "synth_test_0002.png"]
    # The example's settings: pole vault needs score >= 0.4, every segment lasts >= 1 s.
    assert all(s.score >= 0.4 for s in report.segments if s.label == "pole vault")
    assert all(s.end - s.start >= 1.0 for s in report.segments)
    # Most planted instances of the example's actions in those videos are found (tIoU >= 0.5).
    database = json.loads((EXAMPLES / "demo" / "annotations.json").read_text(encoding="utf-8"))["database"]
    planted = [(video, a["label"], *a["segment"]) for video in doc["results"] for a in database[video]["annotations"]
               if a["label"] in report.actions]
    found = [any(s.video == v and s.label == label and min(s.end, b) - max(s.start, a) >= 0.5 * (max(s.end, b) - min(s.start, a))
                 for s in report.segments) for v, label, a, b in planted]
    assert planted and sum(found) >= 0.5 * len(planted)


def test_sample_actions_file():
    from psftr_core.data.vocabulary import parse_vocabulary

    vocab = parse_vocabulary(None, actions_file=EXAMPLES / "actions.txt")
    assert len(vocab) == 14
    assert vocab[:2] == ["diving", "pole vault"]
    assert "walking, then running" in vocab and "Cricket bowling" in vocab


def test_train_override_yaml_loads_onto_the_preset_and_builds_a_model_for_the_demo():
    import torch

    from psftr_core.config import load_config, preset
    from psftr_core.data.datasets import load_dataset
    from psftr_core.train.run import resolve_config
    from psftr_core.model import PSFTR

    cfg = load_config(EXAMPLES / "train_override.yaml")
    base = preset("thumos14")
    assert (cfg.model.hidden_dim, cfg.model.enc_layers, cfg.model.dec_layers, cfg.model.num_queries) == (128, 1, 2, 20)
    assert (cfg.train.epochs, cfg.train.lr_drop_epochs, cfg.train.batch_size) == (12, (10,), 8)
    assert cfg.data.slice_size == 64 and cfg.inference.topk == 50
    assert cfg.model.num_heads == base.model.num_heads and cfg.train.lr == base.train.lr  # untouched keys

    demo = load_dataset(EXAMPLES / "demo")
    cfg, _ = resolve_config(demo, None, EXAMPLES / "train_override.yaml", [], None, None)
    assert cfg.model.feature_dim == 256  # follows the dataset
    model = PSFTR(cfg.model).eval()
    features = torch.as_tensor(demo.load_features("synth_test_0000")[:64]).unsqueeze(0)
    text = torch.as_tensor(np.stack([demo.text_embeddings[c] for c in demo.classes[:3]]))
    with torch.no_grad():
        out = model(features, torch.zeros(1, 64, dtype=torch.bool), text)
    assert out["pred_logits"].shape == (1, 20, 3)


def test_embedded_demo_is_what_make_demo_generates(tmp_path):
    """If this fails, the synthetic generator changed: run `python examples/make_demo.py --docs`."""
    load_example("make_demo").make_demo(tmp_path / "demo")
    committed = sorted(p.relative_to(EXAMPLES / "demo") for p in (EXAMPLES / "demo").rglob("*") if p.is_file())
    fresh = sorted(p.relative_to(tmp_path / "demo") for p in (tmp_path / "demo").rglob("*") if p.is_file())
    assert committed == fresh
    for rel in committed:
        assert (EXAMPLES / "demo" / rel).read_bytes() == (tmp_path / "demo" / rel).read_bytes(), rel
    size = sum((EXAMPLES / "demo" / rel).stat().st_size for rel in committed)
    assert size < 3 * 2**20  # "at most a few MB"


@pytest.mark.slow
def test_train_override_trains_a_demo_checkpoint_that_detect_uses(tmp_path):
    from psftr_core.infer.detect import detect
    from psftr_core.train.run import TrainRequest, train

    (result,) = train(TrainRequest(dataset=str(EXAMPLES / "demo"), ratio="75_25", split_index=0,
                                   output=tmp_path / "run", epochs=1, device="cpu",
                                   config_file=EXAMPLES / "train_override.yaml"))
    report = detect([], ["diving", "rowing"], features_dir=EXAMPLES / "demo", checkpoint=result.checkpoint,
                    threshold=0.0)
    from psftr_core.runtime.checkpoint import load_checkpoint

    chose_localizer = load_checkpoint(result.checkpoint)["config"]["inference"]["method"] == "localizer"
    expected = "localizer (chosen by the checkpoint's calibration)" if chose_localizer else "psftr"
    assert report.stats["model"] == expected and report.stats["videos"] == 18


DOCS = REPO / "docs"


def test_docs_sample_csv_and_timeline_are_current_demo_output(tmp_path, capsys, monkeypatch):
    """docs/sample_segments.csv and docs/timeline_example.png are what the demo command writes.

    If this fails (localizer or drawing changed), run `python examples/make_demo.py --docs`.
    """
    import sys

    from PIL import Image

    from psftr_cli.main import run

    make_demo = load_example("make_demo")
    out = tmp_path / "sample.csv"
    monkeypatch.setattr(sys, "argv", ["psftr", "detect", "--features", str(EXAMPLES / "demo"), "--actions-file",
                                      str(EXAMPLES / "demo" / "actions.txt"), *make_demo.DOC_VIDEOS, "-o", str(out),
                                      "--timeline", str(tmp_path / "tl"), "-q"])
    with pytest.raises(SystemExit) as exit_info:
        run()
    assert exit_info.value.code in (0, None)
    assert out.read_bytes() == (DOCS / "sample_segments.csv").read_bytes()
    # Pixels depend on the fonts installed, so only the size is compared (12 lanes).
    fresh_png = tmp_path / "tl" / f"{make_demo.DOC_TIMELINE_VIDEO}.png"
    with Image.open(fresh_png) as fresh, Image.open(DOCS / "timeline_example.png") as doc:
        assert fresh.size == doc.size == (1200, 28 + 12 * 22 + 30)
    # The excerpt in docs/detect.md is the head of that file.
    head = (DOCS / "sample_segments.csv").read_text(encoding="utf-8").replace("\r\n", "\n").splitlines()[:9]
    assert "\n".join(head) in (DOCS / "detect.md").read_text(encoding="utf-8")


def test_described_actions_example_parses_to_names_and_descriptions():
    from psftr_core.data.vocabulary import parse_action_texts

    names, recipe = parse_action_texts(None, EXAMPLES / "actions_described.yaml", ["a video of {}", "a clip of {}"])
    assert names == ["diving", "pole vault", "riding a bike", "walking"]
    assert recipe.texts("walking", "unused {}") == ["a video of walking", "a clip of walking"]
    assert recipe.texts("diving", "unused {}")[2:] == ["a person jumps into water from a board",
                                                       "a diver somersaults in the air before entering the pool"]
