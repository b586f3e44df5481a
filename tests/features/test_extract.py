"""Feature extraction engine and the ``psftr extract`` command (tiny CLIP, real decoding)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from psftr_core.errors import InputError, PartialFailure, PsftrError
from psftr_core.features import decoders
from psftr_core.features import extract as extract_module
from psftr_core.features import pipeline
from psftr_core.features.extract import ExtractListener, ExtractOptions, extract_features

pytestmark = pytest.mark.usefixtures("torch_one_thread")
ROOT = Path(__file__).resolve().parents[2]


def run(inputs, out, handle, **options):
    opts = ExtractOptions(**{"device": "cpu", **options})
    return extract_features([str(i) for i in inputs], out, opts, handle=handle)


def direct_features(handle, path: Path, indices) -> np.ndarray:
    """open_clip's own transform (PIL) and encode_image on PyAV's frames: the reference."""
    from PIL import Image

    from psftr_core.features.decoders import open_video

    frames = np.concatenate(list(open_video(path, "pyav").iter_frames([int(i) for i in indices], chunk=64)))
    batch = torch.stack([handle.preprocess(Image.fromarray(f)) for f in frames])
    with torch.inference_mode():
        return handle.model.encode_image(batch).numpy()


def tmp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_features_equal_direct_forward(tmp_path, tiny_clip, bikes_video, video_folder):
    out = tmp_path / "out"
    # preprocess="pil": open_clip's PIL steps, so the features equal the direct forward
    summary = run([bikes_video, video_folder], out, tiny_clip, dtype="float32", batch_size=8, preprocess="pil")
    assert summary.ids("done") == ["alpha", "beta", "bikes"] and summary.ids("failed") == []
    for vid, path, frames in (("bikes", bikes_video, 250), ("alpha", video_folder / "alpha.mp4", 50),
                              ("beta", video_folder / "beta.mp4", 36)):
        feats = np.load(out / "features" / f"{vid}.npy")
        count = frames // 8
        assert feats.shape == (count, 64) and feats.dtype == np.float32
        indices = np.arange(count) * 8 + 4  # centre frame of each 8-frame window
        np.testing.assert_allclose(feats, direct_features(tiny_clip, path, indices), atol=1e-4, rtol=0)
        fps = 25.0
        np.testing.assert_allclose(np.load(out / "timestamps" / f"{vid}.npy"), indices / fps, atol=1e-4)

    info = json.loads((out / "feature_info.json").read_text())
    assert info["bikes"]["snippet_length"] == 31 and info["bikes"]["frame_length"] == 250
    assert info["bikes"]["video_fps"] == pytest.approx(25.0)
    assert info["bikes"]["snippet_duration"] == pytest.approx(31 * 8 / 25)
    dataset = yaml.safe_load((out / "dataset.yaml").read_text())
    assert dataset["annotations"] == "annotations.json" and dataset["features"] == "features"
    assert dataset["feature_info"] == "feature_info.json" and dataset["test_subset"] == "test"
    annotations = json.loads((out / "annotations.json").read_text())
    assert annotations["classes"] == []
    assert annotations["database"]["alpha"] == {"subset": "test", "duration": pytest.approx(2.0),
                                                 "fps": pytest.approx(25.0), "annotations": []}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["clip"]["weights_id"] == tiny_clip.weights_id
    assert manifest["sampling"]["stride"] == 8 and manifest["dtype"] == "float32"
    assert manifest["num_videos"] == 3 and "Normalize" in manifest["clip"]["transform"]
    assert manifest["compute_dtype"] == "float32" and manifest["decoding"]["preprocess"] == "pil"
    assert sum(manifest["decoding"]["videos_by_decoder"].values()) == 3
    assert tmp_files(out) == []


def test_default_float16_and_fps_sampling(tmp_path, tiny_clip, video_folder):
    alpha = video_folder / "alpha.mp4"  # 50 frames at 25 fps = 2.0 s
    run([alpha], tmp_path / "half", tiny_clip)
    half = np.load(tmp_path / "half" / "features" / "alpha.npy")
    assert half.dtype == np.float16 and half.shape == (6, 64)
    exact = direct_features(tiny_clip, alpha, np.arange(6) * 8 + 4)
    np.testing.assert_allclose(half.astype(np.float32), exact, atol=1e-2, rtol=1e-2)

    run([alpha], tmp_path / "fps", tiny_clip, fps=4.0, dtype="float32")
    feats = np.load(tmp_path / "fps" / "features" / "alpha.npy")
    assert feats.shape == (8, 64)  # floor(2.0 s * 4)
    times = np.load(tmp_path / "fps" / "timestamps" / "alpha.npy")
    np.testing.assert_allclose(times, (np.arange(8) + 0.5) / 4)
    # centre times 0.125, 0.375, ... s are nearest to frames 3, 9, 16, 22, 28, 34, 41, 47 (25 fps)
    expected = [3, 9, 16, 22, 28, 34, 41, 47]
    np.testing.assert_array_equal(np.round(times * 25), expected)
    np.testing.assert_allclose(feats, direct_features(tiny_clip, alpha, expected), atol=1e-4)
    dataset = yaml.safe_load((tmp_path / "fps" / "dataset.yaml").read_text())
    assert dataset["feature_fps"] == 4.0


class Recorder(ExtractListener):
    def __init__(self):
        self.events = []

    def inputs_collected(self, notes):
        self.events.append(("notes", [note.split(":")[0] for note in notes]))

    def shard_selected(self, shard, selected, total):
        self.events.append(("shard", shard, selected, total))

    def run_started(self, videos):
        self.events.append(("run", videos))

    def video_progress(self, video_id, encoded, total):
        self.events.append(("progress", video_id, encoded, total))

    def video_done(self, result):
        self.events.append(("done", result.video_id, result.status, result.frames))


def test_listener_hears_notes_progress_and_results(tmp_path, tiny_clip, make_video):
    videos = tmp_path / "videos"
    make_video(videos / "a.mp4", 40)  # 5 features at stride 8
    make_video(videos / "b.mp4", 16)  # 2 features
    (videos / "b.txt").write_text("not a video")
    out = tmp_path / "out"
    opts = ExtractOptions(device="cpu", batch_size=2, shard="0/1")
    recorder = Recorder()
    extract_features([str(videos)], out, opts, handle=tiny_clip, listener=recorder)
    assert recorder.events == [
        ("notes", [f"skipped {videos / 'b.txt'}"]),
        ("shard", (0, 1), 2, 2),
        ("run", 2),
        ("progress", "a", 0, 5), ("progress", "a", 2, 5), ("progress", "a", 4, 5),
        ("progress", "b", 0, 2),  # b starts while a's last frame waits for a full batch
        ("progress", "a", 5, 5), ("progress", "b", 1, 2),  # that batch: a's last frame and b's first
        ("done", "a", "done", 5),
        ("progress", "b", 2, 2),
        ("done", "b", "done", 2),
    ]
    again = Recorder()
    extract_features([str(videos / "a.mp4")], out, opts, handle=tiny_clip, listener=again)
    assert again.events == [("notes", []), ("shard", (0, 1), 1, 1)]  # complete: nothing to run


def test_rerun_skips_without_decoding_and_redoes_on_new_settings(tmp_path, tiny_clip, video_folder, monkeypatch):
    out = tmp_path / "out"
    run([video_folder], out, tiny_clip)
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "features").iterdir()}

    def no_decoding(*args, **kwargs):
        raise AssertionError("a finished video was decoded again")

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "open_video", no_decoding)
        summary = run([video_folder], out, tiny_clip)
    assert summary.ids("skipped") == ["alpha", "beta"] and summary.ids("done") == []
    assert {p: p.stat().st_mtime_ns for p in (out / "features").iterdir()} == mtimes

    summary = run([video_folder], out, tiny_clip, stride=4)
    assert summary.ids("done") == ["alpha", "beta"]
    assert all(r.redone for r in summary.results)
    assert np.load(out / "features" / "alpha.npy").shape == (12, 64)  # floor(50 / 4)
    assert json.loads((out / "feature_info.json").read_text())["alpha"]["snippet_length"] == 12

    # a damaged feature file is redone even with the same settings
    (out / "features" / "beta.npy").write_bytes(b"\x93NUMPY garbage")
    summary = run([video_folder], out, tiny_clip, stride=4)
    assert summary.ids("done") == ["beta"] and summary.ids("skipped") == ["alpha"]


def test_corrupt_video_fails_alone(tmp_path, tiny_clip, make_video):
    videos = tmp_path / "videos"
    make_video(videos / "good.mp4", 20)
    (videos / "broken.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    make_video(videos / "short.mp4", 5)  # fewer frames than the stride
    (videos / "readme.txt").write_text("not a video")
    out = tmp_path / "out"
    summary = run([videos], out, tiny_clip)
    assert summary.ids("done") == ["good"]
    assert summary.ids("failed") == ["broken", "short"]
    assert any("readme.txt" in note for note in summary.notes)
    reasons = {r.video_id: r.error for r in summary.results if r.status == "failed"}
    assert reasons["broken"] == "cannot decode broken.mp4: not a video or corrupt"
    assert reasons["short"].startswith("short.mp4 is too short for one feature at --stride 8 (5 frames")
    assert np.load(out / "features" / "good.npy").shape == (2, 64)
    assert sorted(p.name for p in (out / "features").iterdir()) == ["good.npy"]
    with pytest.raises(PartialFailure, match="2 of 3 videos failed"):
        summary.raise_for_failures()
    only_bad = run([videos / "broken.mp4"], tmp_path / "out2", tiny_clip)
    with pytest.raises(PsftrError, match="all 1 videos failed") as info:
        only_bad.raise_for_failures()
    assert not isinstance(info.value, PartialFailure)


def test_interrupted_run_leaves_no_partial_files_and_resumes(tmp_path, tiny_clip, make_video, monkeypatch):
    videos = tmp_path / "videos"
    for name in ("v1", "v2", "v3"):
        make_video(videos / f"{name}.mp4", 40)
    out = tmp_path / "out"
    real_encode = pipeline.encode_images
    written = []
    real_write = extract_module.write_video_files

    def write(out, video, *args, **kwargs):
        real_write(out, video, *args, **kwargs)
        written.append(video.video_id)

    def encode(handle, batch, dtype="float32"):
        if written:  # first video finished: Ctrl-C while encoding the second
            raise KeyboardInterrupt
        return real_encode(handle, batch, dtype)

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "encode_images", encode)
        patch.setattr(extract_module, "write_video_files", write)
        with pytest.raises(KeyboardInterrupt):
            run([videos], out, tiny_clip, batch_size=2)
    assert written == ["v1"]
    assert sorted(p.name for p in (out / "features").iterdir()) == ["v1.npy"]
    assert sorted(p.name for p in (out / "info").iterdir()) == ["v1.json"]
    assert tmp_files(out) == []
    assert list(json.loads((out / "feature_info.json").read_text())) == ["v1"]
    deadline = time.time() + 5
    while any(t.name == "psftr-decode" for t in threading.enumerate()) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "psftr-decode" for t in threading.enumerate())

    summary = run([videos], out, tiny_clip, batch_size=2)
    assert summary.ids("skipped") == ["v1"] and summary.ids("done") == ["v2", "v3"]
    assert list(json.loads((out / "feature_info.json").read_text())) == ["v1", "v2", "v3"]


def test_shards_cover_every_video_once(tmp_path, tiny_clip, make_video, monkeypatch):
    videos = tmp_path / "videos"
    for i in range(5):
        make_video(videos / f"s{i}.mp4", 16)
    out = tmp_path / "out"
    first = run([videos], out, tiny_clip, shard="0/2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    second = run([videos], out, tiny_clip)  # shard from RANK / WORLD_SIZE
    done = first.ids("done") + second.ids("done")
    assert sorted(done) == [f"s{i}" for i in range(5)] and len(set(done)) == 5
    assert first.ids("done") == ["s0", "s2", "s4"]
    assert sorted(json.loads((out / "feature_info.json").read_text())) == sorted(done)


def test_quantize_int8_reports_drift_and_leaves_callers_model(tmp_path, tiny_clip, video_folder):
    summary = run([video_folder / "alpha.mp4"], tmp_path / "q", tiny_clip, quantize="int8", dtype="float32")
    drift = summary.quantize_drift
    assert drift["frames"] == 6 and 0.9 < drift["cosine_mean"] <= 1.0 + 1e-6 and drift["relative_l2"] < 0.5
    assert isinstance(tiny_clip.model.visual.transformer.resblocks[0].mlp.c_fc, torch.nn.Linear)
    assert type(tiny_clip.model.visual.transformer.resblocks[0].mlp.c_fc) is torch.nn.Linear
    manifest = json.loads((tmp_path / "q" / "manifest.json").read_text())
    assert manifest["quantize"]["mode"] == "int8" and manifest["quantize"]["drift"] == drift
    q = np.load(tmp_path / "q" / "features" / "alpha.npy")
    exact = direct_features(tiny_clip, video_folder / "alpha.mp4", np.arange(6) * 8 + 4)
    cosine = (q * exact).sum(1) / np.linalg.norm(q, axis=1) / np.linalg.norm(exact, axis=1)
    np.testing.assert_allclose(cosine.mean(), drift["cosine_mean"], atol=1e-5)


def test_a_given_int8_tower_is_used_as_is(tmp_path, tiny_clip, video_folder):
    """A caller's already-quantized handle (benchmarks/extract.py makes one per dtype) is not
    quantized again: the same features as a run that quantizes on its first batch."""
    import copy

    from psftr_core.features.clip import quantize_image_tower

    fresh = run([video_folder / "alpha.mp4"], tmp_path / "fresh", tiny_clip, quantize="int8", dtype="float32")
    quantized = copy.copy(tiny_clip)
    quantized.model = copy.deepcopy(tiny_clip.model)
    quantize_image_tower(quantized)
    given = run([video_folder / "alpha.mp4"], tmp_path / "given", quantized, quantize="int8", dtype="float32")
    assert fresh.quantize_drift is not None and given.quantize_drift is None  # no second quantization
    np.testing.assert_array_equal(np.load(tmp_path / "given" / "features" / "alpha.npy"),
                                  np.load(tmp_path / "fresh" / "features" / "alpha.npy"))


def test_user_dataset_files_are_not_overwritten(tmp_path, tiny_clip, video_folder):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "dataset.yaml").write_text("name: mine\nannotations: gt.json\nfeatures: features\n")
    (out / "annotations.json").write_text('{"classes": ["x"], "database": {}}')
    run([video_folder / "beta.mp4"], out, tiny_clip)
    assert (out / "dataset.yaml").read_text().startswith("name: mine")
    assert json.loads((out / "annotations.json").read_text())["classes"] == ["x"]
    assert (out / "features" / "beta.npy").is_file()


def _cli(args, capfd) -> tuple[int, str, str]:
    """``psftr extract ARGS`` in-process; (exit code, stdout, stderr) at file-descriptor level,
    so native decoder output would show too."""
    from train_helpers import psftr_main

    code = psftr_main(["extract", *map(str, args)])
    out, err = capfd.readouterr()
    return code, out, err


def test_cli_exit_codes(tmp_path, tiny_clip_files, make_video, capfd):
    videos = tmp_path / "videos"
    make_video(videos / "ok.mp4", 16)
    (videos / "bad.mp4").write_bytes(b"\x00" * 2048)
    (videos / "notes.txt").write_text("hello")
    out = tmp_path / "out"
    capfd.readouterr()
    code, stdout, stderr = _cli([videos, "--output", out, "--clip-config", tiny_clip_files.config,
                                 "--clip-pretrained", tiny_clip_files.weights, "--device", "cpu", "--quiet"], capfd)
    assert code == 3, stderr
    assert stdout == ""
    assert "skipped" in stderr and "notes.txt" in stderr
    assert "psftr: error: 1 of 2 videos failed" in stderr
    assert np.load(out / "features" / "ok.npy").shape == (2, 64)

    code, _, stderr = _cli([tmp_path / "absent.mp4", "--output", out], capfd)
    assert code == 2
    assert "absent.mp4" in stderr and "Traceback" not in stderr


# ----------------------------------------------------------------------------- issues 13 and 14


def test_manifest_counts_the_decoders_and_auto_reads_narrow_videos_with_pyav(tmp_path, tiny_clip, video_folder):
    from test_decoders import write_pattern_video

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "alpha.mp4").write_bytes((video_folder / "alpha.mp4").read_bytes())
    write_pattern_video(videos / "thin.mp4", width=2, frames=16, pix_fmt="yuv444p", options={"preset": "ultrafast"})
    out = tmp_path / "out"
    summary = run([videos], out, tiny_clip, stride=1)  # every frame: where auto would take decord
    assert summary.ids("done") == ["alpha", "thin"]
    assert np.load(out / "features" / "thin.npy").shape == (16, 64)
    info = {vid: json.loads((out / "info" / f"{vid}.json").read_text()) for vid in ("alpha", "thin")}
    assert info["thin"]["decoder"] == "pyav"  # decord garbles 2 px wide frames
    expected = {"decord": 1, "pyav": 1} if decoders.decord_available() else {"pyav": 2}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["decoding"]["videos_by_decoder"] == expected and manifest["decoding"]["decoder"] == "auto"


def test_other_settings_for_videos_the_run_does_not_cover_are_refused(tmp_path, tiny_clip, video_folder):
    out = tmp_path / "out"
    run([video_folder], out, tiny_clip)  # float16
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    with pytest.raises(InputError) as info:
        run([video_folder / "alpha.mp4"], out, tiny_clip, dtype="float32")
    message = str(info.value)
    assert str(out) in message and "(beta; feature file dtype float16 there, float32 now)" in message
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before  # nothing written
    # the same settings for one video, or new settings for all of them, are fine
    assert run([video_folder / "alpha.mp4"], out, tiny_clip).ids("skipped") == ["alpha"]
    summary = run([video_folder], out, tiny_clip, dtype="float32")
    assert summary.ids("done") == ["alpha", "beta"] and all(r.redone for r in summary.results)
    assert sorted(json.loads((out / "feature_info.json").read_text())) == ["alpha", "beta"]


def test_rerun_with_nothing_to_do_does_not_load_the_model(tmp_path, tiny_clip_files, video_folder, monkeypatch):
    options = ExtractOptions(clip_config=str(tiny_clip_files.config), clip_pretrained=str(tiny_clip_files.weights),
                             device="cpu")
    out = tmp_path / "out"
    extract_features([str(video_folder)], out, options)

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded with nothing to do")

    monkeypatch.setattr(extract_module, "load_clip", no_loading)
    summary = extract_features([str(video_folder)], out, options)
    assert summary.ids("skipped") == ["alpha", "beta"] and summary.ids("done") == []
    with pytest.raises(AssertionError, match="the model was loaded"):  # other settings: the model is needed
        extract_features([str(video_folder)], out, dataclasses.replace(options, stride=4))


def test_fps_above_the_frame_rate_gives_one_feature_per_frame_and_a_warning(tmp_path, tiny_clip, video_folder,
                                                                            caplog):
    with caplog.at_level(logging.WARNING, logger="psftr_core"):
        summary = run([video_folder / "alpha.mp4"], tmp_path / "out", tiny_clip, fps=50.0)
    assert summary.ids("done") == ["alpha"]
    assert np.load(tmp_path / "out" / "features" / "alpha.npy").shape == (50, 64)  # 50 frames, each once
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "alpha.mp4 has 25 frames per second, fewer than --fps 50" in warnings[0]


def test_fifos_and_symlink_loops_in_the_folder_are_skipped_without_opening_them(tmp_path, tiny_clip, video_folder):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "alpha.mp4").write_bytes((video_folder / "alpha.mp4").read_bytes())
    os.mkfifo(videos / "pipe.mp4")
    os.symlink("b.mp4", videos / "a.mp4")
    os.symlink("a.mp4", videos / "b.mp4")
    done: list = []
    thread = threading.Thread(target=lambda: done.append(run([videos], tmp_path / "out", tiny_clip)), daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():  # it opened the FIFO: let it go, then fail
        with open(videos / "pipe.mp4", "wb"):
            pass
        pytest.fail("extract opened the FIFO")
    summary = done[0]
    assert summary.ids("done") == ["alpha"]
    assert [note.split(": ", 1)[1] for note in summary.notes] == ["symlink loop", "symlink loop",
                                                                  "not a regular file (named pipe)"]


def test_cli_decoder_and_dtype_flags(tmp_path, tiny_clip_files, video_folder, capsys):
    from train_helpers import psftr_main

    flags = ["--clip-config", tiny_clip_files.config, "--clip-pretrained", tiny_clip_files.weights,
             "--device", "cpu", "--quiet", "--decoder", "pyav"]
    out = tmp_path / "out"
    assert psftr_main(["extract", video_folder / "beta.mp4", "--output", out, *flags, "--dtype", "bf16"]) == 2
    assert "--dtype must be one of auto|float32|bfloat16|float16, got 'bf16'" in capsys.readouterr().err
    assert psftr_main(["extract", video_folder / "beta.mp4", "--output", out, *flags, "--dtype", "bfloat16",
                       "--quantize", "int8"]) == 2
    assert "--quantize int8 keeps the tower's other operations in float32" in capsys.readouterr().err
    assert not out.exists()
    assert psftr_main(["extract", video_folder / "beta.mp4", "--output", out, *flags, "--decode-workers", "2"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["decoding"]["videos_by_decoder"] == {"pyav": 1} and manifest["decoding"]["decoder"] == "pyav"
