"""Class dropout of the training vocabulary (train.vocab_dropout): known subsets and remaps,
p = 0 leaves the step bit-identical, a run with it trains and is reproducible."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from psftr_core.config import TrainConfig, apply_overrides, preset
from psftr_core.errors import InputError
from psftr_core.train import engine, run
from psftr_core.train.distributed import DistributedContext
from psftr_core.train.losses import build_criterion
from psftr_core.train.metrics_log import read_metrics
from psftr_core.train.vocabulary_dropout import (VocabularyDropout, build_vocabulary_dropout, remap_targets,
                                                 sample_vocabulary)
from train_helpers import TINY_OVERRIDES, make_tiny_dataset, request

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _targets(*label_lists):
    return [{"labels": torch.tensor(labels, dtype=torch.int64),
             "segments": torch.tensor([[0.2 + 0.1 * i, 0.1] for i in range(len(labels))])} for labels in label_lists]


def test_p1_keeps_exactly_the_ground_truth_classes_and_remaps_labels():
    text = torch.arange(5 * 3, dtype=torch.float32).reshape(5, 3)
    dropout = VocabularyDropout(1.0, torch.Generator().manual_seed(0))
    targets, sub_text, vocabulary = dropout.apply(_targets([1, 3], [3]), text)
    assert vocabulary.tolist() == [1, 3]
    assert [t["labels"].tolist() for t in targets] == [[0, 1], [1]]
    assert torch.equal(sub_text, text[[1, 3]])


def test_p0_keeps_everything_and_identity_labels():
    text = torch.randn(5, 3)
    dropout = VocabularyDropout(0.0, torch.Generator().manual_seed(0))
    targets, sub_text, vocabulary = dropout.apply(_targets([3, 1]), text)
    assert vocabulary.tolist() == [0, 1, 2, 3, 4]
    assert targets[0]["labels"].tolist() == [3, 1]
    assert torch.equal(sub_text, text)


def test_single_present_class_gets_one_absent_class_at_p1():
    present = torch.tensor([False, False, True, False])
    kept = sample_vocabulary(present, 1.0, torch.Generator().manual_seed(0))
    assert kept.numel() == 2 and 2 in kept.tolist()
    # no absent class exists: the single class stays alone
    assert sample_vocabulary(torch.tensor([True]), 1.0, torch.Generator().manual_seed(0)).tolist() == [0]


def test_half_dropout_is_seeded_and_keeps_present_classes():
    present = torch.zeros(20, dtype=torch.bool)
    present[[4, 7]] = True
    first = [sample_vocabulary(present, 0.5, g).tolist() for g in [torch.Generator().manual_seed(3)] * 5]
    again = [sample_vocabulary(present, 0.5, g).tolist() for g in [torch.Generator().manual_seed(3)] * 5]
    assert first == again
    assert all({4, 7} <= set(v) for v in first)
    assert len({tuple(v) for v in first}) > 1  # the draws move on step by step
    assert 2 < sum(len(v) for v in first) / 5 < 20


def test_remap_refuses_a_dropped_ground_truth_class():
    with pytest.raises(ValueError):
        remap_targets(_targets([2]), torch.tensor([0, 1]), 5)


def test_config_field_default_off_and_validated():
    assert TrainConfig().vocab_dropout == 0.0
    assert build_vocabulary_dropout(TrainConfig(), 0) is None
    assert build_vocabulary_dropout(TrainConfig(vocab_dropout=0.5), 0).p == 0.5
    assert apply_overrides(preset("thumos14"), ["train.vocab_dropout=0.25"]).train.vocab_dropout == 0.25
    for bad in ("-0.1", "1.5"):
        with pytest.raises(InputError, match="vocab_dropout"):
            apply_overrides(preset("thumos14"), [f"train.vocab_dropout={bad}"])


def _tiny_step_inputs():
    cfg = apply_overrides(preset("thumos14"), TINY_OVERRIDES + ["model.feature_dim=16", "model.text_dim=16",
                                                                  "model.dropout=0"])
    torch.manual_seed(0)
    batch = {"features": torch.randn(2, 64, 16), "mask": torch.zeros(2, 64, dtype=torch.bool),
             "saliency": (torch.rand(2, 64) > 0.5).float(), "targets": _targets([3, 1], [1])}
    return cfg, batch, torch.randn(5, 16)


def _one_step(cfg, batch, text, vocab_dropout):
    from psftr_core.train.run import build_training_state

    torch.manual_seed(1)
    state = build_training_state(cfg, "cpu")
    return engine.train_step(state.model.train(), build_criterion(cfg.train), state.optimizer, state.scaler, batch,
                             text, "cpu", cfg.train.clip_max_norm, DistributedContext(), vocab_dropout=vocab_dropout)


def test_p0_step_is_bit_identical_and_p1_step_differs():
    cfg, batch, text = _tiny_step_inputs()
    plain = _one_step(cfg, batch, text, None)
    identity = _one_step(cfg, batch, text, VocabularyDropout(0.0, torch.Generator().manual_seed(0)))
    assert identity == plain  # every loss term, exactly
    dropped = _one_step(cfg, batch, text, VocabularyDropout(1.0, torch.Generator().manual_seed(0)))
    assert dropped["loss_cls"] != plain["loss_cls"]  # a softmax over 2 classes, not 5


def test_run_with_zero_dropout_equals_default_and_with_dropout_is_reproducible(tmp_path: Path):
    data = make_tiny_dataset(tmp_path / "data", num_splits=1)

    def iter_losses(name, extra):
        (result,) = run.train(request(data, tmp_path / name, epochs=1, overrides=TINY_OVERRIDES + extra))
        return [r["loss"] for r in read_metrics(result.run_dir / "metrics.jsonl", "iter")]

    default = iter_losses("default", [])
    assert iter_losses("zero", ["train.vocab_dropout=0"]) == default
    half = iter_losses("half", ["train.vocab_dropout=0.5"])
    assert half != default and iter_losses("half_again", ["train.vocab_dropout=0.5"]) == half
