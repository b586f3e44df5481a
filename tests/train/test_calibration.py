"""Calibration: inference settings chosen on held-out seen classes, never on unseen ones."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from psftr_core.config import InferenceConfig, ModelConfig, apply_overrides, preset
from psftr_core.data.datasets import load_dataset
from psftr_core.data.windows import WindowDataset, windowing_from_config
from psftr_core.evaluation import protocol
from psftr_core.runtime.checkpoint import default_score_threshold
from psftr_core.infer.predict import predict_dataset
from psftr_core.infer.scoring import resolved_weights
from psftr_core.model import PSFTR
from psftr_core.runtime import inputs
from psftr_core.train import calibration, run
from psftr_core.train.calibration import Candidate
from psftr_core.runtime.checkpoint import build_model, load_checkpoint
from train_helpers import TINY_OVERRIDES, make_tiny_dataset, psftr_main, request

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory) -> dict[str, Path]:
    """The same two-epoch run with and without calibration."""
    root = tmp_path_factory.mktemp("runs")
    run.train(request(tiny_data, root / "calibrated", calibrate=True))
    run.train(request(tiny_data, root / "plain", calibrate=False))
    return {"calibrated": root / "calibrated", "plain": root / "plain"}


# ------------------------------------------------------------------ pieces


def test_hold_out_is_a_seeded_third_of_the_seen_classes_and_30_percent_of_the_videos(tiny_data):
    dataset = load_dataset(tiny_data)
    split = dataset.split("75_25", 0)
    records = dataset.train_videos(split)
    held = calibration.hold_out(split.seen, records, seed=0)
    assert len(split.seen) == 6 and len(held.classes) == 2  # a third
    assert sorted(held.classes + held.train_classes) == sorted(split.seen) and not set(held.classes) & set(
        held.train_classes)
    assert len(held.videos) == round(0.3 * len(records))
    assert sorted(r.video_id for r in held.videos + held.train_videos) == sorted(r.video_id for r in records)
    assert all(any(a.label in held.classes for a in r.annotations) for r in held.videos)
    again = calibration.hold_out(split.seen, list(reversed(records)), seed=0)
    assert (again.classes, [r.video_id for r in again.videos]) == (held.classes, [r.video_id for r in held.videos])
    seeds = {tuple(calibration.hold_out(split.seen, records, seed=s).classes) for s in range(6)}
    assert len(seeds) > 1  # the seed decides
    assert "fewer than two seen classes" in calibration.hold_out(split.seen[:1], records, seed=0)


def test_the_grid_holds_every_named_scoring_and_its_settings_round_trip():
    grid = calibration.candidates()
    assert len(grid) == 2 * (4 * 3 + 1) + 1 and len({c.name for c in grid}) == len(grid)
    names = {c.name: c for c in grid}
    for name, (w_c, w_r, nms) in {"CLIP contrast": (1, 0, "all"), "learned logits": (0, 0, "all"),
                                  "ROI-CLIP logits (GAP-style)": (0, 1, "all"),
                                  "paper's inference": (0, 0.5, "cross_window")}.items():
        assert (names[name].contrast_weight, names[name].roi_weight, names[name].nms) == (w_c, w_r, nms)
    model = ModelConfig()
    for c in grid[:-1]:
        inference = c.inference(InferenceConfig())
        assert resolved_weights(model, inference) == (c.roi_weight, c.contrast_weight) and inference.nms == c.nms
        assert apply_overrides(preset("thumos14"), c.overrides()).inference == inference
    assert grid[-1].method == "localizer" and grid[-1].settings() == {"method": "localizer"}
    assert len(calibration.candidates(roi_allowed=False)) == 2 * (4 + 1) + 1


def test_choose_takes_the_best_and_breaks_ties_towards_the_simplest():
    calibrated, mix = Candidate("psftr", 1.0, 0.0), Candidate("psftr", 0.5, 0.5)
    paper, learned = Candidate("psftr", 0.0, 0.5, "cross_window"), Candidate("psftr", 0.0, 0.0)
    localizer = Candidate("localizer")
    assert calibration.choose({calibrated: 0.30, mix: 0.40, localizer: 0.35}) == mix
    # within the tolerance (0.001) of the best: an end of w_c before a mix, the model before the localizer
    assert calibration.choose({calibrated: 0.3995, mix: 0.40, localizer: 0.40}) == calibrated
    assert calibration.choose({paper: 0.2, learned: 0.2, calibrated: 0.2}) == paper
    assert calibration.choose({localizer: 0.5, calibrated: 0.49}) == localizer


def test_a_prior_margin_keeps_clip_contrast_unless_another_setting_leads_by_more():
    prior, mix, localizer = calibration.PRIOR_CHOICE, Candidate("psftr", 0.75, 0.5), Candidate("localizer")
    assert (prior.contrast_weight, prior.roi_weight, prior.nms) == (1.0, 0.0, "all")
    scores = {prior: 0.25, mix: 0.375, localizer: 0.125}  # binary fractions: exact differences
    assert calibration.choose(scores) == mix  # no margin: the argmax
    assert calibration.choose(scores, margin=0.125) == prior  # a lead of exactly the margin is not enough
    assert calibration.choose(scores, margin=0.12) == mix
    assert calibration.choose({mix: 0.375, localizer: 0.125}, margin=0.5) == mix  # no prior scored: the argmax
    # the shipped rule: the model's settings never replace the prior, the localizer does when 20 points ahead
    ahead = {prior: 0.25, mix: 0.5, localizer: 0.5}
    assert calibration.choose(ahead, margin=1.0, localizer_margin=0.2) == localizer
    assert calibration.choose({**ahead, localizer: 0.375}, margin=1.0, localizer_margin=0.2) == prior
    assert calibration.choose(ahead, margin=1.0) == prior  # the localizer margin defaults to the margin
    tied = {prior: 0.25, Candidate("psftr", 0.0, 0.0): 0.25}
    assert calibration.choose(tied) == Candidate("psftr", 0.0, 0.0)  # margins 0: the plain argmax and its tie-break


def test_held_out_folds_are_disjoint_blocks_of_one_permutation(tiny_data):
    dataset = load_dataset(tiny_data)
    split = dataset.split("75_25", 0)
    records = dataset.train_videos(split)
    first = calibration.hold_out(split.seen, records, seed=0)
    assert calibration.hold_out(split.seen, records, seed=0, fold=0) == first  # fold 0 is the one-fold draw
    folds = [calibration.hold_out(split.seen, records, seed=0, fold=k).classes for k in range(3)]
    assert sorted(c for fold in folds for c in fold) == sorted(split.seen)  # 3 folds of 2 cover the 6 classes


def test_scoring_override_resets_a_stored_contrast_weight():
    cfg = apply_overrides(preset("thumos14"), ["inference.contrast_weight=0.5"])
    assert apply_overrides(cfg, ["inference.scoring=model"]).inference.contrast_weight is None
    both = apply_overrides(cfg, ["inference.scoring=model", "inference.contrast_weight=0.25"])
    assert both.inference.contrast_weight == 0.25
    assert apply_overrides(cfg, ["inference.nms=all"]).inference.contrast_weight == 0.5
    # a checkpoint that chose the localizer: asking for a scoring means the model
    localizer = apply_overrides(cfg, ["inference.method=localizer"])
    assert apply_overrides(localizer, ["inference.scoring=model"]).inference.method == "psftr"
    assert apply_overrides(localizer, ["inference.roi_weight=1"]).inference.method == "psftr"
    assert apply_overrides(localizer, ["inference.nms=all"]).inference.method == "localizer"
    assert apply_overrides(localizer, ["inference.roi_weight=1", "inference.method=localizer"]).inference.method == (
        "localizer")


def test_best_f1_threshold_hand_computed():
    gt = {"v": [{"segment": [0, 10], "label": "a"}, {"segment": [20, 30], "label": "a"}],
          "w": [{"segment": [0, 5], "label": "b"}]}
    preds = {"v": [{"segment": [0, 10], "label": "a", "score": 0.9},  # TP
                   {"segment": [40, 50], "label": "a", "score": 0.8},  # FP
                   {"segment": [20, 29], "label": "a", "score": 0.7},  # TP (tIoU 0.9)
                   {"segment": [0, 10], "label": "a", "score": 0.6}],  # duplicate: FP
             "w": [{"segment": [10, 20], "label": "b", "score": 0.65}]}  # FP
    # F1 = 2 TP / (kept + 3): 0.5, 0.4, 0.667, 0.571, 0.5 at thresholds 0.9 .. 0.6
    threshold, f1 = calibration.best_f1_threshold(gt, preds)
    assert threshold == 0.7 and f1 == pytest.approx(4 / 6)
    # a class without ground truth has no AP, but its detections are false alarms: 2 TP / (kept + 3)
    # becomes 0, 0.4, 0.333, 0.571, 0.5, 0.444 at thresholds 0.95 .. 0.6
    preds["w"].append({"segment": [0, 5], "label": "c", "score": 0.95})
    threshold, f1 = calibration.best_f1_threshold(gt, preds)
    assert threshold == 0.7 and f1 == pytest.approx(4 / 7)
    assert calibration.best_f1_threshold(gt, {"v": [{"segment": [40, 50], "label": "a", "score": 1.0}]}) == (None, 0.0)
    # the calibration scores every seen class but sets the threshold on the held-out ones only:
    # without class c the first result comes back
    assert calibration.best_f1_threshold(gt, calibration.only_classes(preds, ["a", "b"])) == (0.7, pytest.approx(4 / 6))
    assert default_score_threshold({"calibration": {"score_threshold": 0.25}}) == 0.25
    assert default_score_threshold({"calibration": None}) is None
    assert default_score_threshold({}) is None


def test_one_model_pass_rescored_equals_the_inference_path_of_each_setting(tiny_data):
    """Scoring the grid runs the model once per window batch; every setting's detections
    are exactly those of ``predict_dataset`` with that setting."""
    dataset = load_dataset(tiny_data)
    split = dataset.split("75_25", 0)
    held = calibration.hold_out(split.seen, dataset.train_videos(split), seed=0)
    cfg = apply_overrides(preset("thumos14"), TINY_OVERRIDES + ["model.feature_dim=32", "model.text_dim=32"])
    torch.manual_seed(0)
    model = PSFTR(cfg.model).eval()
    text = inputs.class_text(dataset, held.classes)
    videos, length = calibration.held_out_videos(dataset, held, cfg.data)
    grid = calibration.candidates()
    found = calibration.grid_predictions(model, cfg.model, cfg.inference, grid, videos, text, held.classes, length,
                                         16, "cpu")
    windows = WindowDataset(dataset, held.videos, held.classes, windowing_from_config(cfg.data), training=False)
    for candidate in grid[::4] + [grid[-1]]:
        expected = predict_dataset(model, windows, text, inference=candidate.inference(cfg.inference))
        assert found[candidate] == expected, candidate.name
    assert sum(map(len, found[grid[0]].values())) > 0


# ------------------------------------------------------------------ a calibrated run


def test_calibrated_run_stores_the_choice_and_trains_the_same_final_model(runs, tiny_data):
    record = json.loads((runs["calibrated"] / "calibration.json").read_text())
    ckpt = load_checkpoint(runs["calibrated"] / "last.pt")
    plain = load_checkpoint(runs["plain"] / "last.pt")
    assert ckpt["calibration"] == record and plain["calibration"] is None
    assert not (runs["plain"] / "calibration.json").exists()
    assert record["skipped"] is None and len(record["grid"]) == len(calibration.candidates())
    assert set(record["held_out_classes"]) < set(ckpt["split"]["seen"])
    assert record["vocabulary"] == sorted(ckpt["split"]["seen"])  # held-out classes scored among all seen ones
    assert all(set(row["per_class"]) <= set(record["held_out_classes"]) for row in record["grid"])
    assert not set(record["held_out_classes"]) & set(ckpt["split"]["unseen"])
    best = max(row["average_map"] for row in record["grid"])
    assert record["chosen"]["average_map"] >= best - calibration.TIE_TOLERANCE
    # the final checkpoint's inference is the chosen one; everything else is the plain run's
    _, cfg = build_model(ckpt)
    _, plain_cfg = build_model(plain)
    assert cfg.inference == dataclasses.replace(plain_cfg.inference, **record["inference"])
    assert (cfg.model, cfg.train, cfg.data) == (plain_cfg.model, plain_cfg.train, plain_cfg.data)
    assert all(torch.equal(ckpt["model_state"][k], plain["model_state"][k]) for k in plain["model_state"])
    assert default_score_threshold(ckpt) == record["score_threshold"]
    assert default_score_threshold(plain) is None


def test_evaluate_uses_the_stored_choice_and_set_reaches_every_scoring(runs, tiny_data):
    dataset = load_dataset(tiny_data)
    path = runs["calibrated"] / "last.pt"
    record = json.loads((runs["calibrated"] / "calibration.json").read_text())
    stored = protocol.evaluate_checkpoint(path, dataset, "75_25", 0, device="cpu")
    assert stored.inference.method == record["inference"]["method"]
    chosen = Candidate(**{k: record["chosen"][k] for k in ("method", "contrast_weight", "roi_weight", "nms")})
    assert protocol.evaluate_checkpoint(path, dataset, "75_25", 0, device="cpu",
                                        overrides=chosen.overrides()).predictions == stored.predictions
    model, cfg = build_model(load_checkpoint(path))
    split = dataset.split("75_25", 0)
    seen_outputs = set()
    for candidate in calibration.candidates()[::3] + [calibration.candidates()[-1]]:
        ev = protocol.evaluate_checkpoint(path, dataset, "75_25", 0, device="cpu", overrides=candidate.overrides())
        used = dataclasses.replace(cfg, inference=candidate.inference(cfg.inference))
        assert ev.predictions == protocol.predict_split(model, used, dataset, split, None, "cpu"), candidate.name
        seen_outputs.add(json.dumps(ev.predictions, sort_keys=True))
    assert len(seen_outputs) > 5  # the settings really differ


def test_resume_after_calibration_reuses_calibration_json(tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "run"

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    real_build = run.build_training_state
    monkeypatch.setattr(run, "build_training_state", interrupt)  # right after the calibration
    with pytest.raises(KeyboardInterrupt):
        run.train(request(tiny_data, out, epochs=1, calibrate=True))
    record = json.loads((out / "calibration.json").read_text())
    assert not (out / "last.pt").exists()

    def no_second_calibration(*args, **kwargs):
        raise AssertionError("calibrated again")

    monkeypatch.setattr(run, "build_training_state", real_build)
    monkeypatch.setattr(run, "calibrate", no_second_calibration)
    events = []
    run.train(request(tiny_data, out, epochs=1, calibrate=True, resume=True), on_progress=events.append)
    assert load_checkpoint(out / "last.pt")["calibration"] == record
    assert [e.reused for e in events if e.kind == "calibration"] == [True]
    # resuming from last.pt keeps its calibration without calibrating
    run.train(request(tiny_data, out, epochs=2, calibrate=True, resume=True))
    assert load_checkpoint(out / "last.pt")["calibration"] == record


def test_unseen_classes_are_never_read_during_training_or_calibration(tiny_data, tmp_path, monkeypatch):
    """Records every class whose text is encoded, whose windows are built or whose
    evaluation videos / ground truth are asked for; none may be unseen until evaluation."""
    dataset = load_dataset(tiny_data)
    split = dataset.split("75_25", 0)
    touched: set[str] = set()
    real_text = inputs.class_text_embeddings

    def recording_text(ds, names, *args, **kwargs):
        touched.update(names)
        return real_text(ds, names, *args, **kwargs)

    real_init = WindowDataset.__init__

    def recording_windows(self, ds, records, class_names, *args, **kwargs):
        touched.update(class_names)
        touched.update(a.label for r in records for a in r.annotations)
        real_init(self, ds, records, class_names, *args, **kwargs)

    def recording(method):
        def wrapper(view):
            touched.update(view.unseen)
            return method(view)
        return wrapper

    monkeypatch.setattr(inputs, "class_text_embeddings", recording_text)
    monkeypatch.setattr(WindowDataset, "__init__", recording_windows)
    for name in ("eval_videos", "ground_truth"):
        monkeypatch.setattr(dataset, name, recording(getattr(dataset, name)))
    monkeypatch.setattr(run, "load_dataset", lambda *args, **kwargs: dataset)

    run.train(request(tiny_data, tmp_path / "run", epochs=1, calibrate=True, eval_every=0))
    record = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert record["skipped"] is None
    assert set(record["held_out_classes"]) <= touched and set(split.seen) <= touched  # the recorder sees reads
    assert not touched & set(split.unseen), f"unseen classes read: {sorted(touched & set(split.unseen))}"
    # positive control: evaluation reads them
    protocol.evaluate_checkpoint(tmp_path / "run" / "last.pt", dataset, "75_25", 0, device="cpu")
    assert set(split.unseen) <= touched


def test_cli_draws_the_grid_and_no_calibrate_skips_it(tiny_data, tmp_path, capsys):
    sets = [x for kv in TINY_OVERRIDES for x in ("--set", kv)]
    common = ["train", "--dataset", tiny_data, "--split", "75_25", "--epochs", "1", "--seed", "0", "--device", "cpu",
              *sets]
    assert psftr_main([*common, "--output", tmp_path / "a"]) == 0
    err = capsys.readouterr().err
    record = json.loads((tmp_path / "a" / "calibration.json").read_text())
    assert "calibration epoch 1/1" in err and "held-out avg mAP" in err
    assert f"calibration chose: {record['chosen']['name']}" in err
    for row in record["grid"]:
        assert row["name"] in err
    assert psftr_main([*common, "--output", tmp_path / "b", "--no-calibrate"]) == 0
    err = capsys.readouterr().err
    assert "calibration" not in err and not (tmp_path / "b" / "calibration.json").exists()


def test_a_calibration_that_cannot_hold_out_is_skipped_and_changes_nothing(tiny_data):
    dataset = load_dataset(tiny_data)
    split = dataset.split("75_25", 0)
    one_seen = dataclasses.replace(split, seen=split.seen[:1])
    cfg = apply_overrides(preset("thumos14"), TINY_OVERRIDES + ["model.feature_dim=32", "model.text_dim=32"])
    record = calibration.calibrate(calibration.CalibrationRun(dataset, one_seen, cfg, "cpu", (0.5,)))
    assert "fewer than two seen classes" in record["skipped"] and record["score_threshold"] is None
    assert calibration.calibrated_config(cfg, record) == cfg


def test_two_folds_average_each_setting_over_disjoint_held_out_classes(tiny_data):
    dataset = load_dataset(tiny_data)
    split = dataset.split("75_25", 0)
    cfg = apply_overrides(preset("thumos14"), TINY_OVERRIDES + ["model.feature_dim=32", "model.text_dim=32",
                                                                "train.epochs=1", "train.calibration_folds=2"])
    record = calibration.calibrate(calibration.CalibrationRun(dataset, split, cfg, "cpu", (0.5,)))
    first, second = record["folds"]
    assert (first["fold"], second["fold"]) == (0, 1)
    assert not set(first["held_out_classes"]) & set(second["held_out_classes"])
    assert record["held_out_classes"] == first["held_out_classes"] + second["held_out_classes"]
    assert not set(record["held_out_classes"]) & set(split.unseen)
    for row, one, two in zip(record["grid"], first["grid"], second["grid"]):
        assert row["name"] == one["name"] == two["name"]
        assert row["average_map"] == pytest.approx((one["average_map"] + two["average_map"]) / 2)
    best = max(r["average_map"] for r in record["grid"])
    assert record["chosen"]["average_map"] >= best - calibration.TIE_TOLERANCE  # chosen on the means


SMALL = ["model.hidden_dim=64", "model.num_groups=8", "model.dim_feedforward=128", "model.dec_layers=3",
         "model.num_queries=20", "train.lr=1e-3", "train.batch_size=16", "data.slice_size=128",
         "train.lr_drop_epochs=4"]


# ~10 s. Sizes checked on data seeds 0, 1 and 2 (each passes); smaller data or fewer epochs do not
# learn a map that transfers.
def test_where_raw_similarity_is_weak_the_learned_path_carries_the_class_decision(tmp_path):
    """Generator transfer 1: raw frame-text similarity is uninformative, a map learned on
    seen classes transfers. The default (CLIP contrast, read through the model's learned
    visual→text map) must beat the raw-feature localizer on the held-out classes, the
    held-out argmax (margin 0) must keep a learned path too, and randomising the learned
    map must change the detections' labels."""
    data = make_tiny_dataset(tmp_path / "data", num_splits=1, transfer=1.0, train_videos=40, feature_dim=64,
                             num_classes=20, num_groups=5, video_seconds=(30.0, 60.0), instance_seconds=(2.0, 20.0),
                             instances_per_video=(2, 6))
    (result,) = run.train(request(data, tmp_path / "run", epochs=6, overrides=SMALL, calibrate=True, log_every=0))
    ckpt = load_checkpoint(result.checkpoint)
    record = ckpt["calibration"]
    assert record["chosen"]["name"] == calibration.PRIOR_CHOICE.name == "CLIP contrast"  # margin 1: the prior
    by_name = {row["name"]: row["average_map"] for row in record["grid"]}
    assert by_name["CLIP contrast"] > by_name["training-free localizer"] + 0.05
    argmax = calibration.choose({calibration.Candidate(r["method"], r["contrast_weight"], r["roi_weight"], r["nms"]):
                                 r["average_map"] for r in record["grid"]}, margin=0.0)
    assert argmax.method == "psftr"  # a learned path, never the raw-feature localizer

    dataset = load_dataset(data)
    model, cfg = build_model(ckpt)
    split = dataset.split("75_25", 0)
    default = protocol.predict_split(model, cfg, dataset, split, None, "cpu")
    with torch.no_grad():
        torch.manual_seed(1)
        torch.nn.init.normal_(model.visual_text_map.weight, std=0.2)
        torch.nn.init.normal_(model.visual_text_map.bias, std=0.2)
    randomised = protocol.predict_split(model, cfg, dataset, split, None, "cpu")
    labels = [[d["label"] for d in default[v][:10]] for v in sorted(default)]
    assert labels != [[d["label"] for d in randomised[v][:10]] for v in sorted(randomised)]
    truth = dataset.ground_truth(split)
    tious = protocol.default_tious(ckpt.get("preset"))
    from psftr_core.evaluation.detection_map import evaluate_detections

    names = list(split.unseen)
    trained = evaluate_detections(truth, default, tious=tious, classes=names).average
    assert trained > evaluate_detections(truth, randomised, tious=tious, classes=names).average + 0.05
