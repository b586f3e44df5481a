"""``--dtype``: which CPUs get bfloat16, and that the dtype is recorded and never mixed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from psftr_core.errors import InputError
from psftr_core.features import compute_dtype
from psftr_core.features.clip import encode_texts
from psftr_core.features.compute_dtype import resolve_compute_dtype
from psftr_core.features.extract import ExtractOptions, extract_features
from psftr_core.infer.detect import detect

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture()
def detected(monkeypatch):
    """``detected(avx512_bf16, amx)``: fake torch's CPU probes (no override variable)."""
    monkeypatch.delenv(compute_dtype.OVERRIDE_ENV, raising=False)
    monkeypatch.setattr(compute_dtype.platform, "machine", lambda: "x86_64")

    def fake(avx512_bf16: bool, amx: bool) -> None:
        compute_dtype._detected_bfloat16.cache_clear()
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)

    yield fake
    compute_dtype._detected_bfloat16.cache_clear()


def test_auto_is_float32_on_a_cpu_without_native_bfloat16(detected):
    detected(False, False)
    assert resolve_compute_dtype("auto", "cpu") == "float32"
    detected(True, False)
    assert resolve_compute_dtype("auto", "cpu") == "bfloat16"
    detected(False, True)
    assert resolve_compute_dtype("auto", "cpu") == "bfloat16"
    assert resolve_compute_dtype("auto", "cpu", quantize="int8") == "float32"
    assert resolve_compute_dtype("auto", "cuda") == "float16"
    assert resolve_compute_dtype("float32", "cpu") == "float32"


def test_cpuinfo_flags_where_torch_has_no_probe(detected, monkeypatch):
    compute_dtype._detected_bfloat16.cache_clear()
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.setattr(compute_dtype, "_cpu_flags", lambda: {"avx2", "avx512f"})
    assert compute_dtype.native_bfloat16() is False
    compute_dtype._detected_bfloat16.cache_clear()
    monkeypatch.setattr(compute_dtype, "_cpu_flags", lambda: {"avx512f", "amx_bf16"})
    assert compute_dtype.native_bfloat16() is True
    # Arm on Linux reads the bf16 feature; macOS is never native
    compute_dtype._detected_bfloat16.cache_clear()
    monkeypatch.setattr(compute_dtype.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(compute_dtype.platform, "system", lambda: "Linux")
    monkeypatch.setattr(compute_dtype, "_cpu_flags", lambda: {"fp", "asimd", "bf16"})
    assert compute_dtype.native_bfloat16() is True
    compute_dtype._detected_bfloat16.cache_clear()
    monkeypatch.setattr(compute_dtype.platform, "system", lambda: "Darwin")
    assert compute_dtype.native_bfloat16() is False


def test_the_override_variable_wins(monkeypatch, detected):
    detected(True, True)
    monkeypatch.setenv(compute_dtype.OVERRIDE_ENV, "0")
    assert resolve_compute_dtype("auto", "cpu") == "float32"
    detected(False, False)
    monkeypatch.setenv(compute_dtype.OVERRIDE_ENV, "1")
    assert resolve_compute_dtype("auto", "cpu") == "bfloat16"


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_extract_records_the_dtype_and_never_mixes_two(tmp_path, tiny_clip, bikes_video, video_folder, monkeypatch):
    monkeypatch.setenv(compute_dtype.OVERRIDE_ENV, "1")  # auto -> bfloat16 on this "CPU"
    out = tmp_path / "out"
    extract_features([str(bikes_video)], out, ExtractOptions(device="cpu"), handle=tiny_clip)
    manifest = json.loads((out / "manifest.json").read_text())
    info = json.loads((out / "info" / "bikes.json").read_text())
    assert manifest["compute_dtype"] == "bfloat16" and manifest["dtype"] == "float16"
    assert info["settings"]["compute_dtype"] == "bfloat16" and info["compute_dtype"] == "bfloat16"
    bf16 = np.load(out / "features" / "bikes.npy")
    assert bf16.dtype == np.float16 and tiny_clip.image_dtype == "float32"  # the caller's model is untouched

    ref = tmp_path / "ref"
    extract_features([str(bikes_video)], ref, ExtractOptions(device="cpu", dtype="float32"), handle=tiny_clip)
    fp32 = np.load(ref / "features" / "bikes.npy")
    assert fp32.dtype == np.float32 and "compute_dtype" not in json.loads((ref / "manifest.json").read_text())["settings"]
    assert _cosine(fp32, bf16).min() >= 0.995

    # A float32 run next to the bfloat16 video is refused and names the dtype; nothing is written.
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    with pytest.raises(InputError, match=r"--dtype bfloat16 there, float32 now"):
        extract_features([str(video_folder / "alpha.mp4")], out, ExtractOptions(device="cpu", dtype="float32"),
                         handle=tiny_clip)
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    # ... and so is a float32 "auto" CPU on it (the same command on a CPU without bfloat16)
    monkeypatch.setenv(compute_dtype.OVERRIDE_ENV, "0")
    with pytest.raises(InputError, match=r"--dtype bfloat16 there, float32 now"):
        extract_features([str(video_folder / "alpha.mp4")], out, ExtractOptions(device="cpu"), handle=tiny_clip)


def _planted_video(folder, bikes_video):
    """bikes.mp4's first 4 s, 3 s of red with green lines, then 4 s more of bikes.mp4."""
    import av

    from fixtures_clip import encode_frames

    with av.open(str(bikes_video)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    planted = np.zeros_like(frames[0])
    planted[..., 0] = 230
    planted[::8, :, 1] = 255
    return encode_frames(folder / "planted.mp4", frames[:100] + [planted] * 75 + frames[100:200],
                         options={"preset": "ultrafast", "crf": "18"})


def _tiou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def test_detect_cache_keys_name_the_dtype_and_segments_agree(tmp_path, tiny_clip_files, bikes_video):
    cache = tmp_path / "cache"
    planted = _planted_video(tmp_path, bikes_video)
    common = dict(clip_config=tiny_clip_files.config, clip_pretrained=tiny_clip_files.weights, device="cpu",
                  cache_dir=cache, threshold=0.0)
    actions = "riding a bike,walking,cooking"
    reports = {dtype: detect([planted, bikes_video], actions, dtype=dtype, **common)
               for dtype in ("float32", "bfloat16")}
    specs = sorted(json.loads(p.read_text())["extra"]["compute_dtype"]
                   for p in (cache / "features").glob("*/spec.json"))
    assert specs == ["bfloat16", "float32"]  # two cache entries, one per dtype
    assert "computing in bfloat16" in reports["bfloat16"].details
    found = {dtype: report.results() for dtype, report in reports.items()}
    key = lambda s: (s["label"], s["segment"][0], s["segment"][1])  # noqa: E731
    # Where the frames carry a signal (the planted 4-7 s), the segments are the same, up to
    # the order of equal scores and the scores' last digits.
    f32, b16 = found["float32"]["planted"], found["bfloat16"]["planted"]
    assert any(s["segment"][0] <= 4.0 and s["segment"][1] >= 7.0 for s in f32)
    assert sorted(map(key, f32)) == sorted(map(key, b16))
    score = {key(s): s["score"] for s in f32}
    assert all(abs(s["score"] - score[key(s)]) < 0.01 for s in b16)
    # On the bare real clip, random weights give no signal beyond noise: every segment still
    # has its twin of the same label (a boundary may move by a snippet).
    f32, b16 = found["float32"]["bikes"], found["bfloat16"]["bikes"]
    assert len(f32) == len(b16) > 0
    assert all(max(_tiou(a["segment"], b["segment"]) for b in b16 if b["label"] == a["label"]) >= 0.7 for a in f32)


def test_text_cache_keys_name_a_dtype_other_than_float32(tmp_path, tiny_clip):
    names = ["riding a bike", "walking"]
    fp32 = encode_texts(tiny_clip, names, cache_dir=tmp_path)
    bf16 = encode_texts(tiny_clip, names, cache_dir=tmp_path, dtype="bfloat16")
    assert len(list((tmp_path / "text").glob("*.npy"))) == 4  # not each other's cache entries
    assert not np.array_equal(fp32, bf16) and _cosine(fp32, bf16).min() >= 0.99
    np.testing.assert_array_equal(encode_texts(tiny_clip, names, cache_dir=tmp_path, dtype="auto"), fp32)
