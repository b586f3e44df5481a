"""Checkpoints: weights_only round trip with identical predictions, validation, RNG state."""

from __future__ import annotations

import collections
import json
import pathlib
import random

import numpy as np
import pytest
import torch

from psftr_core.runtime import checkpoint as ck
from psftr_core.config import apply_overrides, config_to_dict, preset
from psftr_core.errors import InputError
from psftr_core.infer.scoring import PostProcess
from train_helpers import TINY_OVERRIDES, one_thread


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    with one_thread():
        yield


def _tiny_model(seed: int = 0):
    from psftr_core.model import PSFTR

    cfg = apply_overrides(preset("thumos14"), TINY_OVERRIDES + ["model.feature_dim=32", "model.text_dim=32"])
    torch.manual_seed(seed)
    return PSFTR(cfg.model).eval(), cfg


SPEC = {"feature_dim": 32, "feature_fps": 3.75, "frames_per_feature": None, "clip_model": "ViT-B-16",
        "clip_pretrained": "openai", "clip_weights_id": "tag:openai", "text_source": "clip"}


def _ckpt(model, cfg):
    return ck.make_checkpoint(
        model=model, config=config_to_dict(cfg), preset="thumos14", feature_spec=SPEC, vocabulary=["a", "b"],
        split={"dataset": "d", "ratio": "75_25", "index": 0, "seen": ["a", "b"], "unseen": ["c"]},
        epoch=3, epochs_total=5, metrics={"train": {"loss": 1.5}},
        train_state={"rng": ck.capture_rng_state(), "seed": 0},
    )


def test_round_trip_gives_identical_predictions(tmp_path):
    model, cfg = _tiny_model()
    path = tmp_path / "last.pt"
    ck.save_checkpoint(path, _ckpt(model, cfg))
    raw = torch.load(path, weights_only=True)  # plain types + tensors only
    assert raw["vocabulary"] == ["a", "b"] and raw["epoch"] == 3 and raw["feature_spec"]["feature_dim"] == 32
    loaded, cfg2 = ck.build_model(ck.load_checkpoint(path))
    assert config_to_dict(cfg2) == config_to_dict(cfg)

    torch.manual_seed(1)
    feats = torch.randn(2, 64, 32)
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[1, 40:] = True
    text = torch.randn(3, 32)
    with torch.no_grad():
        a, b = (dict(out, scores=PostProcess.from_config(m.cfg).class_scores(out, feats, mask, text))
                for m in (model, loaded) for out in [m(feats, mask, text)])
    for key in ("scores", "pred_segments", "pred_logits", "saliency_logits"):
        assert torch.equal(a[key], b[key]), key


def test_load_errors_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        ck.load_checkpoint(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="not a complete PyTorch checkpoint file"):
        ck.load_checkpoint(garbage)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(InputError, match="the file is empty"):
        ck.load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(InputError, match="is a folder"):
        ck.load_checkpoint(tmp_path)
    # A zip checkpoint holding an arbitrary Python object: never unpickled, said in our words.
    torch.save({"format": ck.FORMAT, "payload": collections.OrderedDict(a=pathlib.PurePosixPath("/x"))},
               tmp_path / "objects.pt")
    with pytest.raises(InputError, match="Python objects other than tensors") as err:
        ck.load_checkpoint(tmp_path / "objects.pt")
    assert "weights_only" not in str(err.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    with pytest.raises(InputError, match="not a psftr checkpoint"):
        ck.load_checkpoint(foreign)
    model, cfg = _tiny_model()
    newer = _ckpt(model, cfg)
    newer["format_version"] = ck.FORMAT_VERSION + 1
    torch.save(newer, tmp_path / "newer.pt")
    with pytest.raises(InputError, match="newer"):
        ck.load_checkpoint(tmp_path / "newer.pt")
    # a truncated file (e.g. killed while copying) is refused cleanly
    good = tmp_path / "good.pt"
    ck.save_checkpoint(good, _ckpt(model, cfg))
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:2000])
    with pytest.raises(InputError, match="truncated"):
        ck.load_checkpoint(tmp_path / "cut.pt")


def test_feature_dimension_and_clip_model_mismatch():
    model, cfg = _tiny_model()
    ckpt = _ckpt(model, cfg)
    ck.check_feature_spec(ckpt, dict(SPEC))  # same features: fine
    ck.check_feature_spec(ckpt, dict(SPEC, clip_model="ViT-B-16-quickgelu"))  # same weights, other spelling
    ck.check_feature_spec(ckpt, dict(SPEC, clip_model=None))  # unknown: only the dimension is checked
    with pytest.raises(InputError, match=r"32-d features.*768-d"):
        ck.check_feature_spec(ckpt, dict(SPEC, feature_dim=768, clip_model="ViT-L-14"))
    with pytest.raises(InputError, match="CLIP ViT-B-32"):
        ck.check_feature_spec(ckpt, dict(SPEC, clip_model="ViT-B-32"))
    with pytest.raises(InputError, match="weights"):
        ck.check_feature_spec(ckpt, dict(SPEC, clip_pretrained="laion2b_s34b_b88k", clip_weights_id="tag:laion2b_s34b_b88k"))
    # the same weights file at another path is the same weights
    ck.check_feature_spec(ckpt, dict(SPEC, clip_pretrained="/elsewhere/openai.pt"))


def test_weights_that_do_not_fit_the_config():
    model, cfg = _tiny_model()
    ckpt = _ckpt(model, cfg)
    ckpt["config"]["model"]["dec_layers"] = 3
    with pytest.raises(InputError, match="do not fit"):
        ck.build_model(ckpt)


def test_rng_state_round_trip(tmp_path):
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    state = ck.capture_rng_state()
    torch.save(state, tmp_path / "rng.pt")
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    ck.restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_feature_spec_of_a_synthetic_dataset(tmp_path):
    from psftr_core.data.datasets import load_dataset
    from train_helpers import make_tiny_dataset

    root = make_tiny_dataset(tmp_path / "d", train_videos=2, test_videos=1)
    spec = ck.feature_spec_of(load_dataset(root))
    assert spec["feature_dim"] == 32 and spec["feature_fps"] == 3.75 and spec["text_source"] == "file"
    assert spec["clip_model"] is None
    # a folder written by `psftr extract` names its CLIP model in manifest.json
    (root / "manifest.json").write_text(json.dumps({"clip": {
        "model_name": "ViT-B-32", "pretrained": "/w/b32.pt", "weights_id": "sha256:abc"}}))
    spec = ck.feature_spec_of(load_dataset(root))
    assert (spec["clip_model"], spec["clip_pretrained"], spec["clip_weights_id"]) == ("ViT-B-32", "/w/b32.pt", "sha256:abc")
