"""An unusable feature cache is no cache, with one warning (psftr_core.features.cache)."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from psftr_core.features.cache import FeatureCache, FeatureSpec, video_fingerprint
from psftr_core.features.clip import encode_texts


def spec() -> FeatureSpec:
    return FeatureSpec(clip_model="m@1", weights="sha256:ab", sampling="stride=8")


def test_a_cache_dir_that_is_a_file_turns_the_cache_off_with_one_warning(tmp_path, caplog, tiny_clip):
    root = tmp_path / "cache"
    root.write_text("not a folder")
    features, times = np.ones((3, 4), np.float32), np.arange(3.0)
    with caplog.at_level(logging.WARNING, logger="psftr_core"):
        cache = FeatureCache(root, spec())
        assert cache.put("ab" * 16, features, times, {}) is None and not cache.usable
        assert cache.put("cd" * 16, features, times, {}) is None
        assert cache.get("ab" * 16) is None and cache.misses == 1
        tagged = tiny_clip.weights_id  # text embeddings of a real weights file are cached too
        assert tagged.startswith("sha256:")
        assert encode_texts(tiny_clip, ["walking", "running"], cache_dir=root).shape == (2, 64)
        FeatureCache(root, spec()).put("ef" * 16, features, times, {})  # another run in this process
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(root) in warnings[0] and "continuing without it" in warnings[0]
    assert root.read_text() == "not a folder"


def test_fingerprint_never_opens_a_fifo(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match=r"not a regular file \(named pipe\)"):
        video_fingerprint(fifo)
