"""A checkpoint's structure is checked up front (issue 27, mechanism 7): every problem is
an InputError naming the file and the field; torch files are read in psftr's words."""

from __future__ import annotations

import os
import pickle
import shlex
from pathlib import Path

import pytest
import torch

from psftr_core.config import apply_overrides, config_to_dict, preset
from psftr_core.errors import InputError
from psftr_core.features.clip_weights import WeightsSource, refuse_unsafe_weights
from psftr_core.io.safe_load import check_tensors_only, load_tensors
from psftr_core.runtime import checkpoint as ck
from train_helpers import TINY_OVERRIDES, one_thread

PATH = "runs/x/last.pt"  # validate_checkpoint only names it
WEIGHT = "input_proj.weight"


@pytest.fixture(scope="module")
def good() -> dict:
    """A complete checkpoint dict of a tiny PSFTR (every optional field present)."""
    from psftr_core.model import PSFTR

    cfg = apply_overrides(preset("thumos14"), TINY_OVERRIDES + ["model.feature_dim=32", "model.text_dim=32"])
    with one_thread():
        torch.manual_seed(0)
        model = PSFTR(cfg.model)
    return ck.make_checkpoint(
        model=model, config=config_to_dict(cfg), preset="thumos14",
        feature_spec={"feature_dim": 32, "feature_fps": 3.75, "frames_per_feature": None, "clip_model": "ViT-B-16",
                      "clip_pretrained": "openai", "clip_weights_id": "tag:openai", "text_source": "clip"},
        vocabulary=["a", "b"],
        split={"dataset": "d", "ratio": "75_25", "index": 0, "seen": ["a", "b"], "unseen": ["c"]},
        epoch=3, epochs_total=5, metrics={"train": {"loss": 1.5}},
        train_state={"optimizer": {}, "scaler": {}, "rng": ck.capture_rng_state(), "seed": 0,
                     "best_score": float("-inf"), "epoch_losses": [2.0, 1.5]},
        text_clip={"model_name": "ViT-B-16", "pretrained": "openai", "weights_id": "tag:openai", "config": None,
                   "config_sha256": None, "embed_dim": 512},
        calibration={"score_threshold": 0.2},
    )


def changed(ckpt: dict, dotted: str, value: object) -> dict:
    """A copy of ``ckpt`` with the field at ``dotted`` (``a:b``) set to ``value`` (a function: of
    the old value; DELETE: removed)."""
    out = {**ckpt, "config": {k: dict(v) for k, v in ckpt["config"].items()}, "model_state": dict(ckpt["model_state"])}
    *parents, last = dotted.split(":")
    holder = out
    for key in parents:
        holder[key] = dict(holder[key]) if isinstance(holder[key], dict) else holder[key]
        holder = holder[key]
    if value is DELETE:
        del holder[last]
    else:
        holder[last] = value(holder[last]) if callable(value) else value
    return out


DELETE = object()

# (field path, new value or function of the old one, what the message must say)
WRONG = [
    ("config", "thumos14", "config must be a mapping, got a string: 'thumos14'"),
    ("config", [1, 2], "config must be a mapping, got a list"),
    ("config:model", [1], "config.model must be a mapping, got a list"),
    ("config:model:num_queries", 0, "config: "),
    ("config:model:nonsense", 1, "model.nonsense"),
    ("feature_spec", [32, 3.75], "feature_spec must be a mapping, got a list"),
    ("feature_spec:feature_dim", "32", "feature_spec.feature_dim must be an integer, got a string: '32'"),
    ("feature_spec:feature_dim", 0, "feature_spec.feature_dim must be >= 1, got 0"),
    ("feature_spec:feature_fps", float("nan"), "feature_spec.feature_fps must be > 0, got nan"),
    ("feature_spec:clip_model", 16, "feature_spec.clip_model must be a string, got an integer: 16"),
    ("vocabulary", [1, 2], "vocabulary[0] must be a string, got an integer: 1"),
    ("vocabulary", "ab", "vocabulary must be a list, got a string"),
    ("split", "75_25", "split must be a mapping, got a string"),
    ("split:index", "0", "split.index must be an integer, got a string"),
    ("split:unseen", ["c", None], "split.unseen[1] must be a string, got null"),
    ("epoch", float("nan"), "epoch must be an integer, got a number: nan"),
    ("epoch", True, "epoch must be an integer, got a boolean: True"),
    ("preset", ["thumos14"], "preset must be a string, got a list"),
    ("text_clip", "ViT-B-16", "text_clip must be a mapping, got a string"),
    ("text_clip:embed_dim", 512.0, "text_clip.embed_dim must be an integer, got a number: 512.0"),
    ("train_state:epoch_losses", "2.0", "train_state.epoch_losses must be a list"),
    ("model_state", [1], "model_state must be a mapping, got a list"),
    (f"model_state:{WEIGHT}", "0.1 0.2", f"model_state.{WEIGHT} must be a tensor, got a string"),
    (f"model_state:{WEIGHT}", DELETE, f"model_state lacks 1 tensor(s) of its config's model ({WEIGHT})"),
    ("model_state:extra.weight", torch.zeros(2), "model_state has 1 tensor(s) its config's model lacks (extra.weight)"),
    (f"model_state:{WEIGHT}", lambda t: t[:, :-1].clone(), f"model_state.{WEIGHT} is a torch.float32 tensor of shape"),
    (f"model_state:{WEIGHT}", lambda t: t.long(), f"model_state.{WEIGHT} is a torch.int64 tensor"),
    ("config:model:dec_layers", 3, "model_state lacks"),  # weights of a 2-layer decoder, config of 3
]


def test_a_complete_checkpoint_passes(good):
    ck.validate_checkpoint(good, PATH)


@pytest.mark.parametrize("dotted, value, words", WRONG, ids=[f"{d}={v!r:.20}" for d, v, _ in WRONG])
def test_a_wrong_field_is_named_with_the_file(good, dotted, value, words):
    with pytest.raises(InputError) as err:
        ck.validate_checkpoint(changed(good, dotted, value), PATH)
    message = str(err.value)
    assert message.startswith(f"checkpoint {PATH}: ") and words in message, message
    assert "\n" not in message


def test_older_files_without_the_optional_fields_pass(good):
    old = {k: v for k, v in good.items() if k not in ("psftr_version", "preset", "epochs_total", "metrics",
                                                      "text_clip", "calibration", "train_state")}
    old["feature_spec"] = {"feature_dim": 32}
    old["split"] = {}
    ck.validate_checkpoint(old, PATH)


def test_null_where_allowed_passes(good):
    ck.validate_checkpoint(changed(changed(good, "text_clip", None), "feature_spec:feature_fps", None), PATH)


def test_schema_problem_names_the_nested_place():
    schema = ck.Field("mapping", keys={"a": ck.Field("list", items=ck.Field("integer", bound=">= 0"))})
    assert ck.schema_problem({"a": [1, "x"]}, schema) == "a[1] must be an integer, got a string: 'x'"
    assert ck.schema_problem({"a": [1, -2]}, schema) == "a[1] must be >= 0, got -2"
    assert ck.schema_problem({"a": [], "other": object()}, schema) is None  # unknown keys are not checked


def test_load_checkpoint_refuses_a_saved_bad_field(good, tmp_path):
    path = tmp_path / "last.pt"
    torch.save(changed(good, "feature_spec", [32]), path)
    with pytest.raises(InputError, match=f"checkpoint {path}: feature_spec must be a mapping, got a list"):
        ck.load_checkpoint(path)


# ----------------------------------------------------------------------------- safe loading


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def assert_refused_in_our_words(path: Path, what: str = "X") -> str:
    with pytest.raises(InputError) as err:
        load_tensors(path, what)
    message = str(err.value)
    assert str(path) in message and "weights_only" not in message and "torch.serialization" not in message
    return message


def test_a_pickle_that_runs_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "PWNED"
    torch.save({"w": torch.zeros(2), "x": _Exploit(marker)}, tmp_path / "evil.pt")
    torch.save({"x": _Exploit(marker)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps(_Exploit(marker), protocol=2))
    for name in ("evil.pt", "legacy.pt", "raw.pkl"):
        message = assert_refused_in_our_words(tmp_path / name, "CLIP weights file")
        assert message.startswith(f"CLIP weights file {tmp_path / name} is not a plain weights file"), message
        assert "never runs code" in message
    with pytest.raises(InputError, match="not a plain weights file"):
        check_tensors_only(tmp_path / "evil.pt", "X")  # the mapped check reads the same pickle
    assert not marker.exists()


def test_damaged_or_foreign_bytes_are_not_called_unsafe(tmp_path):
    torch.save({"w": torch.arange(1000.0)}, tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pt").write_text("not weights\n" * 10, encoding="utf-8")
    (tmp_path / "raw5.pkl").write_bytes(pickle.dumps([1, 2], protocol=5))  # no pickle torch.save writes
    (tmp_path / "empty.pt").write_bytes(b"")
    for name in ("cut.pt", "text.pt", "raw5.pkl"):
        assert "damaged, truncated or not written by torch.save" in assert_refused_in_our_words(tmp_path / name)
    assert "the file is empty" in assert_refused_in_our_words(tmp_path / "empty.pt")
    assert torch.equal(load_tensors(tmp_path / "good.pt", "X")["w"], torch.arange(1000.0))
    check_tensors_only(tmp_path / "good.pt", "X")


def test_clip_weights_that_would_run_code_are_refused(tmp_path):
    marker = tmp_path / "PWNED"
    torch.save({"x": _Exploit(marker)}, tmp_path / "evil.pt")
    with pytest.raises(InputError, match=f"CLIP weights file {tmp_path / 'evil.pt'} is not a plain weights file"):
        refuse_unsafe_weights(WeightsSource(str(tmp_path / "evil.pt"), "sha256:x", file=str(tmp_path / "evil.pt")))
    assert not marker.exists()
    # formats open_clip reads without unpickling, and a hash-verified official file, are not opened here
    (tmp_path / "w.safetensors").write_bytes(b"whatever")
    safetensors = str(tmp_path / "w.safetensors")
    refuse_unsafe_weights(WeightsSource(safetensors, "sha256:y", file=safetensors))
    refuse_unsafe_weights(WeightsSource("openai", "tag:openai", file=str(tmp_path / "evil.pt"), weights_only=False))
    refuse_unsafe_weights(WeightsSource(None, "random"))


def test_checking_the_weights_draws_no_random_numbers(good):
    state = torch.get_rng_state()
    ck.validate_checkpoint(good, PATH)
    assert torch.equal(torch.get_rng_state(), state)
