"""Offline, with a local CLIP weights file: ``psftr train`` and ``psftr evaluate`` on the
published THUMOS14 layout (``$PSFTR_DATA/thumos14``), and ``psftr text-embeddings`` so that
a machine without the weights can train (issue 16).

The features are generated, 64-d (the tiny CLIP's width), for a few real THUMOS14 ids:
three ``val`` videos with seen classes of split 75_25/0 and two ``test`` videos with
unseen ones. HF_HUB_OFFLINE=1 (conftest): nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures_clip import TINY_CLIP_CONFIG
from psftr_core.data.reference_files import reference_json
from psftr_core.defaults import DEFAULT_PROMPT
from train_helpers import TINY_OVERRIDES, psftr_main as psftr

TRAIN_IDS = ["video_validation_0000190", "video_validation_0000986", "video_validation_0000269"]
TEST_IDS = ["video_test_0000541", "video_test_0000946"]  # SoccerPenalty, BaseballPitch: unseen in 75_25/0
FAST = ["--epochs", "1", "--seed", "0", "--device", "cpu", *[x for kv in TINY_OVERRIDES for x in ("--set", kv)]]


@pytest.fixture
def psftr_data(tmp_path, monkeypatch) -> Path:
    """``$PSFTR_DATA`` holding ``thumos14/features/<id>.npy`` [T, 64] (T from the shipped feature info)."""
    info = reference_json("thumos14_feature_info_8frame.json")
    features = tmp_path / "data" / "thumos14" / "features"
    features.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for video_id in TRAIN_IDS + TEST_IDS:
        length = info[video_id]["snippet_length"]
        np.save(features / f"{video_id}.npy", rng.standard_normal((length, 64)).astype(np.float16))
    monkeypatch.setenv("PSFTR_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def test_train_and_evaluate_thumos14_offline_with_a_local_weights_file(psftr_data, tiny_clip_files, tiny_clip,
                                                                        capsys, torch_one_thread):
    clip = ["--clip-config", tiny_clip_files.config, "--clip-pretrained", tiny_clip_files.weights]
    assert psftr(["train", "--dataset", "thumos14", "--split", "75_25", "--output", "runs/t", *clip, *FAST]) == 0
    ckpt = torch.load("runs/t/last.pt", weights_only=True)
    sha = hashlib.sha256(tiny_clip_files.weights.read_bytes()).hexdigest()
    assert ckpt["text_clip"]["model_name"] == "psftr-tiny-clip"
    assert ckpt["text_clip"]["config"] == TINY_CLIP_CONFIG  # rebuildable without the file
    assert ckpt["text_clip"]["weights_id"] == f"sha256:{sha}" and ckpt["text_clip"]["embed_dim"] == 64
    assert ckpt["feature_spec"]["clip_model"] == "ViT-B-16" and ckpt["feature_spec"]["text_source"] == "clip"
    capsys.readouterr()

    # evaluate takes the text tower from the checkpoint: no --clip-* needed.
    assert psftr(["evaluate", "--checkpoint", "runs/t", "--dataset", "thumos14", "--split", "75_25", "--device",
                  "cpu", "--json", "--save-predictions", "clip.json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "psftr" and result["tious"] == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])
    assert sorted(json.loads(Path("clip.json").read_text())["results"]) == TEST_IDS

    # The class names encoded once into $PSFTR_DATA/thumos14/text_embeddings.npz ...
    assert psftr(["text-embeddings", "--dataset", "thumos14", *clip, "--device", "cpu"]) == 0
    table_path = psftr_data / "thumos14" / "text_embeddings.npz"
    assert capsys.readouterr().out.strip() == str(table_path)
    classes = (Path(__file__).resolve().parents[2] / "psftr_core/data/reference/thumos14_classes.txt")
    names = [line for line in classes.read_text().splitlines() if line.strip()]
    from psftr_core.features.clip import encode_texts

    expected = encode_texts(tiny_clip, names, prompt=DEFAULT_PROMPT)  # the fixture's own load of the tiny CLIP
    with np.load(table_path) as table:
        assert sorted(table.files) == sorted(names)
        np.testing.assert_allclose(np.stack([table[n] for n in names]), expected, rtol=1e-5, atol=1e-6)

    # ... give the same detections with no CLIP at all, and training needs none either.
    assert psftr(["evaluate", "--checkpoint", "runs/t", "--dataset", "thumos14", "--split", "75_25", "--device",
                  "cpu", "--json", "--save-predictions", "table.json"]) == 0
    with_clip = json.loads(Path("clip.json").read_text())["results"]
    with_table = json.loads(Path("table.json").read_text())["results"]
    for video in TEST_IDS:
        assert [d["label"] for d in with_table[video]] == [d["label"] for d in with_clip[video]]
        np.testing.assert_allclose([d["score"] for d in with_table[video]], [d["score"] for d in with_clip[video]],
                                   rtol=1e-4, atol=1e-6)
    assert psftr(["train", "--dataset", "thumos14", "--split", "75_25", "--output", "runs/t2", *FAST]) == 0
    ckpt2 = torch.load("runs/t2/last.pt", weights_only=True)
    assert ckpt2["text_clip"] is None and ckpt2["feature_spec"]["text_source"] == "file"
    assert psftr(["text-embeddings", "--dataset", "thumos14", *clip]) == 2  # never replaced silently
    assert f"{table_path} exists" in capsys.readouterr().err


def test_thumos14_without_weights_names_the_flag_and_writes_nothing(psftr_data, capsys):
    import open_clip

    from psftr_core.features.clip_weights import cached_tag_file

    if cached_tag_file(open_clip.get_pretrained_cfg("ViT-B-16-quickgelu", "openai")):
        pytest.skip("the OpenAI ViT-B/16 weights are cached on this machine")
    assert psftr(["train", "--dataset", "thumos14", "--split", "75_25", "--output", "runs/t", "--device", "cpu"]) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("psftr: error:")]
    assert error.startswith("psftr: error: CLIP weights ViT-B-16-quickgelu/openai are not cached")
    assert "--clip-pretrained PATH" in error  # which train now has:
    assert not Path("runs/t").exists()
    assert psftr(["train", "-h"]) == 0 and "--clip-pretrained" in capsys.readouterr().out


def test_text_tower_width_must_match_the_features(psftr_data, tiny_clip_files, capsys):
    for path in (psftr_data / "thumos14" / "features").glob("*.npy"):
        np.save(path, np.zeros((np.load(path).shape[0], 16), np.float16))
    assert psftr(["train", "--dataset", "thumos14", "--split", "75_25", "--output", "runs/t", "--clip-config",
                  tiny_clip_files.config, "--clip-pretrained", tiny_clip_files.weights, *FAST]) == 2
    err = capsys.readouterr().err
    assert "gives 64-d embeddings, but dataset thumos14 has 16-d features" in err
    assert not Path("runs/t").exists()
