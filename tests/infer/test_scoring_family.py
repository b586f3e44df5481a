"""The scoring family: every row of the zero-shot table from one checkpoint, by inference.* settings."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from psftr_core.config import PSFTRConfig, apply_overrides, config_to_dict
from psftr_core.data.datasets import load_dataset
from psftr_core.data.windows import WindowDataset, input_length, windowing_from_config
from psftr_core.infer.localizer import localize
from psftr_core.infer.predict import predict_dataset, video_windows, window_batches
from psftr_core.infer.curves import segment_contrast
from psftr_core.infer.scoring import PostProcess, topk_pairs
from psftr_core.model import PSFTR
from psftr_core.segments import segment_cw_to_se
from psftr_core.runtime.checkpoint import build_model, load_checkpoint, make_checkpoint, save_checkpoint
from train_helpers import TINY_OVERRIDES, make_tiny_dataset, one_thread

# The rows of the table that a trained model can produce, as --set overrides.
ROWS = {
    "learned": ["inference.contrast_weight=0", "inference.roi_weight=0"],
    "roi_only": ["inference.contrast_weight=0", "inference.roi_weight=1"],  # GAP-style
    "paper": ["inference.contrast_weight=0", "inference.roi_weight=0.5", "inference.nms=cross_window"],
    "contrast": ["inference.contrast_weight=1"],
    "fused": ["inference.contrast_weight=0.5", "inference.roi_weight=0.5"],
    "linear_fused": ["inference.contrast_weight=0.3", "inference.roi_weight=0"],
}
NEW_KEYS = ("roi_weight", "contrast_weight", "score_threshold", "method")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A dataset, an untrained checkpoint saved the way old versions did (no new
    inference keys), its evaluation windows and unseen-class text."""
    root = tmp_path_factory.mktemp("family")
    data = make_tiny_dataset(root / "data", num_splits=1, train_videos=2, test_videos=4)
    ds = load_dataset(data)
    split = ds.split("75_25", 0)
    cfg = apply_overrides(PSFTRConfig(), TINY_OVERRIDES + ["model.feature_dim=32", "model.text_dim=32"])
    torch.manual_seed(0)
    model = PSFTR(cfg.model)
    config = config_to_dict(cfg)
    for key in NEW_KEYS:  # as written before these settings existed
        del config["inference"][key]
    ckpt = make_checkpoint(model=model, config=config, preset="thumos14", feature_spec={}, vocabulary=split.seen,
                           split={"ratio": "75_25", "index": 0}, epoch=1, epochs_total=1)
    save_checkpoint(root / "old.pt", ckpt)
    windows = WindowDataset(ds, ds.eval_videos(split), split.unseen, windowing_from_config(cfg.data), training=False)
    text = torch.as_tensor(np.stack([ds.text_embeddings[c] for c in split.unseen]), dtype=torch.float32)
    return root / "old.pt", ds, split, windows, text


def _predict(model, cfg, windows, text):
    with one_thread():
        return predict_dataset(model, windows, text, inference=cfg.inference, batch_size=4)


def _randomised_class_head(model):
    """A copy of ``model`` whose class_proj and SPDE (the learned class logits) are random."""
    other = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    for module in (other.class_proj, other.spde):
        for param in module.parameters():
            param.data = torch.randn(param.shape, generator=generator)
    return other


def test_each_row_is_reached_from_one_checkpoint_by_overrides(setup):
    path, _, _, windows, text = setup
    model, cfg = build_model(load_checkpoint(path))
    found = {name: _predict(model, apply_overrides(cfg, sets), windows, text) for name, sets in ROWS.items()}
    found["localizer"] = _predict(None, apply_overrides(cfg, ["inference.method=localizer"]), windows, text)
    assert all(any(found[name].values()) for name in found)  # every row detects something
    names = list(found)
    for i, a in enumerate(names):  # every row is a different scoring
        for b in names[i + 1:]:
            assert found[a] != found[b], (a, b)
    # the old shorthands are rows of the family: "model" = (w_c 0, the model's w_r 0.5), "contrast" = w_c 1
    paper_by_shorthand = apply_overrides(cfg, ["inference.scoring=model", "inference.nms=cross_window"])
    assert _predict(model, paper_by_shorthand, windows, text) == found["paper"]
    assert _predict(model, cfg, windows, text) == found["contrast"]  # an old checkpoint's default


def test_which_rows_read_the_learned_class_head(setup):
    path, _, _, windows, text = setup
    model, cfg = build_model(load_checkpoint(path))
    scrambled = _randomised_class_head(model)
    for name, reads_learned in (("learned", True), ("paper", True), ("fused", True), ("roi_only", False),
                                ("contrast", False)):
        row = apply_overrides(cfg, ROWS[name])
        same = _predict(model, row, windows, text) == _predict(scrambled, row, windows, text)
        assert same != reads_learned, name


def test_window_scores_follow_the_formula(setup):
    path, ds, _, windows, text = setup
    model, cfg = build_model(load_checkpoint(path))
    video_id = next(iter(windows.records))
    video = video_windows(video_id, ds.load_features(video_id), ds.snippet_times(video_id),
                          windows.durations[video_id], windowing_from_config(cfg.data))
    batch = next(window_batches([video], text, input_length(windowing_from_config(cfg.data)), 4, True))
    with torch.no_grad():
        outputs = model(batch.features, batch.mask, batch.text)
    learned = outputs["pred_logits"]
    base = PostProcess.from_config(cfg.model, apply_overrides(cfg, ROWS["roi_only"]).inference)
    roi = base.roi_logits(batch.features, batch.mask, outputs["pred_segments"], text)
    actionness = outputs["pred_actionness"].sigmoid()
    expected_probs = {
        "learned": learned.softmax(-1),
        "roi_only": roi.softmax(-1),
        "paper": (0.5 * learned + 0.5 * roi).softmax(-1),
        "fused": (0.5 * learned + 0.5 * roi).softmax(-1),
        "linear_fused": learned.softmax(-1),
        "contrast": torch.zeros_like(learned),  # weight 0
    }
    for name, probs in expected_probs.items():
        post = PostProcess.from_config(cfg.model, apply_overrides(cfg, ROWS[name]).inference)
        w_c = {"learned": 0, "roi_only": 0, "paper": 0, "fused": 0.5, "linear_fused": 0.3, "contrast": 1}[name]
        assert post.contrast_weight == w_c
        for b, det in enumerate(post(outputs, batch)):
            segments = outputs["pred_segments"][b]
            seconds = np.clip(batch.windows[b].to_video_time(segment_cw_to_se(segments).clamp(0, 1).double().numpy()),
                              0.0, batch.durations[b])
            contrast = torch.from_numpy(segment_contrast(batch.curves[b].curves, batch.curves[b].times, seconds))
            scores = actionness[b].double() * ((1 - w_c) * probs[b].double() + w_c * contrast)
            _, cls, sc = topk_pairs(scores, segments, post.topk)
            np.testing.assert_allclose(det.scores, sc.numpy(), rtol=1e-5, atol=1e-7, err_msg=name)
            assert det.classes.tolist() == cls.tolist(), name


def test_localizer_method_is_the_training_free_localizer_and_thresholds_apply(setup):
    path, ds, _, windows, text = setup
    _, cfg = build_model(load_checkpoint(path))
    got = _predict(None, apply_overrides(cfg, ["inference.method=localizer"]), windows, text)
    for video_id, record in windows.records.items():
        expected = localize(ds.load_features(video_id), ds.snippet_times(video_id), text.numpy(),
                            windows.class_names, duration=record.duration)
        assert got[video_id] == expected
    cut = _predict(None, apply_overrides(cfg, ["inference.method=localizer", "inference.score_threshold=0.5"]),
                   windows, text)
    for video_id in got:
        assert cut[video_id] == [d for d in got[video_id] if d["score"] >= 0.5]
    assert sum(map(len, cut.values())) < sum(map(len, got.values()))


def test_the_new_settings_are_validated_and_null_restores_the_shorthand():
    from psftr_core.errors import InputError

    cfg = apply_overrides(PSFTRConfig(), ["inference.roi_weight=0.2", "inference.contrast_weight=0.7"])
    assert (cfg.inference.roi_weight, cfg.inference.contrast_weight) == (0.2, 0.7)
    back = apply_overrides(cfg, ["inference.roi_weight=null", "inference.contrast_weight=null"])
    assert (back.inference.roi_weight, back.inference.contrast_weight) == (None, None)
    for bad, word in (("inference.roi_weight=1.5", "roi_weight"), ("inference.contrast_weight=-0.1", "contrast_weight"),
                      ("inference.score_threshold=-1", "score_threshold"), ("inference.method=gap", "method")):
        with pytest.raises(InputError, match=word):
            apply_overrides(PSFTRConfig(), [bad])
