"""The calibration study script (benchmarks/calibration_rules.py): its rules, report and decision."""

from __future__ import annotations

import pytest

from benchmarks import calibration_rules


@pytest.fixture(scope="module")
def rules():
    return calibration_rules


def _row(w_c, w_r, per_class, method="psftr", nms="all"):
    values = list(per_class.values())
    return {"method": method, "contrast_weight": w_c, "roi_weight": w_r, "nms": nms,
            "average_map": sum(values) / len(values), "per_class": per_class}


def _record(rows):
    return {"held_out_classes": ["x", "y", "z"], "grid": rows}


CLIP = (1.0, 0.0)
LEARNED = (0.0, 0.0)
MIX = (0.75, 0.5)


def test_rules_pick_from_held_out_numbers(rules):
    # the mix is best on average (0.6) but only by 0.1 with a paired spread: per-class differences
    # to CLIP contrast are 0.3, -0.1, 0.1 -> mean 0.1, SE = std(ddof=1) 0.2 / sqrt(3) = 0.115
    record = _record([_row(*MIX, {"x": 0.9, "y": 0.4, "z": 0.5}),
                      _row(*CLIP, {"x": 0.6, "y": 0.5, "z": 0.4}),
                      _row(*LEARNED, {"x": 0.1, "y": 0.1, "z": 0.1})])
    assert rules.rule_argmax(record).name == "w_c=0.75, w_r=0.5"
    assert rules.rule_one_se(record).name == "CLIP contrast"  # tied within 1 SE, an end beats a mix
    assert rules.rule_coarse(record).name == "CLIP contrast"  # w_c = 0.75 is not in the coarse grid
    # ranks per class (0 = best): mix 0, 1, 0; CLIP 1, 0, 1 -> the mix has the better mean rank
    assert rules.rule_mean_rank(record).name == "w_c=0.75, w_r=0.5"
    assert rules.rule_table_rows(record).name == "CLIP contrast"
    # a class without ground truth in the held-out videos (no AP) is left out of the per-class rules
    record["held_out_classes"].append("w")
    assert rules.rule_one_se(record).name == "CLIP contrast"


def _result(split, unseen, record, seed=1):
    return {"data_seed": seed, "transfer": 0.0, "ratio": "75_25", "split": split, "unseen": unseen,
            "records": {"held-out vocabulary": record}}


def test_report_compares_each_pick_with_the_best_fixed_scoring(rules):
    grid = [_row(*MIX, {"x": 0.9, "y": 0.4, "z": 0.5}), _row(*CLIP, {"x": 0.6, "y": 0.5, "z": 0.4}),
            _row(*LEARNED, {"x": 0.1, "y": 0.1, "z": 0.1})]
    unseen = [{"CLIP contrast": 0.60, "w_c=0.75, w_r=0.5": 0.50, "learned logits": 0.10},
              {"CLIP contrast": 0.40, "w_c=0.75, w_r=0.5": 0.46, "learned logits": 0.20}]
    fixed_rest = {"ROI-CLIP logits (GAP-style)": 0.0, "paper's inference": 0.0, "training-free localizer": 0.3}
    results = [_result(i, {**fixed_rest, **u}, _record(grid)) for i, u in enumerate(unseen)]
    _, numbers = rules.report(results)
    argmax = numbers["held-out vocabulary, argmax"]["1/0/75/25"]
    # best fixed: CLIP contrast, mean 50.0; argmax picks the mix on both splits: mean 48.0
    assert argmax["picked"] == ["w_c=0.75, w_r=0.5"] * 2
    assert argmax["vs_best_fixed"] == pytest.approx(-2.0)
    assert argmax["vs_oracle"] == pytest.approx(48.0 - (60.0 + 46.0) / 2)
    assert numbers["held-out vocabulary, paired 1-SE"]["1/0/75/25"]["vs_best_fixed"] == pytest.approx(0.0)


def test_prior_rule_and_cross_fitting_known_answers(rules):
    grid = [_row(*MIX, {"x": 0.9, "y": 0.4, "z": 0.5}), _row(*CLIP, {"x": 0.6, "y": 0.5, "z": 0.4})]
    record = _record(grid)  # the mix leads CLIP contrast by 0.6 - 0.5 = 10 points
    assert rules.RULES["prior CLIP contrast, margin 5"](record).name == "w_c=0.75, w_r=0.5"
    assert rules.RULES["prior CLIP contrast, margin 1"](record).name == "w_c=0.75, w_r=0.5"
    assert rules.RULES["always CLIP contrast"](record).name == "CLIP contrast"
    other = {"held_out_classes": ["u"], "grid": [_row(*MIX, {"u": 0.1}), _row(*CLIP, {"u": 0.5})]}
    both = rules.cross_fit_record([record, other])
    means = {rules._candidate(r).name: r["average_map"] for r in both["grid"]}
    assert means == pytest.approx({"w_c=0.75, w_r=0.5": (0.6 + 0.1) / 2, "CLIP contrast": (0.5 + 0.5) / 2})
    assert both["held_out_classes"] == ["0:x", "0:y", "0:z", "1:u"]
    assert rules.rule_argmax(both).name == "CLIP contrast"


def test_decision_takes_the_best_worst_cell_then_the_best_mean(rules):
    def cells(*diffs):
        return {f"c{i}": {"vs_best_fixed": d} for i, d in enumerate(diffs)}

    numbers = {"a": cells(-4.0, 0.0), "b": cells(-3.7, -1.0), "c": cells(-6.0, 3.0)}
    assert rules.decide(numbers) == "a"  # a and b tie on the worst cell (within 0.5); a has the better mean
    numbers["b"] = cells(-3.0, -1.0)
    assert rules.decide(numbers) == "b"


def test_the_benchmark_data_seed_is_refused(rules, tmp_path):
    with pytest.raises(SystemExit, match="seed 0 is the benchmark's"):
        rules.main(["--out", str(tmp_path), "--data-seeds", "0,1"])


def test_what_psftr_train_ships_is_read_from_the_calibration_code(rules, monkeypatch):
    from benchmarks import calibration_variants

    # calibrate()'s defaults: a third of the seen classes held out, scored among every seen class
    from psftr_core.config import TrainConfig

    shipped = calibration_variants.calibration_defaults()
    assert {k: shipped[k] for k in ("held_out_fraction", "among_seen")} == {"held_out_fraction": 1 / 3,
                                                                             "among_seen": True}
    train = TrainConfig()
    assert (shipped["folds"], shipped["margin"], shipped["localizer_margin"]) == (
        train.calibration_folds, train.calibration_prior_margin, train.calibration_localizer_margin)
    monkeypatch.setattr(calibration_variants, "calibration_defaults",
                        lambda: {**shipped, "folds": 1, "margin": 0.0, "localizer_margin": 0.0})
    assert calibration_variants.shipped_combination() == "seen vocabulary, argmax"
    monkeypatch.setattr(calibration_variants, "calibration_defaults",
                        lambda: {**shipped, "folds": 2, "margin": 0.02, "localizer_margin": 0.02})
    assert calibration_variants.shipped_combination() == "seen vocabulary, 2 folds, prior CLIP contrast, margin 2"
    assert "seen vocabulary, 2 folds, prior CLIP contrast, margin 2" in {
        f"{v}, {r}" for v in [*calibration_variants.VARIANTS, *calibration_variants.CROSS_FIT] for r in rules.RULES}
    monkeypatch.undo()
    # what ships now: one fold, margin 1 (always the prior), by docs/calibration_rules.md
    assert calibration_variants.shipped_combination() == "seen vocabulary, always CLIP contrast, localizer margin 20"
    assert "always CLIP contrast, localizer margin 20" in rules.RULES
    monkeypatch.setattr(rules, "shipped_combination", lambda: "seen vocabulary, argmax")
    within = {"seen vocabulary, argmax": 8, "held-out vocabulary, argmax": 6}
    assert rules.shipped_words("seen vocabulary, argmax", within, 12) == "`psftr train` ships it."
    assert (rules.shipped_words("held-out vocabulary, argmax", within, 12)
            == "`psftr train` ships seen vocabulary, argmax (8 of 12).")
    monkeypatch.setattr(rules, "shipped_combination", lambda: None)
    assert rules.shipped_words("seen vocabulary, argmax", within, 12) == (
        "`psftr train` ships a calibration this study did not measure.")


def test_cells_within_two_points_are_counted_per_combination():
    from benchmarks.history import cells_within

    numbers = {"a": {"c1": {"vs_best_fixed": -2.0}, "c2": {"vs_best_fixed": -2.1}, "c3": {"vs_best_fixed": 1.0}},
               "b": {"c1": {"vs_best_fixed": -5.0}, "c2": {"vs_best_fixed": -0.1}, "c3": {"vs_best_fixed": -3.0}}}
    assert cells_within(numbers) == {"a": 2, "b": 1}  # -2.0 is within 2 points, -2.1 is not


def test_localizer_lead_is_read_against_the_prior(rules):
    from benchmarks.calibration_variants import localizer_lead

    record = {"grid": [{"name": "CLIP contrast", "method": "psftr", "average_map": 0.25},
                       {"name": "training-free localizer", "method": "localizer", "average_map": 0.5}]}
    assert localizer_lead(record) == 25.0
    assert localizer_lead({"skipped": "no held-out class", "grid": []}) is None
