"""Config dataclasses: Table 5 presets, YAML round trip, dotted overrides, errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from psftr_core.config import (
    PSFTRConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    preset,
    preset_for_dataset,
    save_config,
)
from psftr_core.errors import InputError


# Table 5 values that differ between the two presets. lr_backbone: Table 5's 1e-5 / 1e-2 are
# not used; null = the temporal conv trains at the base lr (psftr_core/config.py says why).
PRESET_SPECIFIC = {
    "thumos14": {"dec_layers": 5, "num_queries": 40, "salient_loss_coef": 3.0, "epochs": 30, "lr": 1e-4,
                 "lr_backbone": None, "resize_length": None},
    "anet": {"dec_layers": 2, "num_queries": 30, "salient_loss_coef": 2.0, "epochs": 20, "lr": 5e-5,
             "lr_backbone": None, "resize_length": 128},
}


@pytest.mark.parametrize("name", sorted(PRESET_SPECIFIC))
def test_presets_have_table5_values(name):
    cfg, v = preset(name), PRESET_SPECIFIC[name]
    m, t, d = cfg.model, cfg.train, cfg.data
    assert (d.slice_size, d.slice_overlap, d.inference_slice_overlap) == (128, 0.75, 0.25)
    assert (m.enc_layers, m.dec_layers, m.num_queries, m.roi_size, m.num_heads) == (
        2, v["dec_layers"], v["num_queries"], 16, 8)
    assert (t.cls_loss_coef, t.seg_loss_coef, t.iou_loss_coef) == (2, 5, 2)
    assert (t.actionness_loss_coef, t.salient_loss_coef) == (3.0, v["salient_loss_coef"])
    assert (t.epochs, t.lr, t.lr_backbone) == (v["epochs"], v["lr"], v["lr_backbone"])
    assert d.resize_length == v["resize_length"]


def test_thumos14_preset_is_the_default_config():
    cfg = preset("thumos14")
    m, t, d = cfg.model, cfg.train, cfg.data
    assert (t.focal_alpha, t.focal_gamma) == (0.25, 2)
    assert (t.set_cost_class, t.set_cost_seg, t.set_cost_iou) == (6, 5, 2)  # TadTR's matching costs
    assert (t.batch_size, t.weight_decay, t.clip_max_norm) == (16, 1e-4, 0.1)
    assert t.lr_linear_proj_names == ("sampling_offsets", "reference_points") and t.lr_linear_proj_mult == 0.1
    assert (m.feature_dim, m.text_dim, m.hidden_dim, m.logit_scale) == (512, 512, 512, 100.0)
    assert d.prompt == "a video of a person doing {}"
    assert PSFTRConfig() == cfg  # the defaults are the THUMOS14 preset


def test_preset_for_dataset():
    assert [preset_for_dataset(n) for n in ("ActivityNet", "anet", "thumos14", "my_videos")] == [
        "anet", "anet", "thumos14", "thumos14"]


def test_presets_are_independent_copies():
    a = preset("thumos14")
    a.model.dec_layers = 1
    assert preset("thumos14").model.dec_layers == 5


def test_unknown_preset():
    with pytest.raises(InputError, match="unknown preset 'kinetics'.*thumos14, anet"):
        preset("kinetics")


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(preset("anet"), ["model.spde_variant=residual", "train.lr_drop_epochs=10,15"])
    path = tmp_path / "cfg.yaml"
    save_config(cfg, path)
    assert load_config(path) == cfg
    import yaml

    assert yaml.safe_load(path.read_text())["train"]["lr_drop_epochs"] == [10, 15]
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_config_dict_is_plain_and_loads_with_weights_only(tmp_path):
    import torch

    cfg = preset("thumos14")
    data = config_to_dict(cfg)
    assert data["train"]["lr_drop_epochs"] == [25]
    assert data["data"]["resize_length"] is None

    def plain(x):
        if isinstance(x, dict):
            return all(isinstance(k, str) and plain(v) for k, v in x.items())
        if isinstance(x, list):
            return all(plain(v) for v in x)
        return x is None or isinstance(x, (str, int, float, bool))

    assert plain(data)
    torch.save({"config": data}, tmp_path / "ck.pt")
    loaded = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert config_from_dict(loaded["config"]) == cfg


def test_partial_yaml_merges_onto_preset(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(
        "preset: anet\n"
        "model:\n  dec_layers: 3\n  use_text_to_query: false\n"
        "train:\n  lr: 1e-4\n  lr_drop_epochs: [5, 7]\n"
        "data:\n  resize_length: null\n  prompt: '{}'\n"
    )
    cfg = load_config(path)
    assert cfg.model.dec_layers == 3 and cfg.model.use_text_to_query is False
    assert cfg.model.num_queries == 30  # from the anet preset
    assert cfg.train.lr == 1e-4 and isinstance(cfg.train.lr, float)  # YAML reads 1e-4 as a string
    assert cfg.train.lr_drop_epochs == (5, 7)
    assert cfg.data.resize_length is None and cfg.data.prompt == "{}"
    # Without a preset key the base argument (or the defaults) is used.
    path.write_text("model:\n  num_queries: 12\n")
    assert load_config(path, base="anet").model.dec_layers == 2
    assert load_config(path).model.dec_layers == 5
    assert load_config(path).model.num_queries == 12
    # A YAML int is a valid float; a YAML float is not a valid int.
    path.write_text("train:\n  lr: 1\n")  # a YAML int is a valid float
    assert load_config(path).train.lr == 1.0 and isinstance(load_config(path).train.lr, float)


@pytest.mark.parametrize(
    "text, message",
    [
        ("model:\n  dec_layer: 3\n", r"unknown config key model\.dec_layer; valid keys of 'model': .*dec_layers"),
        ("optim:\n  lr: 1\n", "unknown config section 'optim'; valid sections: model, train, data"),
        ("model:\n  dec_layers: three\n", r"bad value 'three' for config key model\.dec_layers: expected int"),
        ("model:\n  dec_layers: 3.0\n", "expected int"),  # a YAML float is not an int
        ("model:\n  use_saliency: 3\n", "expected bool"),
        ("model: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "mapping"),
    ],
)
def test_yaml_errors(tmp_path, text, message):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_coerce_by_field_type():
    base = preset("thumos14")
    cfg = apply_overrides(
        base,
        [
            "model.dec_layers=3",
            "train.lr=2e-4",
            "model.use_vision_to_text=false",
            "data.resize_length=300",
            "train.lr_drop_epochs=[20, 25]",
            "train.lr_backbone_names=backbone,stem",
            "data.prompt=a video of {}",
            "model.spde_variant=concat_mlp",
            "inference.topk=50",
        ],
    )
    assert cfg.model.dec_layers == 3
    assert cfg.train.lr == 2e-4
    assert cfg.model.use_vision_to_text is False
    assert cfg.data.resize_length == 300
    assert cfg.train.lr_drop_epochs == (20, 25)
    assert cfg.train.lr_backbone_names == ("backbone", "stem")
    assert cfg.data.prompt == "a video of {}"
    assert cfg.model.spde_variant == "concat_mlp"
    assert cfg.inference.topk == 50
    assert apply_overrides(cfg, ["data.resize_length=null"]).data.resize_length is None
    assert base == preset("thumos14")  # the input is not modified


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.dec_layers", "expected section.key=value"),
        ("model.nope=1", r"unknown config key model\.nope; valid keys of 'model'"),
        ("optim.lr=1", "bad override key 'optim.lr'"),
        ("lr=1", "bad override key 'lr'"),
        ("model.dec_layers=2.5", r"bad value '2.5' for config key model\.dec_layers: expected int"),
        ("model.use_saliency=maybe", "expected bool"),
        ("train.lr=fast", "expected float"),
        ("train.lr_drop_epochs=a,b", "expected list of int"),
        ("model.spde_variant=gated", "spde_variant must be one of none, concat_mlp, residual, mlp_residual"),
        ("model.num_heads=3", r"hidden_dim \(512\) must be divisible by model.num_heads \(3\)"),
        ("data.slice_overlap=1.0", r"slice_overlap must be in \[0, 1\)"),
        ("data.prompt=a video", "must contain '{}'"),
        ("model.text_dim=768", "must equal model.text_dim"),
    ],
)
def test_override_errors(override, message):
    with pytest.raises(InputError, match=message):
        apply_overrides(preset("thumos14"), [override])


def test_config_from_dict_rejects_unknown_keys_and_fills_missing():
    with pytest.raises(InputError, match="unknown config key train.momentum"):
        config_from_dict({"train": {"momentum": 0.9}})
    assert config_from_dict({"model": {"dec_layers": 2}}).model.num_queries == 40


def test_removed_feature_stride_key_still_loads_with_a_deprecation_warning(tmp_path):
    # data.feature_stride was read by nothing and is gone; older checkpoints and YAML files carry it.
    old = config_to_dict(preset("anet"))
    old["data"]["feature_stride"] = 16
    with pytest.warns(DeprecationWarning, match="data.feature_stride"):
        assert config_from_dict(old) == preset("anet")
    path = tmp_path / "old.yaml"
    path.write_text("preset: anet\ndata:\n  feature_stride: 16\n  resize_length: 64\n", encoding="utf-8")
    with pytest.warns(DeprecationWarning, match="data.feature_stride"):
        cfg = load_config(path)
    assert cfg.data.resize_length == 64 and not hasattr(cfg.data, "feature_stride")


def test_old_scoring_name_calibrated_loads_as_contrast_with_a_deprecation_warning(tmp_path):
    # "calibrated" named the CLIP contrast scoring; checkpoints, YAML files and --set still say it.
    old = config_to_dict(preset("thumos14"))
    old["inference"]["scoring"] = "calibrated"
    with pytest.warns(DeprecationWarning, match="inference.scoring=calibrated is now inference.scoring=contrast"):
        assert config_from_dict(old).inference.scoring == "contrast"
    path = tmp_path / "old.yaml"
    path.write_text("inference:\n  scoring: calibrated\n", encoding="utf-8")
    with pytest.warns(DeprecationWarning, match="scoring=contrast"):
        assert load_config(path).inference.scoring == "contrast"
    with pytest.warns(DeprecationWarning, match="scoring=contrast"):
        cfg = apply_overrides(preset("thumos14"), ["inference.scoring=calibrated"])
    assert cfg.inference.scoring == "contrast" and cfg.inference.contrast_weight is None
    assert preset("thumos14").inference.scoring == "contrast"  # the default under its new name
    with pytest.raises(InputError, match="inference.scoring must be one of contrast, model"):
        apply_overrides(preset("thumos14"), ["inference.scoring=fancy"])


def test_config_module_does_not_import_torch():
    code = "import sys, psftr_core.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_small_datasets_get_the_small_preset_which_is_the_demo_override():
    from psftr_core.config import SMALL_DATASET_VIDEOS, load_config, preset, preset_for_dataset, preset_names

    assert "small" in preset_names()
    assert preset_for_dataset("my_data", 8) == "small"
    assert preset_for_dataset("my_data", SMALL_DATASET_VIDEOS - 1) == "small"
    assert preset_for_dataset("my_data", SMALL_DATASET_VIDEOS) == "thumos14"
    assert preset_for_dataset("my_data") == "thumos14"  # size unknown
    assert preset_for_dataset("thumos14", 8) == "thumos14" and preset_for_dataset("ActivityNet", 8) == "anet"
    small = preset("small")
    assert (small.model.hidden_dim, small.model.dec_layers, small.train.epochs, small.data.slice_size) == (128, 2, 12, 64)
    # examples/train_override.yaml (THUMOS14's preset with the demo's overrides) is the small preset
    override = Path(__file__).resolve().parents[1] / "examples" / "train_override.yaml"
    assert load_config(override) == small


def test_paper_architecture_file_turns_both_departures_back():
    default = preset("thumos14").model
    assert default.use_visual_text_map and not default.use_text_to_vision  # psftr's two departures
    paper = load_config(Path(__file__).resolve().parents[1] / "examples" / "paper_architecture.yaml").model
    assert paper.use_text_to_vision and not paper.use_visual_text_map
    assert dataclasses.replace(paper, use_text_to_vision=False, use_visual_text_map=True) == default


def test_configs_saved_before_the_calibration_keys_keep_one_fold_and_no_prior():
    data = config_to_dict(preset("thumos14"))
    for key in ("calibration_folds", "calibration_prior_margin", "calibration_localizer_margin"):
        del data["train"][key]
    train = config_from_dict(data).train
    assert (train.calibration_folds, train.calibration_prior_margin, train.calibration_localizer_margin) == (1, 0, 0)
