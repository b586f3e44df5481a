"""Every numeric setting is range-checked at config load (issue 27, mechanism 6).

The checks walk the config dataclasses, so a new numeric field is covered (and must get a
range in ``config.RANGES``) without touching these tests. Also: the YAML loader that
refuses alias bombs, the float options of ``psftr detect`` and invisible action names.
"""

from __future__ import annotations

import math
import time

import pytest

from psftr_core.config import (RANGES, SHOWN_CHARS, ModelConfig, PSFTRConfig, apply_overrides,
                               config_from_dict, load_config, numeric_fields, preset, validate_config)
from psftr_core.config_ranges import Range
from psftr_core.errors import InputError
from psftr_core.infer.detect_options import DetectOptions, check_limits, sampling_arg
from psftr_core.io.yaml_file import MAX_YAML_NODES, YAMLTooLarge, read_yaml_file, safe_load

FLOAT_KEYS = [key for key, kind in numeric_fields().items() if kind is float]
NON_FINITE = ("nan", "inf", "-inf")


def _value_of(key: str, cfg: PSFTRConfig):
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def _outside(allowed: Range) -> list[float]:
    """Values just outside ``allowed`` (its ends themselves where open), above and below."""
    above = allowed.high if allowed.high_open else allowed.high * 2 + 1
    below = allowed.low if allowed.low_open else allowed.low - 1
    return [above, below]


# ----------------------------------------------------------------------------- the table


def test_every_numeric_field_has_a_range():
    fields = numeric_fields()
    assert len(fields) > 40  # the walk finds the fields (optional and tuple ones included)
    assert {"train.lr_backbone", "train.lr_drop_epochs", "data.resize_length"} <= set(fields)
    assert set(fields) == set(RANGES), "give every numeric config field a range in config.RANGES"


def test_defaults_and_presets_are_within_the_ranges():
    for cfg in (PSFTRConfig(), preset("thumos14"), preset("anet")):
        for key, allowed in RANGES.items():
            value = _value_of(key, cfg)
            for item in value if isinstance(value, tuple) else (value,):
                assert item is None or item in allowed, (key, item, allowed)


def test_range_text_is_mathematical():
    assert str(Range(0, 1, high_open=True)) == "[0, 1)"
    assert str(Range(0, 10, low_open=True)) == "(0, 10]"
    assert str(Range(0, 1e6)) == "[0, 1000000]"
    assert 0.5 in Range(0, 1) and 1 not in Range(0, 1, high_open=True) and 0 not in Range(0, 1, low_open=True)


# ----------------------------------------------------------------------------- nan and inf


@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_every_float_field_refuses_nan_and_inf(key):
    for text in NON_FINITE:
        with pytest.raises(InputError, match=rf"config key {key} must be a finite number, got -?{text[-3:]}"):
            apply_overrides(preset("thumos14"), [f"{key}={text}"])
        section, name = key.split(".")
        with pytest.raises(InputError, match=key):  # a checkpoint's stored config
            config_from_dict({section: {name: float(text)}})


def test_yaml_nan_and_inf_are_refused_naming_the_file_and_key(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("model:\n  logit_scale: .inf\ntrain:\n  weight_decay: .nan\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"{tmp_path}.*cfg\.yaml: config key model\.logit_scale .* got inf"):
        load_config(path)


def test_python_api_configs_are_checked_too():
    with pytest.raises(InputError, match="model.logit_scale must be a finite number, got nan"):
        validate_config(PSFTRConfig(model=ModelConfig(logit_scale=math.nan)))
    with pytest.raises(InputError, match="model.dropout must be a number, got '0.1'"):
        validate_config(PSFTRConfig(model=ModelConfig(dropout="0.1")))
    with pytest.raises(InputError, match="model.num_queries must be a whole number, got True"):
        validate_config(PSFTRConfig(model=ModelConfig(num_queries=True)))


# ----------------------------------------------------------------------------- bounds


@pytest.mark.parametrize("key", sorted(RANGES))
def test_every_numeric_field_refuses_values_outside_its_range(key):
    section, name = key.split(".")
    kind = numeric_fields()[key]
    listed = key == "train.lr_drop_epochs"  # the one tuple field
    for value in _outside(RANGES[key]):
        value = [kind(value)] if listed else kind(value)
        with pytest.raises(InputError, match=rf"config key {key} must be in [\[(]"):
            config_from_dict({section: {name: value}})


def test_a_huge_num_queries_is_refused_with_the_bound():
    with pytest.raises(InputError, match=r"model\.num_queries must be in \[1, 10000\], got 1000000000"):
        apply_overrides(preset("thumos14"), ["model.num_queries=1000000000"])


def test_list_settings_check_each_item():
    with pytest.raises(InputError, match=r"train\.lr_drop_epochs must be in \[1, 100000\], got \(5, 0\)"):
        apply_overrides(preset("thumos14"), ["train.lr_drop_epochs=5,0"])


def test_an_int_too_big_for_a_float_is_a_bad_value(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(f"train:\n  lr: {10**400}\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad value 1[0.]+ for config key train\.lr: expected float") as err:
        load_config(path)
    assert len(str(err.value)) < len(str(path)) + 200


def test_echoed_values_are_cut():
    with pytest.raises(InputError) as err:
        config_from_dict({"train": {"lr": "x" * 100_000}})
    assert "..." in str(err.value) and len(str(err.value)) < SHOWN_CHARS + 100
    with pytest.raises(InputError) as err:
        config_from_dict({"model": "y" * 100_000})
    assert len(str(err.value)) < SHOWN_CHARS + 100


# ----------------------------------------------------------------------------- YAML


def _bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [l,l,l,l,l,l,l,l,l]"]
    lines += [f"a{k}: &a{k} [{','.join([f'*a{k - 1}'] * 9)}]" for k in range(1, levels)]
    return "\n".join(lines + [f"train: {{lr: *a{levels - 1}}}"]) + "\n"


def test_alias_bomb_is_refused_before_expansion(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(), encoding="utf-8")
    start = time.perf_counter()
    with pytest.raises(InputError, match=rf"config file .*bomb\.yaml is refused: its aliases expand to more than "
                                         rf"{MAX_YAML_NODES} values") as err:
        load_config(path)
    assert time.perf_counter() - start < 1.0
    assert len(str(err.value)) < 300


def test_recursive_and_too_deep_yaml_are_refused():
    with pytest.raises(YAMLTooLarge, match="contains itself"):
        safe_load("a: &x [1, *x]\n")
    start = time.perf_counter()
    with pytest.raises(YAMLTooLarge, match="nest more than 100 levels deep"):
        safe_load("[" * 100_000)
    with pytest.raises(YAMLTooLarge, match="nests too deeply"):
        safe_load("- " * 2_000 + "x\n")
    assert time.perf_counter() - start < 1.0


def test_ordinary_aliases_still_load():
    assert safe_load("base: &b {lr: 0.1}\ntrain: *b\nlist: [*b, *b]\n") == {
        "base": {"lr": 0.1}, "train": {"lr": 0.1}, "list": [{"lr": 0.1}, {"lr": 0.1}]}
    assert safe_load("") is None


def test_yaml_file_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="settings not found"):
        read_yaml_file(tmp_path / "nope.yaml", "settings")
    with pytest.raises(InputError, match=f"settings {tmp_path} is a directory"):
        read_yaml_file(tmp_path, "settings")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"a: \xff\n")
    with pytest.raises(InputError, match="bad.yaml is not UTF-8"):
        read_yaml_file(bad, "settings")
    bad.write_text("a: [1, 2\n" + "x" * 5000, encoding="utf-8")
    with pytest.raises(InputError, match="bad.yaml is not valid YAML") as err:
        read_yaml_file(bad, "settings")
    assert len(str(err.value)) < len(str(bad)) + 250 and "<unicode string>" not in str(err.value)


# ----------------------------------------------------------------------------- detect options


@pytest.mark.parametrize("text", NON_FINITE)
def test_detect_float_options_refuse_non_finite(text):
    value = float(text)
    for kwargs, flag in (({"min_duration": value}, "--min-duration"), ({"threshold": value}, "--threshold"),
                         ({"nms_iou": value}, "--nms-iou"), ({"top_k": value}, "--top-k")):
        args = {"min_duration": 0.0, "top_k": None, "threshold": None, "nms_iou": None, **kwargs}
        with pytest.raises(InputError, match=flag):
            check_limits(**args)
    with pytest.raises(InputError, match="--fps"):
        sampling_arg(None, value)
    with pytest.raises(InputError, match="--threshold walking="):
        DetectOptions(per_action_thresholds={"walking": value}).check()


def test_detect_finite_options_still_pass():
    check_limits(2.5, 3, 0.3, 1.0)
    assert sampling_arg(None, "2.5") == ("fps", 2.5)
    DetectOptions(min_duration=1, threshold=0.5, nms_iou=0.5, top_k=10, fps=2.0).check()


# ----------------------------------------------------------------------------- action names


@pytest.mark.parametrize("name, shown", [("\u200b", r"\u200b"), ("\u200c\u200d", r"\u200c\u200d"),
                                         ("\u2060", r"\u2060"), ("\ufeff", r"\ufeff"),
                                         ("\u200b \u00a0\u200b", r"\u200b \u200b"), ("\u3164", r"\u3164"),
                                         ("\U000e0100", r"\U000e0100")])
def test_invisible_action_names_are_refused(tmp_path, name, shown):
    from psftr_core.data.vocabulary import normalise_vocabulary, parse_vocabulary

    message = f"action name '{shown}' is made only of invisible characters"
    with pytest.raises(InputError, match=message.replace("\\", "\\\\")):
        normalise_vocabulary(["walking", name])
    with pytest.raises(InputError, match=message.replace("\\", "\\\\")):
        parse_vocabulary(f"walking,{name}")
    actions = tmp_path / "actions.txt"
    actions.write_text(f"walking\n{name}\n", encoding="utf-8")
    with pytest.raises(InputError, match="invisible"):
        parse_vocabulary(actions_file=actions)


def test_names_with_invisible_joiners_inside_are_kept():
    from psftr_core.data.vocabulary import normalise_vocabulary, parse_thresholds

    family = "\U0001f468\u200d\U0001f469"  # an emoji ZWJ sequence
    assert normalise_vocabulary([family, "walking", "  "]) == [family, "walking"]
    with pytest.raises(InputError, match="invisible"):
        parse_thresholds(["\u200b=0.5"])
