"""Videos in, features out: ``encode_videos`` (psftr_core.features.pipeline), tiny CLIP, real decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from psftr_core.errors import InputError
from psftr_core.features import pipeline
from psftr_core.features.decoders import decord_available, open_video
from psftr_core.features.pipeline import EncodedVideo, FailedVideo, FeatureEncoder, PipelineOptions, encode_videos
from psftr_core.features.video import assign_video_ids

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def pil_features(handle, path, indices) -> np.ndarray:
    """open_clip's own transform (PIL, per frame) and encode_image: the reference."""
    frames = np.concatenate(list(open_video(path, "pyav").iter_frames(indices, chunk=64)))
    batch = torch.stack([handle.preprocess(Image.fromarray(f)) for f in frames])
    with torch.inference_mode():
        return handle.model.encode_image(batch).numpy()


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def run(paths, handle, **options) -> list:
    return list(encode_videos(assign_video_ids(list(paths)), handle, PipelineOptions(**options)))


@pytest.mark.parametrize("decoder", [pytest.param("decord", marks=pytest.mark.skipif(
    not decord_available(), reason="decord has no wheel here")), "pyav"])
def test_features_on_a_real_clip_are_those_of_the_pil_transform(tiny_clip, bikes_video, decoder):
    (result,) = run([bikes_video], tiny_clip, decoder=decoder, batch_size=16)
    assert isinstance(result, EncodedVideo) and result.decoder == decoder
    assert result.features.shape == (31, 64) and result.plan.num_features == 31
    np.testing.assert_allclose(result.times, (np.arange(31) * 8 + 4) / 25, atol=1e-6)
    reference = pil_features(tiny_clip, bikes_video, np.arange(31) * 8 + 4)
    assert cosine(result.features, reference).min() >= 0.99
    exact, = run([bikes_video], tiny_clip, decoder=decoder, preprocess="pil")
    np.testing.assert_allclose(exact.features, reference, atol=1e-4)


def test_batches_span_videos_without_changing_features(tiny_clip, video_folder, monkeypatch):
    paths = [video_folder / "alpha.mp4", video_folder / "beta.mp4"]  # 6 + 4 features
    calls = []
    real = pipeline.encode_images

    def counting(handle, batch, dtype="float32"):
        calls.append(len(batch))
        return real(handle, batch, dtype)

    monkeypatch.setattr(pipeline, "encode_images", counting)
    one_by_one = run(paths, tiny_clip, batch_size=1)
    calls.clear()
    batched = run(paths, tiny_clip, batch_size=4)
    assert calls == [4, 4, 2]  # alpha's last 2 rows share a batch with beta's first 2
    for a, b in zip(one_by_one, batched):
        assert a.video.video_id == b.video.video_id
        np.testing.assert_allclose(a.features, b.features, atol=1e-5)


def test_failures_keep_their_place_and_workers_do_not_change_results(tiny_clip, video_folder, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 4096)
    paths = [video_folder / "alpha.mp4", broken, video_folder / "beta.mp4"]
    one = run(paths, tiny_clip, batch_size=4)
    assert [type(r) for r in one] == [EncodedVideo, FailedVideo, EncodedVideo]
    assert one[1].error == "cannot decode broken.mp4: not a video or corrupt"
    two = run(paths, tiny_clip, batch_size=4, decode_workers=2)
    assert [r.video.video_id for r in two] == ["alpha", "broken", "beta"]
    for a, b in zip(one[::2], two[::2]):
        np.testing.assert_allclose(a.features, b.features, atol=1e-5)


def test_a_decoder_that_stops_short_fails_that_video_and_not_the_ones_after_it(tiny_clip, video_folder,
                                                                               monkeypatch):
    real_open = pipeline.open_video

    def short_alpha(path, *args, **kwargs):
        source = real_open(path, *args, **kwargs)
        if path.name == "alpha.mp4":
            frames = source.iter_frames
            source.iter_frames = lambda indices, chunk=16: frames(list(indices)[:-2], chunk=chunk)
        return source

    monkeypatch.setattr(pipeline, "open_video", short_alpha)
    results = run([video_folder / "alpha.mp4", video_folder / "beta.mp4"], tiny_clip, batch_size=4)
    assert [type(r) for r in results] == [FailedVideo, EncodedVideo]
    assert results[0].error == "decoded 4 of 6 frames" and results[1].features.shape == (4, 64)


def test_dtype_and_workers_are_decided_by_the_device(monkeypatch):
    monkeypatch.setenv("PSFTR_CPU_BFLOAT16", "0")
    cpu = PipelineOptions().for_device("cpu")
    assert (cpu.dtype, cpu.decode_workers, cpu.decode_threads) == ("float32", 1, 1)
    monkeypatch.setenv("PSFTR_CPU_BFLOAT16", "1")
    assert PipelineOptions().for_device("cpu").dtype == "bfloat16"
    assert PipelineOptions(quantize="int8").for_device("cpu").dtype == "float32"  # int8 keeps float32 around it
    gpu = PipelineOptions().for_device("cuda")
    assert gpu.dtype == "float16" and gpu.decode_workers >= 1 and gpu.decode_threads == 2
    assert PipelineOptions(dtype="float32", decode_workers=3).for_device("cuda:1").dtype == "float32"
    with pytest.raises(InputError, match="--quantize int8 keeps the tower's other operations in float32"):
        PipelineOptions(dtype="bfloat16", quantize="int8").for_device("cpu")
    with pytest.raises(InputError, match="--quantize int8 runs on CPU only"):
        PipelineOptions(quantize="int8").for_device("cuda")
    for bad, flag in ((dict(decoder="opencv"), "--decoder"), (dict(dtype="bf16"), "--dtype"),
                      (dict(batch_size=0), "--batch-size"), (dict(stride=None), "--stride")):
        with pytest.raises(InputError, match=flag):
            PipelineOptions(**bad).validate()


def test_the_compute_dtype_reaches_the_image_tower(tiny_clip, monkeypatch):
    seen = []
    def recording(handle, batch, dtype="float32"):
        seen.append((dtype, handle.image_dtype, next(handle.model.visual.parameters()).dtype))
        return batch[:, 0, 0, :2]

    monkeypatch.setattr(pipeline, "encode_images", recording)
    FeatureEncoder(tiny_clip, dtype="bfloat16").encode(torch.zeros(2, 3, 64, 64))
    FeatureEncoder(tiny_clip).encode(torch.zeros(2, 3, 64, 64))
    assert seen == [("bfloat16", "bfloat16", torch.bfloat16), ("float32", "float32", torch.float32)]
    # the caller's model is left as it was (a cast copy of the image tower was used)
    assert tiny_clip.image_dtype == "float32" and next(tiny_clip.model.visual.parameters()).dtype == torch.float32
