"""train and evaluate encode class names with ``data.prompts`` and
``data.descriptions_file`` (prompt ensembling), by the one rule detect uses."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from psftr_core.config import DataConfig, PSFTRConfig, apply_overrides
from psftr_core.data.vocabulary import TextRecipe
from psftr_core.errors import InputError
from psftr_core.features.clip import encode_text_lists
from psftr_core.features.text import TextTower
from psftr_core.runtime.inputs import class_text
from psftr_core.runtime.text_source import class_prompt


def test_plain_config_keeps_the_one_prompt(tmp_path):
    assert class_prompt(DataConfig(prompt="a clip of {}"), SimpleNamespace(root=tmp_path)) == "a clip of {}"


def test_templates_and_a_descriptions_file_in_the_dataset_folder(tmp_path):
    (tmp_path / "descriptions.yaml").write_text("Diving: [a person jumps into water, a diver somersaults]\n"
                                                "running: []\n", encoding="utf-8")
    cfg = apply_overrides(PSFTRConfig(), ["data.prompts=[a video of {}, {} in a clip]",
                                          "data.descriptions_file=descriptions.yaml"])
    recipe = class_prompt(cfg.data, SimpleNamespace(root=tmp_path))
    assert recipe == TextRecipe(("a video of {}", "{} in a clip"),
                                {"diving": ("a person jumps into water", "a diver somersaults")})
    only_file = class_prompt(dataclasses.replace(cfg.data, prompts=()), SimpleNamespace(root=tmp_path))
    assert only_file.templates == (cfg.data.prompt,)  # the descriptions add to data.prompt
    with pytest.raises(InputError, match="missing.yaml"):
        class_prompt(dataclasses.replace(cfg.data, descriptions_file="missing.yaml"), SimpleNamespace(root=tmp_path))
    with pytest.raises(InputError, match="data.prompts: each template must contain"):
        apply_overrides(PSFTRConfig(), ["data.prompts=[no braces]"])


def test_class_text_is_the_normalised_mean_of_each_class_texts(tmp_path, tiny_clip_files, tiny_clip):
    tower = TextTower(model_name=tiny_clip_files.name, pretrained=str(tiny_clip_files.weights), config=None,
                      source="the test")
    (tmp_path / "d.tsv").write_text("diving\ta person jumps into water\n", encoding="utf-8")
    data = DataConfig(prompt="a video of {}", descriptions_file="d.tsv")
    dataset = SimpleNamespace(root=tmp_path, text_embeddings=None, prompt=None, feature_dim=tiny_clip.embed_dim)
    got = class_text(dataset, ["diving", "running"], tower, class_prompt(data, dataset), tmp_path / "cache").numpy()
    expected = encode_text_lists(tiny_clip, [["a video of diving", "a person jumps into water"],
                                             ["a video of running"]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    plain = class_text(dataset, ["diving"], tower, "a video of {}", tmp_path / "cache").numpy()
    assert not np.allclose(got[0] / np.linalg.norm(got[0]), plain[0] / np.linalg.norm(plain[0]), atol=1e-3)


def test_training_calibration_and_evaluation_ask_for_the_recipe(monkeypatch, tmp_path):
    """Each route to class text goes through class_prompt (a wiring check on the call sites)."""
    import ast
    from pathlib import Path

    core = Path(__file__).resolve().parents[2] / "psftr_core"
    for module in ("train/run.py", "train/calibration.py", "evaluation/protocol.py"):
        tree = ast.parse((core / module).read_text(encoding="utf-8"))
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and getattr(node.func, "id", None) == "class_text"]
        assert calls, module
        for call in calls:
            text = ast.unparse(call)
            assert "cfg.data.prompt" not in text, f"{module}: {text} bypasses class_prompt"


def test_a_training_run_reads_its_descriptions_file_once(monkeypatch, tmp_path):
    """train, its calibration (every fold) and --eval-every share the run's one reading."""
    from psftr_core.runtime import text_source
    from psftr_core.train import run
    from train_helpers import make_tiny_dataset, request

    data = make_tiny_dataset(tmp_path / "data")
    (data / "descriptions.tsv").write_text("class0\ta planted action\n", encoding="utf-8")
    reads = []
    real = text_source.read_action_texts
    monkeypatch.setattr(text_source, "read_action_texts", lambda path: reads.append(path) or real(path))
    base = request(data, tmp_path / "run")
    run.train(request(data, tmp_path / "run", epochs=1, calibrate=True, eval_every=1,
                      overrides=list(base.overrides) + ["data.descriptions_file=descriptions.tsv",
                                                        "train.calibration_folds=2"]))
    assert reads == [data / "descriptions.tsv"]
