"""Both decoders give the same frames, upright, at the decoder's timestamps (psftr_core.features.decoders)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from fixtures_clip import encode_frames as write_frames, frame_level
from psftr_core.features import decoders
from psftr_core.features.decoders import (
    VideoDecodeError,
    VideoProbe,
    decord_available,
    decord_rotation_to_apply,
    open_video,
)

needs_decord = pytest.mark.skipif(not decord_available(), reason="decord has no wheel for this platform")
BACKENDS = [pytest.param("decord", marks=needs_decord), "pyav"]


def decode_all(path: Path, decoder: str, indices, chunk: int = 4) -> tuple[object, np.ndarray]:
    source = open_video(path, decoder, every_frame=True)  # where auto would take decord
    return source, np.concatenate(list(source.iter_frames(indices, chunk=chunk)))


def write_pattern_video(path: Path, width: int = 96, height: int = 64, frames: int = 10, **kwargs) -> Path:
    """Frame i is grey ``frame_level(i)`` with a white L in the top-left corner (so the orientation shows)."""
    images = []
    for i in range(frames):
        image = np.full((height, width, 3), frame_level(i), np.uint8)
        image[:16, :8] = 255
        image[:8, :24] = 255
        images.append(image)
    return write_frames(path, images, **kwargs)


@pytest.mark.parametrize("decoder", BACKENDS)
def test_decoded_frames_are_the_planned_ones(tmp_path, make_video, decoder):
    path = make_video(tmp_path / "levels.mp4", 24, fps=25)
    source = open_video(path, decoder)
    assert source.backend == decoder and source.num_frames == 24
    np.testing.assert_allclose(source.timestamps[:, 0], np.arange(24) / 25, atol=1e-6)
    np.testing.assert_allclose(source.timestamps[:, 1], np.arange(1, 25) / 25, atol=1e-6)
    indices = [1, 5, 5, 13, 22]
    chunks = list(source.iter_frames(indices, chunk=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    frames = np.concatenate(chunks)
    assert frames.dtype == np.uint8 and frames.shape == (5, 64, 96, 3)
    # the grey background (below the moving square) identifies the frame index
    levels = frames[:, 32:, :, :].mean(axis=(1, 2, 3))
    np.testing.assert_allclose(levels, [frame_level(i) for i in indices], atol=3)


@pytest.mark.parametrize("decoder", BACKENDS)
def test_variable_frame_rate_keeps_the_container_times(tmp_path, decoder):
    from fractions import Fraction

    starts = [0, 1, 3, 4, 8, 9, 10, 15, 16, 20]  # in 1/25 s
    container = av.open(str(tmp_path / "vfr.mp4"), "w")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
    stream.codec_context.time_base = Fraction(1, 25)
    for i, start in enumerate(starts):
        frame = av.VideoFrame.from_ndarray(np.full((64, 96, 3), frame_level(i), np.uint8), format="rgb24")
        frame.pts, frame.time_base = start, Fraction(1, 25)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    source, frames = decode_all(tmp_path / "vfr.mp4", decoder, [0, 4, 7, 9])
    np.testing.assert_allclose(source.timestamps[:, 0] * 25, starts, atol=1e-3)
    np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), [frame_level(i) for i in (0, 4, 7, 9)], atol=3)
    plan = source.plan(fps=2.5)  # centres 0.2, 0.6 s = 5, 15 (in 1/25 s): nearest starts 4 and 15
    assert plan.indices.tolist() == [3, 7]


def test_pyav_seeks_over_keyframes_and_keeps_the_right_frames(tmp_path):
    path = write_pattern_video(tmp_path / "gop.mp4", frames=24, options={"g": "4", "preset": "ultrafast"})
    source, frames = decode_all(path, "pyav", [1, 2, 9, 9, 17, 23], chunk=3)
    assert source.key_indices.tolist() == [0, 4, 8, 12, 16, 20]
    expected = [frame_level(i) for i in (1, 2, 9, 9, 17, 23)]
    np.testing.assert_allclose(frames[:, 32:, 32:].mean(axis=(1, 2, 3)), expected, atol=3)


@needs_decord
def test_both_backends_agree_on_a_real_clip(bikes_video):
    decord_source, decord_frames = decode_all(bikes_video, "decord", range(4, 250, 8), chunk=16)
    pyav_source, pyav_frames = decode_all(bikes_video, "pyav", range(4, 250, 8), chunk=16)
    assert decord_source.num_frames == pyav_source.num_frames == 250
    np.testing.assert_allclose(decord_source.timestamps, pyav_source.timestamps, atol=1e-6)
    assert decord_frames.shape == pyav_frames.shape == (31, 272, 640, 3)
    difference = np.abs(decord_frames.astype(np.int16) - pyav_frames.astype(np.int16))
    assert difference.max() <= 2 and difference.mean() < 0.1


@needs_decord
def test_decord_release_readahead_between_chunks_keeps_frames_right(bikes_video):
    import decord

    indices = list(range(4, 250, 8))
    reference = decord.VideoReader(str(bikes_video)).get_batch(indices).asnumpy()
    source = open_video(bikes_video, "decord")
    chunks = []
    for chunk in source.iter_frames(indices, chunk=3):  # keyframes at 0, 30, 76, 137, 187, 242
        chunks.append(chunk)
        source.release_readahead()  # as the pipeline does before waiting
    assert np.array_equal(np.concatenate(chunks), reference)
    assert not source.is_open  # released after the last chunk


@pytest.mark.parametrize("rotation", [90, 180, 270])
@pytest.mark.parametrize("decoder", BACKENDS)
def test_rotation_metadata_gives_upright_frames(tmp_path, decoder, rotation):
    path = write_pattern_video(tmp_path / f"rot{rotation}.mp4", rotation=rotation)
    source, frames = decode_all(path, decoder, [0, 5])
    # the L drawn in the top-left corner, turned counter-clockwise as the display matrix says
    corner = np.zeros((64, 96), bool)
    corner[:16, :8] = corner[:8, :24] = True
    expected = np.rot90(corner, rotation // 90)
    assert frames.shape[1:3] == expected.shape
    assert np.array_equal(frames[0, :, :, 0] > 200, expected)


def test_decord_builds_that_ignore_rotation_get_it_applied_here():
    coded = np.zeros((4, 6, 3), np.uint8)
    coded[0, 0] = 255
    probe = VideoProbe(width=6, height=4, rotation=180, codec="h264", first_frame=coded)
    assert decord_rotation_to_apply(coded, probe) == 180  # decord returned the coded frame
    assert decord_rotation_to_apply(np.rot90(coded, 2).copy(), probe) == 0  # it turned the frame itself
    turned = VideoProbe(width=6, height=4, rotation=90, codec="h264", first_frame=coded)
    assert decord_rotation_to_apply(coded, turned) == 90
    assert decord_rotation_to_apply(np.zeros((6, 4, 3), np.uint8), turned) == 0
    assert decord_rotation_to_apply(np.zeros((4, 2, 48), np.uint8), probe) is None  # garbled: not this video


@pytest.mark.parametrize("width", [1, 2])
def test_one_or_two_pixel_wide_videos_decode(tmp_path, width):
    path = write_pattern_video(tmp_path / "thin.mp4", width=width, pix_fmt="yuv444p", options={"preset": "ultrafast"})
    source, frames = decode_all(path, "auto", [0, 3])
    assert source.backend == "pyav"  # decord garbles frames this narrow
    assert frames.shape == (2, 64, width, 3)
    if decord_available():
        with pytest.raises(VideoDecodeError, match=r"thin\.mp4: decord reads .* try --decoder pyav"):
            open_video(path, "decord")


def test_auto_falls_back_to_pyav_where_decord_cannot_open(tmp_path, monkeypatch):
    path = write_pattern_video(tmp_path / "clip.mp4")
    if decord_available():
        assert open_video(path, "auto", every_frame=True).backend == "decord"

        class Unreadable:
            def __init__(self, *args, **kwargs):
                raise RuntimeError("Error reading clip.mp4...")

        import decord

        monkeypatch.setattr(decord, "VideoReader", Unreadable)
        with pytest.raises(VideoDecodeError, match=r"^cannot decode clip\.mp4: not a video or corrupt for decord"):
            open_video(path, "decord")
    assert open_video(path, "auto", every_frame=True).backend == "pyav"


def test_auto_reads_sampled_frames_with_pyav(tmp_path):
    """decord only where every frame is read: on sampled frames PyAV decodes as fast or faster."""
    path = write_pattern_video(tmp_path / "clip.mp4")
    assert open_video(path, "auto").backend == "pyav"
    assert open_video(path, "auto", every_frame=True).backend == ("decord" if decord_available() else "pyav")


def test_av1_is_read_by_pyav_under_auto(tmp_path):
    encoder = next((c for c in ("libsvtav1", "libaom-av1", "librav1e") if c in av.codecs_available), None)
    if encoder is None:
        pytest.skip("this PyAV build has no AV1 encoder")
    options = {"preset": "12"} if encoder == "libsvtav1" else {}
    path = write_pattern_video(tmp_path / "av1.mp4", codec=encoder, options=options)
    source, frames = decode_all(path, "auto", [0, 9])
    assert source.backend == "pyav" and frames.shape == (2, 64, 96, 3)


def test_large_frames_are_scaled_while_decoding(tmp_path):
    path = write_pattern_video(tmp_path / "big.mp4", width=1280, height=720, frames=3)
    source = open_video(path, "auto", short_side=448)
    assert source.backend == "pyav"
    (frames,) = list(source.iter_frames([0, 2], chunk=2))
    assert frames.shape == (2, 448, 796, 3)
    assert frames[0, :8, :4, 0].min() > 200 and frames[0, -40:, -40:, 0].max() < 100  # the corner survived


def test_unreadable_inputs_fail_with_one_clear_line(tmp_path, capfd):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path in (corrupt, empty):
        for decoder in ("auto", "pyav"):
            with pytest.raises(VideoDecodeError, match=rf"^cannot decode {path.name}: not a video or corrupt$"):
                open_video(path, decoder)
    fifo = tmp_path / "pipe.mp4"
    import os

    os.mkfifo(fifo)  # never opened: that would block
    with pytest.raises(VideoDecodeError, match=r"^cannot decode pipe\.mp4: not a regular file \(named pipe\)$"):
        open_video(fifo)
    assert capfd.readouterr().err == ""  # no native ffmpeg / decord log lines


def test_truncated_frame_data_fails_with_one_clear_line(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (150, 64, 96, 3), np.uint8)  # every frame large
    whole = write_frames(tmp_path / "whole.mp4", list(noise), options={"preset": "ultrafast", "crf": "10", "g": "25"},
                         container_options={"movflags": "faststart"})  # index first: the cut file opens
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    for decoder in ["pyav"] + (["decord"] if decord_available() else []):
        reason = "(not a video or corrupt|truncated|corrupt data)"
        with pytest.raises(VideoDecodeError, match=rf"^cannot decode cut\.mp4: {reason}"):
            source = open_video(cut, decoder)
            list(source.iter_frames(range(0, source.num_frames, 4)))


def test_decoder_names_are_checked():
    with pytest.raises(ValueError, match="decoder must be one of auto, decord, pyav"):
        open_video("x.mp4", "opencv")
    assert decoders.DECODERS == ("auto", "decord", "pyav")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg command is not installed")
def test_rotate_tag_written_by_ffmpeg_is_applied(tmp_path):
    plain = write_pattern_video(tmp_path / "plain.mp4")
    tagged = tmp_path / "tagged.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(plain), "-c", "copy", "-metadata:s:v", "rotate=90",
                    str(tagged)], check=True)
    upright = subprocess.run(["ffmpeg", "-v", "error", "-i", str(tagged), "-frames:v", "1", "-f", "rawvideo",
                              "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    reference = np.frombuffer(upright, np.uint8).reshape(96, 64, 3)  # ffmpeg turns it itself
    for decoder in ["pyav"] + (["decord"] if decord_available() else []):
        _, frames = decode_all(tagged, decoder, [0])
        assert frames.shape == (1, 96, 64, 3)
        assert np.abs(frames[0].astype(np.int16) - reference).max() <= 3
