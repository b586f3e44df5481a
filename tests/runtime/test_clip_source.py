"""Which CLIP encodes the class names: the features' record, the built-in convention, the flags."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures_clip import TINY_CLIP_CONFIG
from psftr_core.data.datasets import load_dataset
from psftr_core.errors import InputError
from psftr_core.features.text import TextTower, load_text_tower
from psftr_core.features.clip import same_clip_model
from psftr_core.runtime.clip_source import ClipRequest, checkpoint_text_tower, dataset_text_tower
from psftr_core.runtime.text_source import class_text_tower
from train_helpers import make_tiny_dataset


def sha256_id(path: Path) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def extracted_dataset(root: Path, clip_files, with_config: bool = True) -> Path:
    """A 64-d synthetic dataset without text_embeddings whose manifest says the tiny CLIP made it."""
    root = make_tiny_dataset(root, num_splits=1, train_videos=2, test_videos=2, feature_dim=64)
    yaml_path = root / "dataset.yaml"
    yaml_path.write_text("".join(line + "\n" for line in yaml_path.read_text().splitlines()
                                 if not line.startswith("text_embeddings")))
    clip = {"model_name": "my-clip", "pretrained": str(clip_files.weights), "weights_id": sha256_id(clip_files.weights),
            "embed_dim": 64, "config": TINY_CLIP_CONFIG if with_config else None}
    (root / "manifest.json").write_text(json.dumps({"generated_by": "psftr extract", "clip": clip}))
    return root


def loaded(data, request: ClipRequest | None = None):
    """The tower the text rule loads for every class of ``data`` (a dataset without a table)."""
    return class_text_tower(data, list(data.classes) or ["jump"], request)


def other_weights(folder: Path) -> Path:
    """Tiny-CLIP weights that differ from the fixture's (one tensor changed)."""
    import open_clip

    torch.manual_seed(1)
    path = folder / "other.pt"
    torch.save(open_clip.create_model("psftr-tiny-clip", pretrained=None).state_dict(), path)
    return path


def test_builtin_release_convention_and_local_weights(tmp_path, tiny_clip_files):
    root = tmp_path / "thumos14"
    (root / "features").mkdir(parents=True)
    np.save(root / "features" / "video_test_0000946.npy", np.zeros((104, 64), np.float16))
    thumos = load_dataset("thumos14", data_root=root)

    assert dataset_text_tower(thumos) == TextTower("ViT-B-16", "openai", "tag:openai")
    # A local copy of OpenAI's weights is built with QuickGELU, whatever the file is called.
    local = dataset_text_tower(thumos, ClipRequest(pretrained=str(tiny_clip_files.weights)))
    assert (local.model_name, local.pretrained, local.weights_id) == (
        "ViT-B-16-quickgelu", str(tiny_clip_files.weights), None)
    with pytest.raises(InputError, match=r"laion2b_s34b_b88k.*tag:openai"):
        dataset_text_tower(thumos, ClipRequest(pretrained="laion2b_s34b_b88k"))
    # --clip-config replaces the convention: named by its file stem, its content kept.
    custom = dataset_text_tower(thumos, ClipRequest(config_file=tiny_clip_files.config,
                                                    pretrained=str(tiny_clip_files.weights)))
    assert (custom.model_name, custom.config) == ("psftr-tiny-clip", TINY_CLIP_CONFIG)
    pinned = loaded(thumos, ClipRequest(config_file=tiny_clip_files.config, pretrained=str(tiny_clip_files.weights)))
    assert (pinned.model_name, pinned.config) == (custom.model_name, custom.config)
    assert (pinned.weights_id, pinned.embed_dim) == (sha256_id(tiny_clip_files.weights), 64)


def test_manifest_is_authoritative(tmp_path, tiny_clip_files):
    data = load_dataset(extracted_dataset(tmp_path / "data", tiny_clip_files))
    recorded = dataset_text_tower(data)
    assert (recorded.model_name, recorded.config, recorded.weights_id) == (
        "my-clip", TINY_CLIP_CONFIG, sha256_id(tiny_clip_files.weights))

    with pytest.raises(InputError, match=r"--clip-model ViT-B-32 differs from CLIP my-clip"):
        dataset_text_tower(data, ClipRequest(model="ViT-B-32"))
    assert dataset_text_tower(data, ClipRequest(model="my-clip")) == recorded
    bigger = tmp_path / "bigger.json"
    bigger.write_text(json.dumps({**TINY_CLIP_CONFIG, "embed_dim": 128}))
    with pytest.raises(InputError, match=r"--clip-config .*bigger.json is not the config of CLIP my-clip"):
        dataset_text_tower(data, ClipRequest(config_file=bigger))
    with pytest.raises(InputError, match=r"--clip-pretrained openai differs .*sha256:"):
        dataset_text_tower(data, ClipRequest(pretrained="openai"))

    # The same weights at another path (another machine's copy) are taken; other weights are not.
    copy = tmp_path / "copy" / "weights.pt"
    copy.parent.mkdir()
    copy.write_bytes(tiny_clip_files.weights.read_bytes())
    moved = loaded(data, ClipRequest(pretrained=str(copy)))
    assert moved.pretrained == str(copy) and moved.weights_id == recorded.weights_id
    other = other_weights(tmp_path)
    with pytest.raises(InputError) as err:
        loaded(data, ClipRequest(pretrained=str(other)))
    assert sha256_id(other) in str(err.value) and recorded.weights_id in str(err.value)


def test_a_recorded_weights_file_that_is_not_here_asks_for_a_copy(tmp_path, tiny_clip_files):
    root = extracted_dataset(tmp_path / "data", tiny_clip_files)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["clip"]["pretrained"] = "/elsewhere/weights.pt"
    (root / "manifest.json").write_text(json.dumps(manifest))
    data = load_dataset(root)
    with pytest.raises(InputError, match=r"names CLIP weights file /elsewhere/weights.pt \(sha256:.*--clip-pretrained"):
        loaded(data)
    copy = loaded(data, ClipRequest(pretrained=str(tiny_clip_files.weights)))
    assert copy.weights_id == sha256_id(tiny_clip_files.weights)


def test_the_custom_config_is_rebuilt_from_its_content(tmp_path, tiny_clip_files, tiny_clip):
    """No config file and no registered name needed: the recorded content builds the same model."""
    tower = TextTower("never-registered-clip", str(tiny_clip_files.weights), config=TINY_CLIP_CONFIG)
    handle = load_text_tower(tower)
    assert handle.model_name == "never-registered-clip" and handle.config_sha256 == tiny_clip.config_sha256
    tokens = tiny_clip.tokenizer(["a video of a person doing jump"])
    with torch.no_grad():
        assert torch.equal(handle.model.encode_text(tokens), tiny_clip.model.encode_text(tokens))


def test_text_width_must_be_the_feature_width(tmp_path, tiny_clip_files):
    root = make_tiny_dataset(tmp_path / "data", num_splits=1, train_videos=2, test_videos=2, feature_dim=32)
    (root / "dataset.yaml").write_text("".join(line + "\n" for line in (root / "dataset.yaml").read_text().splitlines()
                                               if not line.startswith("text_embeddings")))
    data = load_dataset(root)
    with pytest.raises(InputError, match=r"gives 64-d embeddings, but dataset .* has 32-d features"):
        loaded(data, ClipRequest(config_file=tiny_clip_files.config, pretrained=str(tiny_clip_files.weights)))


def test_checkpoint_record_and_flags():
    ckpt = {"text_clip": {"model_name": "my-clip", "pretrained": "/gone/w.pt", "weights_id": "sha256:ab",
                          "config": TINY_CLIP_CONFIG, "config_sha256": "cd", "embed_dim": 64}}
    tower = checkpoint_text_tower(ckpt, where="runs/x/last.pt")
    assert tower == TextTower("my-clip", "/gone/w.pt", "sha256:ab", TINY_CLIP_CONFIG, "cd", 64)
    assert tower.source == "checkpoint runs/x/last.pt"
    assert TextTower.from_dict(tower.to_dict(), "again") == tower
    assert checkpoint_text_tower({"text_clip": None}) is None and checkpoint_text_tower({}) is None
    with pytest.raises(InputError, match="--clip-model ViT-L-14 differs from CLIP my-clip of checkpoint"):
        checkpoint_text_tower(ckpt, ClipRequest(model="ViT-L-14"))
    assert same_clip_model("ViT-B/16", "vit-b-16-quickgelu") and not same_clip_model("ViT-B-16", "ViT-B-32")

    # Trained with the `openai` tag, evaluated offline with a local copy of those weights.
    by_tag = {"text_clip": {"model_name": "ViT-B-16", "pretrained": "openai", "weights_id": "tag:openai"}}
    copy = checkpoint_text_tower(by_tag, ClipRequest(pretrained="/models/clip/ViT-B-16.pt"))
    assert (copy.model_name, copy.pretrained, copy.weights_id) == ("ViT-B-16-quickgelu", "/models/clip/ViT-B-16.pt",
                                                                    None)
    with pytest.raises(InputError, match=r"--clip-pretrained laion2b_s34b_b88k differs .*\(tag:openai\)"):
        checkpoint_text_tower(by_tag, ClipRequest(pretrained="laion2b_s34b_b88k"))
