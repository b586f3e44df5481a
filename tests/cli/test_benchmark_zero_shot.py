"""The zero-shot benchmark script (benchmarks/zero_shot.py): its tasks and report, and a tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import zero_shot


@pytest.fixture(scope="module")
def bench():
    return zero_shot


def _fake_results(bench) -> dict:
    """Two splits of one knob value and ratio, with hand-picked numbers."""
    values = {bench.LOCALIZER_ROW: [50.0, 40.0], bench.PROBE_ROW: [52.0, 44.0],
              "PSFTR, ROI-CLIP logits only (GAP-style)": [30.0, 20.0], "PSFTR, paper's inference": [20.0, 10.0],
              "PSFTR, learned logits only": [10.0, 5.0], "PSFTR, CLIP contrast only": [60.0, 50.0],
              bench.DEFAULT_ROW: [61.0, 48.0], "no SPDE": [59.0, 49.0]}
    return {"rows": {row: {"0.5": {"75_25": v}} for row, v in values.items()},
            "chosen": {"0.5": {"75_25": ["w_c=0.75, w_r=0.5", "CLIP contrast"]}},
            "second_seed": {"transfer": 0.5, "ratio": "75_25", "seed": 1,
                            "rows": {bench.DEFAULT_ROW: [58.0, 49.0], bench.LOCALIZER_ROW: [50.0, 40.0]}},
            "seconds": 600.0, "train_seconds_mean": 100.0, "calibration_seconds_mean": 40.0,
            "trainings": 20, "train_seconds_total": 7200.0,
            "demo": {"trained": 78.2, "localizer": 78.1, "chosen": "training-free localizer", "seconds": 15.0}}


def test_full_run_trains_every_cell_variant_and_the_seed_cell(bench, tmp_path):
    settings = bench.Settings()
    dirs = {bench.cell_key(t): tmp_path / f"d{t}" for t in settings.transfers}
    tasks = bench.make_tasks(settings, dirs, tmp_path)
    assert len(tasks) == 4 * 2 * 3 * 5 + 3  # (3 knobs + clutter) x ratio x split x variant, + 3 splits with seed 1
    assert {t["transfer"] for t in tasks} == {0.0, 0.5, 1.0, "clutter"}
    assert {(t["transfer"], t["ratio"]) for t in tasks if t["seed"] == 1} == {(0.5, "75_25")}
    assert all("train.lr_drop_epochs=8" in t["overrides"] for t in tasks)
    assert len({t["run_dir"] for t in tasks}) == len(tasks)
    quick = bench.make_tasks(bench.QUICK, dirs, tmp_path)  # the knob values only
    assert [(t["transfer"], t["seed"]) for t in quick] == [(0.0, 0), (0.5, 0), (1.0, 0), (0.5, 1)]


def test_findings_are_paired_per_split(bench):
    results = _fake_results(bench)
    lines = bench.findings(results, "0.5", ("75_25",))
    # best fixed scoring by mean: CLIP contrast (55.0); default 54.5; per split +1.0, -2.0
    assert ("- 75/25: new default 54.5 vs best fixed scoring (PSFTR, CLIP contrast only) 55.0: -0.5 "
            "(per split +1.0, -2.0).") in lines
    assert ("- 75/25: new default minus training-free localizer +9.5 per split (lowest +8.0; default below it on 0 "
            "of 2 splits).") in lines
    assert "- 75/25: the calibration chose split 0: w_c=0.75, w_r=0.5; split 1: CLIP contrast." in lines
    assert "- 75/25: no SPDE: 54.0; full minus ablation +0.5 ± 1.5 per split (mixed across splits)." in lines


def test_report_has_a_table_per_knob_value_the_fixed_settings_and_the_seed_noise(bench):
    results = _fake_results(bench)
    settings = bench.Settings(transfers=(0.5,), ratios=("75_25",), splits=2)
    report = bench.markdown(results, settings, "python -m benchmarks.zero_shot --x")
    assert "`python -m benchmarks.zero_shot --x`" in report
    assert "## Transfer 0.5 (between)" in report and "| method | 75/25 unseen mAP |" in report
    assert f"| {bench.DEFAULT_ROW} | 54.5 ± 6.5 |" in report and "| no SPDE (new default) | 54.0 ± 5.0 |" in report
    assert "## Fixed before looking at unseen-class numbers" in report and "w_c ∈ {0, 0.25, 0.5, 0.75, 1}" in report
    assert "## Seed noise" in report and f"| {bench.DEFAULT_ROW} | 54.5 | 53.5 | 2.0 |" in report
    assert "100 s per training, of which 40 s calibration (without it: 60 s)" in report
    assert "20 trainings, 2.0 h of training in all" in report
    # the summary: default 54.5 vs CLIP contrast 55.0 (-0.5, within 2); minus localizer +11.0, +8.0
    assert "| 0.5 | 75/25 | 54.5 | CLIP contrast only 55.0 | -0.5 | yes | +9.5 (+8.0) |" in report
    assert "trained 78.2, training-free localizer 78.1" in report
    assert "More than 2 points below" not in report
    results["rows"][bench.DEFAULT_ROW]["0.5"]["75_25"] = [52.0, 48.0]  # 50.0 vs CLIP contrast 55.0
    missed = bench.markdown(results, settings, "python -m benchmarks.zero_shot")
    # seed noise of the default: |52 - 58| and |48 - 49| -> 3.5
    assert ("More than 2 points below the best fixed scoring: transfer 0.5 75/25 (-5.0); for scale, retraining "
            "with another seed moves the default by 3.5 points per split") in missed
    finished = bench.markdown(results, bench.Settings(transfers=(0.5,), ratios=("75_25",), splits=2,
                                                      finished_only=True), "python zero_shot.py --out W --finished-only")
    assert "- Command: `python zero_shot.py --out W` (this page was written from that run's finished" in finished


def test_a_row_missing_some_splits_is_left_out_of_the_tables(bench):
    results = _fake_results(bench)
    results["rows"]["no text-to-query"] = {"0.5": {"75_25": [40.0, float("nan")]}}
    settings = bench.Settings(transfers=(0.5,), ratios=("75_25",), splits=2)
    report = bench.markdown(results, settings, "python -m benchmarks.zero_shot")
    assert "no text-to-query" not in report and "| no SPDE (new default) |" in report


def test_finished_trainings_are_reused_and_a_changed_task_is_not(bench, tmp_path, monkeypatch):
    trained = []

    def fake_training(task):
        trained.append(task["split"])
        return {"split": task["split"], "scores": {}}

    monkeypatch.setattr(bench, "_train_and_score_fresh", fake_training)
    task = {"run_dir": str(tmp_path / "run"), "split": 0, "overrides": ("model.hidden_dim=64",)}
    assert bench.finished_result(task) is None
    first = bench._train_and_score(task)
    assert bench._train_and_score(task) == first == bench.finished_result(task) and trained == [0]
    changed = {**task, "overrides": ("model.hidden_dim=32",)}
    assert bench.finished_result(changed) is None
    bench._train_and_score(changed)
    assert trained == [0, 0]
    for damaged in ("", "{not json", "[1, 2]", '{"task": 1}'):  # empty, corrupt, foreign: trained again
        (tmp_path / "run" / bench.RESULT_FILE).write_text(damaged, encoding="utf-8")
        assert bench.finished_result(changed) is None
    bench._train_and_score(changed)
    assert trained == [0, 0, 0] and bench.finished_result(changed) is not None


@pytest.mark.slow  # 10 s of training; the README claim it checks also runs in CI (-m slow)
def test_the_demo_trained_as_the_readme_shows_is_not_worse_than_the_localizer(bench, tmp_path,
                                                                             torch_one_thread):
    """README: `psftr train --dataset examples/demo --split 75_25 --config
    examples/train_override.yaml`, then `psftr evaluate --checkpoint` vs `--baseline`
    (the benchmark's demo check, which docs/benchmarks.md reports)."""
    demo = bench.demo_check(tmp_path)
    assert demo["trained"] >= demo["localizer"] - 1e-7 and demo["localizer"] > 50.0


@pytest.mark.slow  # trains a calibrated model (~1-2 min here); run with -m slow
def test_tiny_run_scores_one_checkpoint_every_way_and_the_default_is_the_chosen_one(bench, tmp_path,
                                                                                 torch_one_thread):
    settings = bench.Settings(
        transfers=(0.0,), ratios=("75_25",), splits=1, epochs=10, variants=("PSFTR",), jobs=1, second_seed=None,
        demo=False, data={"feature_dim": 64, "num_train_videos": 80, "num_test_videos": 30},
    )
    results = bench.run(settings, tmp_path, log=lambda _: None)
    rows = results["rows"]
    assert set(rows) == set(bench.ROW_ORDER)
    values = {row: rows[row]["0"]["75_25"][0] for row in rows}
    (chosen,) = results["chosen"]["0"]["75_25"]
    named = {"CLIP contrast": "PSFTR, CLIP contrast only", "paper's inference": "PSFTR, paper's inference",
             "learned logits": "PSFTR, learned logits only",
             "ROI-CLIP logits (GAP-style)": "PSFTR, ROI-CLIP logits only (GAP-style)",
             "training-free localizer": bench.LOCALIZER_ROW}
    if chosen in named:  # the default is the very scoring it names
        assert values[bench.DEFAULT_ROW] == pytest.approx(values[named[chosen]], abs=1e-9)
    assert values[bench.LOCALIZER_ROW] > 30.0  # far above chance (~1-2)
    assert len({round(v, 6) for v in values.values()}) >= 5  # the scorings differ
    report = bench.markdown(results, settings, "python -m benchmarks.zero_shot --quick")
    assert f"the calibration chose split 0: {chosen}." in report


def test_history_is_computed_from_a_previous_run_and_the_calibration_study(bench, monkeypatch):
    import copy
    import dataclasses
    import json

    from benchmarks import history

    monkeypatch.setattr(history, "shipped_combination", lambda: "seen vocabulary, argmax")
    settings = bench.Settings(transfers=(0.5,), ratios=("75_25",), splits=2)
    results = {**_fake_results(bench), "calibration": "seen vocabulary, argmax"}
    assert "History" not in bench.markdown(results, settings, "python -m benchmarks.zero_shot")  # nothing to compare

    old = copy.deepcopy(results)
    old["rows"][bench.DEFAULT_ROW]["0.5"]["75_25"] = [52.0, 48.0]  # 50.0 vs CLIP contrast 55.0: -5.0, a miss
    old["calibration"] = "held-out vocabulary, argmax"
    old_settings = json.loads(json.dumps(dataclasses.asdict(dataclasses.replace(settings, epochs=8, jobs=4))))
    previous = {"command": "python -m benchmarks.zero_shot --old", "settings": old_settings, "results": old}
    # the study: the calibration before it within 2 points in 1 of 2 cells, the shipped one in both
    study = {"results": [{"data_seed": 2}, {"data_seed": 1}, {"data_seed": 1}],
             "rules": {"held-out vocabulary, argmax": {"c1": {"vs_best_fixed": -3.0}, "c2": {"vs_best_fixed": -1.0}},
                       "seen vocabulary, argmax": {"c1": {"vs_best_fixed": -1.5}, "c2": {"vs_best_fixed": 0.5}},
                       "half held out, argmax": {"c1": {"vs_best_fixed": -9.0}, "c2": {"vs_best_fixed": -9.0}}}}
    report = bench.markdown(results, settings, "python -m benchmarks.zero_shot", previous, study)
    assert ("History: the previous run of this benchmark (`python -m benchmarks.zero_shot --old`, calibration "
            "held-out vocabulary, argmax) missed the 2-point criterion in 1 of 1 cells (transfer 0.5, 75/25: -5.0); "
            "this run (calibration seen vocabulary, argmax) misses it in 0 of 1. The two runs' benchmark settings "
            "differ in: epochs. The [calibration study](calibration_rules.md) ran on development data (generator "
            "seeds 1, 2, not this page's 0): there the calibration before the study (held-out vocabulary, argmax) "
            "was within 2 points of the best fixed scoring in 1 of 2 cells, the one `psftr train` ships now (seen "
            "vocabulary, argmax) in 2.") in report
    # swapped, the same files say the opposite: nothing in the sentence is fixed text
    swapped = bench.markdown(old, settings, "python -m benchmarks.zero_shot",
                             {"command": "c", "settings": json.loads(json.dumps(dataclasses.asdict(settings))),
                              "results": results})
    assert ("History: the previous run of this benchmark (`c`, calibration seen vocabulary, argmax) missed the "
            "2-point criterion in 0 of 1 cells; this run (calibration held-out vocabulary, argmax) misses it in 1 "
            "of 1 (transfer 0.5, 75/25: -5.0). Both ran the same benchmark settings.") in swapped


def test_criterion_gaps_are_the_summary_table_numbers(bench):
    results = _fake_results(bench)
    # default 54.5 vs CLIP contrast 55.0 (the best fixed by mean); a knob value without results is left out
    assert bench.criterion_gaps(results, (0.5, 1.0), ("75_25",)) == {("0.5", "75_25"): pytest.approx(-0.5)}


def test_recorded_commands_name_the_work_folder_as_a_placeholder():
    from benchmarks.history import portable_command

    args = ["--out", "/data/run1/", "--results", "/data/run1/final.json", "--markdown", "/data/run10/x.md", "--jobs", "2"]
    assert portable_command(args, "/data/run1/") == (
        "--out OUT_DIR --results OUT_DIR/final.json --markdown PATH/x.md --jobs 2")  # run10 is another folder
    assert portable_command(["--quick"], None) == "--quick"
    inside = str(Path.cwd() / "docs" / "benchmarks.md")
    assert portable_command(["--markdown", inside, "--variants", "a;b c"], None) == (
        "--markdown docs/benchmarks.md --variants 'a;b c'")  # the working folder's paths relative; shell quoting


def test_a_missing_or_foreign_saved_file_is_one_line_not_a_traceback(bench, tmp_path):
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"something": 1}', encoding="utf-8")
    damaged = tmp_path / "damaged.json"
    damaged.write_text('{"results": ', encoding="utf-8")
    for args, says in ((["--render", str(tmp_path / "none.json")], "not found"),
                       (["--render", str(foreign)], "is not a saved run (needs results, command)"),
                       (["--render", str(damaged)], str(damaged))):
        with pytest.raises(SystemExit) as stop:
            bench.main(args)
        assert says in str(stop.value) and "\n" not in str(stop.value)


def test_probe_criteria_compare_the_default_with_the_better_probe_and_the_best_fixed(bench):
    results = _fake_results(bench)
    probe_a, probe_b = bench.ACTIONNESS_PROBE_ROWS
    results["rows"][probe_a] = {"0.5": {"75_25": [40.0, 30.0]}}  # mean 35.0
    results["rows"][probe_b] = {"0.5": {"75_25": [52.0, 48.0]}}  # mean 50.0: the better one
    settings = bench.Settings(transfers=(0.5,), ratios=("75_25",), splits=2)
    lines = bench.probe_criteria_lines(results, settings)
    # default mean 54.5 / 50.0 = 1.09 < 1.1; default >= localizer on both splits (61 >= 50, 48 >= 40)
    assert f"| 0.5 | 75/25 | 54.5 | {probe_b} 50.0 | 1.09 | no | yes |" in lines
    # best fixed: CLIP contrast only, mean 55.0 -> gap -0.5, within 1 and within 3
    assert "Against the best fixed scoring over 1 cells: mean -0.5 points (within 1), worst -0.5 (within 3)." in lines
    results["rows"][probe_b] = {"0.5": {"75_25": [50.0, 48.0]}}  # mean 49.0: 54.5 / 49.0 = 1.11
    assert f"| 0.5 | 75/25 | 54.5 | {probe_b} 49.0 | 1.11 | yes | yes |" in bench.probe_criteria_lines(results, settings)
    del results["rows"][probe_a], results["rows"][probe_b]
    assert bench.probe_criteria_lines(results, settings) == []  # a run without the probes says nothing


def test_the_clutter_kind_is_the_knob_value_with_its_generator_overrides(bench):
    knob, extra, _ = bench.EXTRA_KINDS["clutter"]
    config = bench.Settings().synthetic_config("clutter")
    plain = bench.Settings().synthetic_config(knob)
    assert config.transfer == plain.transfer == 0.5 and config.feature_dim == plain.feature_dim == 256
    assert all(getattr(config, k) == v for k, v in extra.items()) and config != plain
    assert bench.cell_key("clutter") == "clutter" and bench.cell_key(0.5) == "0.5"
    assert [bench.parse_kind(t) for t in "0,clutter,1".split(",")] == [0.0, "clutter", 1.0]
    with pytest.raises(SystemExit, match="neither a knob value"):
        bench.parse_kind("cluttered")
    assert bench.kind_title("clutter").startswith("Data kind clutter (transfer 0.5 with short actions")
    assert bench.kind_title(0.0) == "Transfer 0 (raw CLIP similarity informative)"
