"""Every model switch trains and predicts; train.lr_backbone reaches the temporal conv."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from psftr_core.config import apply_overrides, preset
from psftr_core.evaluation import protocol
from psftr_core.model import PSFTR
from psftr_core.train import optimizer, run
from psftr_core.train.metrics_log import read_metrics
from train_helpers import TINY_OVERRIDES, make_tiny_dataset, request

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# Every boolean / variant of config.ModelConfig away from its default, plus the loss choices.
SWITCHES = [
    ["model.use_text_to_vision=false"],
    ["model.use_vision_to_text=false"],
    ["model.use_text_to_query=false"],
    ["model.use_text_to_vision=false", "model.use_vision_to_text=false", "model.use_text_to_query=false"],
    ["model.spde_variant=none"],
    ["model.spde_variant=concat_mlp"],
    ["model.spde_variant=residual"],
    ["model.use_actionness=false"],
    ["model.use_saliency=false"],
    ["model.use_actionness=false", "model.use_saliency=false"],
    ["model.use_roi_logits=false"],
    ["model.enc_layers=0"],
    ["train.aux_loss=false"],
    ["train.cls_loss=ce", "train.set_cost_class=2"],
]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data", num_splits=1)


@pytest.mark.parametrize("switch", SWITCHES, ids=lambda s: ",".join(x.split(".", 1)[1] for x in s))
def test_every_switch_trains_one_epoch_and_predicts(switch, tiny_data, tmp_path):
    (result,) = run.train(request(tiny_data, tmp_path / "run", epochs=1, overrides=TINY_OVERRIDES + switch))
    (epoch,) = read_metrics(result.run_dir / "metrics.jsonl", "epoch")
    assert torch.isfinite(torch.tensor(epoch["loss"]))
    ckpt = torch.load(result.checkpoint, weights_only=True)
    model_cfg = ckpt["config"]["model"]
    assert ("loss_actionness" in epoch) == model_cfg["use_actionness"]
    assert ("loss_saliency" in epoch) == model_cfg["use_saliency"]
    for scoring in ("contrast", "model"):  # no actionness head: σ(actionness) is 1
        ev = protocol.evaluate_checkpoint(result.checkpoint, str(tiny_data), "75_25", 0, device="cpu",
                                          overrides=[f"inference.scoring={scoring}"])
        scores = [d["score"] for ds in ev.predictions.values() for d in ds]
        assert scores and all(0.0 <= s <= 1.0 for s in scores)


def test_lr_backbone_is_the_temporal_conv_rate():
    base = apply_overrides(preset("thumos14"), TINY_OVERRIDES + ["model.feature_dim=32", "model.text_dim=32"])
    model = PSFTR(base.model)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {g["name"]: g for g in optimizer.param_groups(model, base.train)}
    assert base.train.lr_backbone is None and "backbone" not in groups  # null: the base rate
    assert {"temporal_conv.weight", "temporal_conv.bias"} <= {names[id(p)] for p in groups["base"]["params"]}

    cfg = apply_overrides(base, ["train.lr_backbone=2e-6", "train.lr_drop_epochs=1"])
    opt = optimizer.build_optimizer(model, cfg.train)
    by_name = {g["name"]: g for g in opt.param_groups}
    assert sorted(names[id(p)] for p in by_name["backbone"]["params"]) == ["temporal_conv.bias", "temporal_conv.weight"]
    assert by_name["backbone"]["lr"] == 2e-6 and by_name["base"]["lr"] == cfg.train.lr
    optimizer.set_epoch_lr(opt, 1, cfg.train)  # after the drop, every group ×0.1
    assert by_name["backbone"]["lr"] == pytest.approx(2e-7)
    # one step moves the temporal conv by ~lr (Adam's first step is lr · sign(grad))
    before = model.temporal_conv.weight.detach().clone()
    optimizer.set_epoch_lr(opt, 0, cfg.train)
    model.temporal_conv.weight.sum().backward()
    opt.step()
    step = (model.temporal_conv.weight.detach() - before).abs()
    assert step.min().item() == pytest.approx(2e-6, rel=1e-2) and step.max().item() == pytest.approx(2e-6, rel=1e-2)
