"""Rows of the bad-input matrix for issue 27 (checkpoints): see bad_input_cases for the row format.

Mechanism 7: a checkpoint whose fields have the wrong type, or whose weights do not fit
its config, is refused (exit 2) with one line naming the file and the field, before the
model is built; a weights file holding Python objects (``--clip-pretrained``) is refused
without passing on torch's advice to load it with ``weights_only=False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from bad_input_cases import (Case, Result, Scene, all_of, check_checkpoint_message_complete, check_not_pwned,
                             evil_checkpoint, tiny_dataset)

D = "detect {videos} -a walking {clip}"
E = "evaluate --dataset {ds} --split 75_25 --checkpoint {bad}"
WEIGHT = "input_proj.weight"  # a tensor every PSFTR has


def checkpoint_variant(change: Callable[[dict], Any], name: str = "bad") -> Callable[[Scene], None]:
    """The session's real checkpoint with ``change(ckpt)`` applied, saved as ``{name}``."""

    def setup(scene: Scene) -> None:
        import torch

        ckpt = torch.load(scene.fixture("bad_inputs_checkpoint"), weights_only=True)
        change(ckpt)
        torch.save(ckpt, scene.new(name, scene.tmp / f"{name}.pt"))

    return setup


def tiny_clip_config(scene: Scene) -> None:
    """``{clip_config}``: the tiny CLIP's config file (``--clip-pretrained`` given by the row)."""
    scene.new("clip_config", Path(scene.fixture("tiny_clip_files").config))


def replace_tensor(value_of: Callable[[Any], Any]) -> Callable[[dict], None]:
    def change(ckpt: dict) -> None:
        ckpt["model_state"][WEIGHT] = value_of(ckpt["model_state"][WEIGHT])

    return change


def check_no_torch_advice(scene: Scene, result: Result) -> None:
    """Not one word of torch's loader text (its advice is the unsafe ``weights_only=False``)."""
    for torch_text in ("weights_only", "Weights only load failed", "add_safe_globals"):
        assert torch_text not in result.err, result.err


NAMED = all_of(check_checkpoint_message_complete, check_no_torch_advice)
EVIL_CLIP = "--clip-config {clip_config} --clip-pretrained {evil} --device cpu"

CASES: list[Case] = [
    # --- fields of the wrong type: the file and the field named (more kinds in
    # tests/runtime/test_checkpoint_validation.py, without the command around them)
    Case("checkpoint-config-is-a-string", f"{D} --checkpoint {{bad}}", 2, says=["{bad}", "config must be a mapping"],
         setup=[checkpoint_variant(lambda c: c.update(config="thumos14"))], check=NAMED),
    Case("checkpoint-config-value-out-of-range", f"{D} --checkpoint {{bad}}", 2,
         says=["{bad}", "config", "model.num_queries"],
         setup=[checkpoint_variant(lambda c: c["config"]["model"].update(num_queries=0))], check=NAMED),
    Case("checkpoint-feature-spec-is-a-list", f"{D} --checkpoint {{bad}}", 2,
         says=["{bad}", "feature_spec must be a mapping, got a list"],
         setup=[checkpoint_variant(lambda c: c.update(feature_spec=[32, 3.75]))], check=NAMED),
    Case("checkpoint-vocabulary-of-ints", f"{E}", 2, says=["{bad}", "vocabulary[0] must be a string, got an integer"],
         setup=[tiny_dataset("ds"), checkpoint_variant(lambda c: c.update(vocabulary=list(range(6))))],
         check=NAMED),
    # --- tensors: missing, of the wrong type, of the wrong shape; weights for another config
    Case("checkpoint-missing-tensor", f"{D} --checkpoint {{bad}}", 2, says=["{bad}", "model_state", WEIGHT],
         setup=[checkpoint_variant(lambda c: c["model_state"].pop(WEIGHT))], check=NAMED),
    Case("checkpoint-string-tensor", f"{D} --checkpoint {{bad}}", 2,
         says=["{bad}", f"model_state.{WEIGHT} must be a tensor, got a string"],
         setup=[checkpoint_variant(replace_tensor(lambda t: "0.1 0.2"))], check=NAMED),
    Case("checkpoint-tensor-wrong-shape", f"{E}", 2, says=["{bad}", f"model_state.{WEIGHT}", "shape", "do not fit"],
         setup=[tiny_dataset("ds"), checkpoint_variant(replace_tensor(lambda t: t[:, :-1].clone()))], check=NAMED),
    Case("checkpoint-weights-do-not-fit-config", f"{D} --checkpoint {{bad}}", 2,
         says=["{bad}", "model_state", "do not fit its config"],
         setup=[checkpoint_variant(lambda c: c["config"]["model"].update(dec_layers=3))], check=NAMED),
    # --- a weights file that would run code: refused in psftr's words, nothing executed
    Case("detect-malicious-clip-pretrained", f"detect {{videos}} -a walking {EVIL_CLIP}", 2,
         says=["{evil}", "not a plain weights file", "never runs code"],
         setup=[evil_checkpoint("evil"), tiny_clip_config], check=all_of(check_not_pwned, check_no_torch_advice)),
    Case("extract-malicious-clip-pretrained", f"extract {{videos}} -o {{tmp}}/feats {EVIL_CLIP}", 2,
         says=["{evil}", "not a plain weights file"],
         setup=[evil_checkpoint("evil"), tiny_clip_config], check=all_of(check_not_pwned, check_no_torch_advice)),
    Case("detect-plain-pickle-clip-pretrained",
         "detect {videos} -a walking --clip-config {clip_config} --clip-pretrained {evil_pickle} --device cpu", 2,
         says=["{evil_pickle}"], setup=[evil_checkpoint("evil"), tiny_clip_config],
         check=all_of(check_not_pwned, check_no_torch_advice)),
]
