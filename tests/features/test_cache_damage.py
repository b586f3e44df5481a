"""A damaged feature-cache entry is dropped and computed again, with one warning that names
the video and what is wrong (psftr_core.features.cache, issue 27 mechanism 5)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from psftr_core.features.cache import FeatureCache, FeatureSpec

FINGERPRINT = "ab" * 16
T, D = 6, 4  # 48 frames at stride 8
META = {"duration": 1.92, "frame_length": 48, "source": "alpha.mp4"}


def spec() -> FeatureSpec:
    return FeatureSpec(clip_model="m@1", weights="sha256:ab", sampling="stride=8")


def good_entry() -> tuple[np.ndarray, np.ndarray]:
    return np.arange(T * D, dtype=np.float32).reshape(T, D) / 10, (np.arange(T) + 0.5) * 0.32


def overwrite_entry(path: Path, features: np.ndarray, times: np.ndarray, meta: dict = META) -> None:
    """Replace an entry's arrays, as a damaged disk or another program would."""
    with open(path, "wb") as handle:
        np.savez(handle, features=features, times=times, meta=np.array(json.dumps(meta)))


def _narrow(f, t):
    return f[:, :3], t


def _nan(f, t):
    f = f.copy()
    f[2, 1] = np.nan
    return f, t


def _float32(f, t):
    return f.astype(np.float32), t


def _short(f, t):
    return f[:5], t[:5]


def _times(f, t):
    return f, t[:5]


def _backwards(f, t):
    return f, t[::-1].copy()


DAMAGE = {  # how -> (change of (features, times), words the warning must say)
    "narrow": (_narrow, "3-d, but this CLIP model gives 4-d"),
    "nan": (_nan, "1 NaN or infinite"),
    "float32": (_float32, "float32, expected float16"),
    "short": (_short, "5 features, but stride=8 sampling of its recorded video gives 6"),
    "times": (_times, "5 feature times for 6 features"),
    "backwards": (_backwards, "not finite and increasing"),
}


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_damaged_entry_is_dropped_with_one_warning_naming_the_video(tmp_path, caplog, how):
    change, words = DAMAGE[how]
    features, times = good_entry()
    path = FeatureCache(tmp_path, spec()).put(FINGERPRINT, features, times, META)
    overwrite_entry(path, *change(features.astype(np.float16), times))
    cache = FeatureCache(tmp_path, spec())  # a later run: the width comes from spec.json
    with caplog.at_level(logging.WARNING, logger="psftr_core"):
        assert cache.get(FINGERPRINT) is None
        assert cache.get(FINGERPRINT) is None  # now a plain miss: no second warning
    (warning,) = warnings_of(caplog)
    assert "video alpha.mp4" in warning and words in warning and "computed again" in warning, warning
    assert not path.exists() and cache.misses == 2 and cache.hits == 0 and cache.dropped == 1
    cache.put(FINGERPRINT, features, times, META)  # what the caller does next
    assert np.array_equal(cache.get(FINGERPRINT).features, features.astype(np.float16))


def test_an_unreadable_entry_is_dropped_with_one_warning_naming_the_entry(tmp_path, caplog):
    path = FeatureCache(tmp_path, spec()).put(FINGERPRINT, *good_entry(), META)
    path.write_bytes(path.read_bytes()[:100])  # truncated: its meta cannot be read either
    with caplog.at_level(logging.WARNING, logger="psftr_core"):
        assert FeatureCache(tmp_path, spec()).get(FINGERPRINT) is None
    (warning,) = warnings_of(caplog)
    assert FINGERPRINT in warning and "cannot be read" in warning and not path.exists()


def test_the_width_the_caller_gives_wins_over_spec_json(tmp_path, caplog):
    features, times = good_entry()
    FeatureCache(tmp_path, spec()).put(FINGERPRINT, features, times, META)
    assert json.loads((tmp_path / "features" / spec().key() / "spec.json").read_text())["feature_dim"] == D
    assert FeatureCache(tmp_path, spec()).get(FINGERPRINT) is not None
    with caplog.at_level(logging.WARNING, logger="psftr_core"):
        assert FeatureCache(tmp_path, spec(), feature_dim=8).get(FINGERPRINT) is None
    assert "4-d, but this CLIP model gives 8-d" in warnings_of(caplog)[0]


def test_fps_entries_may_hold_one_feature_per_frame(tmp_path):
    """--fps above the video's rate gives one feature per frame (sampling.plan_video)."""
    fps_spec = FeatureSpec(clip_model="m@1", weights="sha256:ab", sampling="fps=30")
    cache = FeatureCache(tmp_path, fps_spec)
    features, times = good_entry()
    cache.put(FINGERPRINT, features, times, {"duration": 0.24, "frame_length": 6})  # 25 fps video
    assert cache.get(FINGERPRINT) is not None


def test_detect_recomputes_a_damaged_entry_and_finishes(tmp_path, caplog, tiny_clip_files, video_folder):
    """The run never aborts because of the cache: the video is computed again, exit 0."""
    from psftr_core.features.pipeline import ExtractedVideo
    from psftr_core.infer.detect import detect

    calls = []

    def fake_extractor(handle, paths, sampling, pipeline=None):
        for path in paths:
            calls.append(Path(path).name)
            features = np.random.default_rng(0).standard_normal((6, handle.embed_dim)).astype(np.float32)
            yield ExtractedVideo(Path(path), features, (np.arange(6) + 0.5) * 0.32,
                                 {"duration": 1.92, "frame_length": 48})

    options = dict(clip_config=tiny_clip_files.config, clip_pretrained=str(tiny_clip_files.weights), device="cpu",
                   cache_dir=tmp_path / "cache", threshold=0.0, extractor=fake_extractor)
    video = video_folder / "alpha.mp4"
    first = detect([video], ["walking"], **options)
    (entry,) = (tmp_path / "cache").rglob("*.npz")
    with np.load(entry) as data:
        features, times, meta = data["features"], data["times"], json.loads(str(data["meta"]))
    overwrite_entry(entry, features[:, :32], times, meta)  # 32 wide: not this CLIP model's width
    with caplog.at_level(logging.WARNING, logger="psftr_core"):
        second = detect([video], ["walking"], **options)
    assert calls == ["alpha.mp4", "alpha.mp4"] and not second.failures
    assert second.segments == first.segments
    (warning,) = warnings_of(caplog)
    assert f"video {video} is damaged" in warning and "32-d" in warning and "D=32" not in warning  # as given
