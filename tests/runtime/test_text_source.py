"""The one text rule (``psftr_core.runtime.text_source``), through train's ``class_text``,
evaluate's ``class_text_tower`` and detect's ``vocabulary_text_embeddings`` alike."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from fixtures_clip import TINY_CLIP_CONFIG
from psftr_core.data.datasets import load_dataset
from psftr_core.defaults import DEFAULT_PROMPT
from psftr_core.errors import InputError
from psftr_core.features.clip import encode_texts
from psftr_core.runtime import text_source
from psftr_core.runtime.clip_source import ClipRequest
from psftr_core.runtime.inputs import class_text
from psftr_core.runtime.text_source import ClipProvider, class_text_tower, vocabulary_text_embeddings
from train_helpers import make_tiny_dataset

SEEN = ["group0 action00", "group0 action02"]  # two classes of the synthetic table


def sha256_id(path: Path) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tiny_dataset(root: Path, clip_files=None, table: bool = True):
    """A 64-d synthetic dataset, with its text_embeddings table or not, whose manifest
    (with ``clip_files``) says the tiny CLIP made the features."""
    root = make_tiny_dataset(root, num_splits=1, train_videos=2, test_videos=2, feature_dim=64)
    if not table:
        yaml_path = root / "dataset.yaml"
        yaml_path.write_text("".join(line + "\n" for line in yaml_path.read_text().splitlines()
                                     if not line.startswith("text_embeddings")))
    if clip_files is not None:
        clip = {"model_name": "my-clip", "pretrained": str(clip_files.weights), "embed_dim": 64,
                "weights_id": sha256_id(clip_files.weights), "config": TINY_CLIP_CONFIG}
        (root / "manifest.json").write_text(json.dumps({"generated_by": "psftr extract", "clip": clip}))
    return load_dataset(root)


@pytest.fixture
def warnings_logged():
    """The warnings the rule logs (train and evaluate have no warnings list)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(text_source.__name__)
    logger.addHandler(handler)
    yield lambda: [r.getMessage() for r in records]
    logger.removeHandler(handler)


def detect_path(vocabulary, dataset, cache, request: ClipRequest | None = None):
    """What ``psftr detect --features`` asks for: (vectors, description, warnings)."""
    request = request or ClipRequest()
    clip = ClipProvider(request.model, request.pretrained, request.config_file, "cpu", cache)
    warnings: list[str] = []
    text, note = vocabulary_text_embeddings(vocabulary, clip, None, dataset_table=dataset.text_embeddings,
                                            warnings=warnings, dataset=dataset)
    return text, note, warnings, clip


def test_a_full_table_is_used_without_loading_clip(tmp_path, monkeypatch, warnings_logged):
    def no_clip(*args, **kwargs):
        raise AssertionError("CLIP loaded")

    monkeypatch.setattr("psftr_core.features.text.shared_clip", no_clip)
    data = tiny_dataset(tmp_path / "data")
    vocabulary = [SEEN[0].upper(), SEEN[1]]  # names match case-insensitively
    expected = np.stack([data.text_embeddings[name] for name in SEEN])

    text, note, warnings, clip = detect_path(vocabulary, data, tmp_path / "cache")
    np.testing.assert_array_equal(text, expected)
    assert (note, warnings, clip._handle) == ("the dataset's text_embeddings", [], None)
    np.testing.assert_array_equal(class_text(data, vocabulary).numpy(), expected)
    assert class_text_tower(data, vocabulary) is None and warnings_logged() == []
    with pytest.raises(InputError, match="CLIP config file not found"):  # flags are checked all the same
        class_text_tower(data, vocabulary, ClipRequest(config_file=tmp_path / "nope.json"))


@pytest.mark.parametrize("case", ["full table", "table lacks one", "no table"])
def test_train_evaluate_and_detect_get_the_same_vectors(case, tmp_path, tiny_clip_files, tiny_clip,
                                                        warnings_logged):
    data = tiny_dataset(tmp_path / "data", tiny_clip_files, table=case != "no table")
    vocabulary = SEEN + (["surfing"] if case == "table lacks one" else [])
    if case == "full table":
        expected = np.stack([data.text_embeddings[name] for name in SEEN])
    else:  # every name through the features' CLIP (the manifest's), none from the table
        expected = encode_texts(tiny_clip, vocabulary, prompt=DEFAULT_PROMPT)

    detected, _, warnings, _ = detect_path(vocabulary, data, tmp_path / "cache")
    trained = class_text(data, vocabulary, cache_dir=tmp_path / "cache").numpy()
    tower = class_text_tower(data, vocabulary)  # evaluate's choice, then its text
    evaluated = class_text(data, vocabulary, tower, cache_dir=tmp_path / "cache").numpy()
    for text in (detected, trained, evaluated):
        np.testing.assert_allclose(text, expected, rtol=1e-5, atol=1e-6)
    if case == "table lacks one":
        (warning,) = warnings
        assert warning.startswith("no text embedding for action 'surfing' (1 of 3 actions) in the dataset's "
                                  "text_embeddings: all actions are encoded with CLIP my-clip")
        assert warnings_logged() == [warning, warning]  # class_text, class_text_tower: one each
    else:
        assert warnings == [] and warnings_logged() == []
    assert (tower is None) == (case == "full table")
    if tower is not None:
        assert (tower.model_name, tower.weights_id) == ("my-clip", sha256_id(tiny_clip_files.weights))
        assert len(list((tmp_path / "cache" / "text").glob("*.npy"))) == len(vocabulary)  # one cache for all


def test_a_partial_table_without_a_known_clip_is_an_input_error(tmp_path):
    data = tiny_dataset(tmp_path / "data")  # synthetic: records no CLIP
    message = (r"no text embedding for action 'surfing' \(1 of 2 actions\) in the dataset's text_embeddings, "
               r"and the dataset does not record which CLIP model made its features; use its names "
               r"\('group0 action00', 'group0 action02', .*\) or name the model with --clip-model")
    with pytest.raises(InputError, match=message):
        class_text(data, [SEEN[0], "surfing"])
    with pytest.raises(InputError, match=message):
        detect_path([SEEN[0], "surfing"], data, tmp_path / "cache")


def test_which_record_decides(tmp_path, tiny_clip_files):
    data = tiny_dataset(tmp_path / "data", tiny_clip_files)
    clip = ClipProvider.from_request()
    assert not clip.known and clip.tower.model_name == "ViT-B-16"
    clip.adopt("ViT-B-16", "openai", "the checkpoint")  # a feature spec: the weights known by their tag
    assert clip.known and clip.tower.weights_id == "tag:openai"
    clip.adopt_dataset(data)  # the manifest outranks a feature spec
    assert (clip.tower.model_name, clip.tower.source) == (
        "my-clip", f"the features' manifest {data.root}/manifest.json")
    clip.adopt(None, None, "the checkpoint", text_clip={"model_name": "other-clip", "weights_id": "sha256:ab"})
    assert clip.tower.model_name == "other-clip"  # the checkpoint's text_clip outranks both


def tiny_checkpoint(path: Path, data, feature_spec: dict, text_clip: dict | None = None) -> Path:
    import torch

    from psftr_core.config import config_to_dict, preset
    from psftr_core.model import PSFTR
    from psftr_core.runtime.checkpoint import make_checkpoint, save_checkpoint

    cfg = preset("thumos14")
    cfg.model = dataclasses.replace(cfg.model, feature_dim=64, text_dim=64, hidden_dim=32, num_heads=4, num_groups=8,
                                    enc_layers=1, dec_layers=1, num_queries=8, dim_feedforward=64)
    torch.manual_seed(0)
    split = data.split("75_25", 0)
    ckpt = make_checkpoint(model=PSFTR(cfg.model), config=config_to_dict(cfg), preset="thumos14",
                           feature_spec={"feature_dim": 64, "feature_fps": 3.75, "frames_per_feature": None,
                                         **feature_spec},
                           vocabulary=list(split.seen), split={"dataset": data.name, "ratio": "75_25", "index": 0},
                           epoch=1, epochs_total=1, text_clip=text_clip)
    save_checkpoint(path, ckpt)
    return path


def test_other_weights_than_the_checkpoint_are_refused_in_detect_as_in_evaluate(tmp_path, tiny_clip_files):
    from psftr_core.evaluation.protocol import evaluate_checkpoint
    from psftr_core.infer.detect import detect

    # Recorded by tag (the feature spec): another tag is refused before anything loads.
    data = tiny_dataset(tmp_path / "plain", table=False)
    path = tiny_checkpoint(tmp_path / "tag.pt", data, {"clip_model": "ViT-B-16", "clip_pretrained": "openai"})
    refused = (r"--clip-pretrained laion2b_s34b_b88k differs from the weights of "
               r"(the checkpoint|checkpoint \S+) \(tag:openai\)")
    with pytest.raises(InputError, match=refused):
        evaluate_checkpoint(path, data, "75_25", 0, device="cpu", clip=ClipRequest(pretrained="laion2b_s34b_b88k"))
    with pytest.raises(InputError, match=refused):
        detect([], ["jump"], features_dir=data.root, checkpoint=path, clip_pretrained="laion2b_s34b_b88k",
               device="cpu")

    # Recorded by sha256 (text_clip): a file with other weights is refused when loaded.
    import open_clip
    import torch

    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    torch.save(open_clip.create_model("psftr-tiny-clip", pretrained=None).state_dict(), other)
    data = tiny_dataset(tmp_path / "extracted", tiny_clip_files, table=False)
    text_clip = {"model_name": "my-clip", "pretrained": str(tiny_clip_files.weights), "config": TINY_CLIP_CONFIG,
                 "weights_id": sha256_id(tiny_clip_files.weights), "embed_dim": 64}
    spec = {"clip_model": "my-clip", "clip_pretrained": str(tiny_clip_files.weights),
            "clip_weights_id": sha256_id(tiny_clip_files.weights)}
    path = tiny_checkpoint(tmp_path / "sha.pt", data, spec, text_clip)
    refused = (rf"CLIP weights {other} are {sha256_id(other)}, but .*checkpoint.* used "
               rf"{sha256_id(tiny_clip_files.weights)}")
    with pytest.raises(InputError, match=refused):
        evaluate_checkpoint(path, data, "75_25", 0, device="cpu", clip=ClipRequest(pretrained=str(other)))
    clip = ClipProvider(None, str(other), None, "cpu", tmp_path / "cache")
    clip.adopt(spec["clip_model"], spec["clip_pretrained"], "the checkpoint", weights_id=spec["clip_weights_id"],
               text_clip=text_clip)  # what detect's checkpoint gives
    with pytest.raises(InputError, match=refused):
        vocabulary_text_embeddings(["jump"], clip, None, warnings=[], dataset=data)
