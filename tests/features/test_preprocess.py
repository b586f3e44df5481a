"""The model's transform on batches of frames (psftr_core.features.preprocess)."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from psftr_core.features.decoders import open_video
from psftr_core.features.preprocess import FramePreprocess

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def pil_reference(transform, frames: np.ndarray) -> torch.Tensor:
    return torch.stack([transform(Image.fromarray(frame)) for frame in frames])


@pytest.fixture(scope="module")
def bikes_frames(bikes_video) -> np.ndarray:
    """Six real 640x272 frames."""
    return next(open_video(bikes_video, "pyav").iter_frames(range(10, 250, 40), chunk=6))


@pytest.mark.parametrize("size", [64, 224])
def test_batched_resize_matches_pil_within_one_grey_level(bikes_frames, size):
    transform = open_clip.image_transform(size, is_train=False)
    prep = FramePreprocess(transform)
    assert prep.mode == "batched" and prep.decode_short_side == 2 * size
    ours = prep.to_model_input(prep.to_uint8(bikes_frames))
    reference = pil_reference(transform, bikes_frames)
    assert ours.shape == reference.shape == (6, 3, size, size)
    # one grey level is 1 / 255 / std (about 0.015 after Normalize); PIL and torch round a few pixels apart
    grey_levels = (ours - reference).abs() * 255 * torch.tensor(transform.transforms[-1].std).view(1, 3, 1, 1)
    assert float(grey_levels.max()) <= 2.01 and float(grey_levels.mean()) < 0.01


def test_pil_mode_is_open_clip_exactly(tiny_clip, bikes_frames):
    for transform in (tiny_clip.preprocess, open_clip.image_transform(224, is_train=False)):
        prep = FramePreprocess(transform, mode="pil")
        assert prep.mode == "pil" and prep.decode_short_side is None
        ours = prep.to_model_input(prep.to_uint8(bikes_frames))
        assert float((ours - pil_reference(transform, bikes_frames)).abs().max()) <= 1e-6


@pytest.mark.parametrize("height,width", [(1, 1), (64, 1), (64, 2), (2, 64), (1, 4000), (3000, 7), (50, 50)])
def test_any_frame_size_gives_the_model_size(height, width):
    transform = open_clip.image_transform(64, is_train=False)
    rng = np.random.default_rng(height * 10000 + width)
    frames = rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    ours = FramePreprocess(transform).to_model_input(frames)
    assert ours.shape == (2, 3, 64, 64) and bool(torch.isfinite(ours).all())
    if max(height, width) <= 4 * min(height, width) or max(height, width) < 100:
        reference = pil_reference(transform, frames)
        assert float((ours - reference).abs().max()) < 0.05


def test_very_elongated_frames_keep_the_centre(bikes_frames):
    """A 1 x 4000 strip is cut to its middle before resizing: the values there survive."""
    transform = open_clip.image_transform(64, is_train=False)
    strip = np.zeros((1, 1, 4000, 3), np.uint8)
    strip[:, :, 1990:2010] = 255  # a white mark in the middle
    ours = FramePreprocess(transform).to_model_input(strip)
    reference = pil_reference(transform, strip)  # PIL resizes the whole strip (224 x 896000 for 224 px)
    assert float((ours - reference).abs().max()) < 0.05


def test_other_transforms_run_in_pil_per_frame(bikes_frames):
    transform = open_clip.image_transform(64, is_train=False, resize_mode="longest")  # ResizeKeepRatio
    prep = FramePreprocess(transform)
    assert prep.mode == "pil" and prep.decode_short_side is None
    ours = prep.to_model_input(prep.to_uint8(bikes_frames[:2]))
    assert torch.equal(ours, pil_reference(transform, bikes_frames[:2]))
    without_to_tensor = FramePreprocess(lambda image: torch.zeros(3, 8, 8))  # not a Compose at all
    assert without_to_tensor.mode == "whole"
    assert without_to_tensor.to_model_input(without_to_tensor.to_uint8(bikes_frames[:2])).shape == (2, 3, 8, 8)
    squash = open_clip.image_transform(64, is_train=False, resize_mode="squash")  # Resize((64, 64)), no crop
    prep = FramePreprocess(squash)
    assert prep.mode == "batched"
    ours = prep.to_model_input(bikes_frames[:2])
    assert float((ours - pil_reference(squash, bikes_frames[:2])).abs().max()) < 0.05
