"""Video decoders behind one interface: decord and PyAV.

``open_video(path, decoder)`` returns a ``FrameSource``: the per-frame timestamps
(start, end in seconds from the first frame, so variable frame rates are kept), the
keyframe indices, and ``iter_frames(indices)``, which yields the sampled frames in
chunks as upright uint8 RGB arrays [n, H, W, 3].

* ``decord`` (``DecordSource``): fast on small frames, but its only release has wheels
  for Linux x86_64 and Windows only; it cannot open AV1 and misreads frames narrower than
  a few pixels (checked: such a file is read by PyAV under ``auto``). Whether it applied
  the rotation metadata itself is checked against PyAV's first frame; if not, it is
  applied here.
* ``pyav`` (``PyAVSource``): always installed. The timestamps come from the packets'
  presentation times (demuxing reads no pixels), frames are matched to them by pts, and
  the frame's display matrix gives the rotation.
* ``auto``: PyAV, except when every frame is read (``every_frame``, stride 1) and the
  frames need no scaling (see ``short_side`` below): there decord, where it is installed
  and can read the file, is faster (measured: 180p at stride 1, 3x PyAV). On sampled
  frames PyAV is as fast or faster (stride 8: 1.2x at 360p, 1.3-1.6x at 720p; equal at
  180p), which matters once the image tower runs in bfloat16 and decoding takes its
  share of the same cores.

Both check that the path is a regular file before opening it (a named pipe would block
forever), and turn the libraries' errors into one line ("cannot decode clip.mp4: not a
video or corrupt"); the raw text goes to the debug log. Native log lines of decord's
FFmpeg are silenced; PyAV's are off by default.

``short_side`` asks PyAV to scale frames whose shorter side is larger down to it while
converting to RGB (one pass in swscale), which saves converting and resizing full HD or
4K frames when the model wants 224 pixels (decord's own resizing returns broken frames).

A file name that is not valid UTF-8 (Linux allows any bytes; Python shows them as lone
surrogates) cannot be passed to FFmpeg or decord as text: such a file is opened once by
Python and the libraries read it as ``/proc/self/fd/N`` (``native_name``), a name that
lasts as long as the ``FrameSource``.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from psftr_core.errors import PsftrError, error_text
from psftr_core.features.sampling import SamplePlan, plan_samples
from psftr_core.io.video_rotation import frame_rotation

_log = logging.getLogger(__name__)

DECODERS = ("auto", "decord", "pyav")
NOT_A_VIDEO = "not a video or corrupt"


class VideoDecodeError(PsftrError):
    """A video that cannot be opened, decoded or sampled (reported; the other videos go on)."""


# ----------------------------------------------------------------------------- helpers


def irregular_file_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not (a link to) a regular file, from ``stat`` alone; None when it is."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        return "symlink loop" if err.errno == errno.ELOOP else "missing, a broken link or unreadable"
    return None if stat.S_ISREG(mode) else f"not a regular file ({file_kind(mode)})"


def check_regular_file(path: str | os.PathLike) -> None:
    """VideoDecodeError unless ``path`` is (a link to) a regular file; never opens it."""
    reason = irregular_file_reason(path)
    if reason is not None:
        raise VideoDecodeError(f"cannot decode {Path(path).name}: {reason}")


def file_kind(mode: int) -> str:
    """'named pipe', 'socket', 'device', 'folder' or 'special file' for a stat mode."""
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISDIR(mode):
        return "folder"
    return "special file"


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int] | None:
    """(width, height) with the shorter side ``short_side``; None when already that small."""
    if not short_side or min(width, height) <= short_side:
        return None
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def upright(frames: np.ndarray, rotation: int) -> np.ndarray:
    """Turn uint8 [n, H, W, 3] frames ``rotation`` degrees counter-clockwise (a multiple of 90)."""
    turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(frames, k=turns, axes=(1, 2))) if turns else frames


def decord_available() -> bool:
    """decord imports here (it has wheels for Linux x86_64 and Windows only)."""
    try:
        import decord  # noqa: F401
    except Exception:  # missing, or a broken native library
        return False
    return True


_FD_FOLDERS = ("/proc/self/fd", "/dev/fd")


class NativeName:
    """A name of ``path`` that C libraries taking UTF-8 text can open: the path itself when
    it is valid UTF-8, else ``/proc/self/fd/N`` of a descriptor held open (and closed when
    this object is closed or collected). OSError when the file cannot be opened."""

    def __init__(self, path: str | os.PathLike) -> None:
        text = os.fspath(path)
        self.name = text
        self._closer: Any = None
        if is_utf8(text):
            return
        folder = next((f for f in _FD_FOLDERS if os.path.isdir(f)), None)
        if folder is None:
            raise OSError(errno.EILSEQ, "the file name is not valid UTF-8", text)
        fd = os.open(text, os.O_RDONLY)
        self.name = f"{folder}/{fd}"
        self._closer = weakref.finalize(self, os.close, fd)

    def close(self) -> None:
        if self._closer is not None:
            self._closer()

    def __enter__(self) -> "NativeName":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def is_utf8(text: str) -> bool:
    """``text`` encodes as UTF-8 (a file name with bytes that are not UTF-8 holds lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ----------------------------------------------------------------------------- interface


class FrameSource:
    """One opened video. Subclasses set the fields and implement ``_iter_single``."""

    backend = ""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.num_frames = 0
        self.timestamps = np.zeros((0, 2))  # float64 [N, 2] (start, end) seconds
        self.key_indices = np.zeros(0, np.int64)
        self.rotation = 0  # degrees counter-clockwise applied to the coded frames
        self._pending: list[int] = []
        self._next = 0  # position in _pending of the next frame to decode
        self._native: NativeName | None = None

    @property
    def native_name(self) -> str:
        """What to pass the decoding library for ``path`` (see ``NativeName``)."""
        if self._native is None:
            self._native = NativeName(self.path)
        return self._native.name

    def plan(self, stride: int | None = None, fps: float | None = None) -> SamplePlan:
        return plan_samples(self.timestamps, stride=stride, fps=fps)

    def iter_frames(self, indices: Sequence[int], chunk: int = 16) -> Iterator[np.ndarray]:
        """Decode frames at non-decreasing ``indices``, yielding upright uint8 [n<=chunk, H, W, 3].

        Between chunks the caller may call ``release_readahead()`` (before it waits).
        """
        self._pending = [int(i) for i in indices]
        buffer: list[np.ndarray] = []
        for k, frame in enumerate(self._iter_single(self._pending)):
            buffer.append(frame)
            if len(buffer) == chunk:
                self._next = k + 1
                yield upright(np.stack(buffer), self.rotation)
                buffer = []
        self._next = len(self._pending)
        if buffer:
            yield upright(np.stack(buffer), self.rotation)

    def release_readahead(self) -> None:
        """Free what the decoder decoded ahead of the caller (only decord does that)."""

    def close(self) -> None:
        """Release the decoder; further reads fail."""

    @property
    def is_open(self) -> bool:
        return True

    def _iter_single(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def _error(self, what: str) -> VideoDecodeError:
        return VideoDecodeError(f"cannot decode {self.path.name}: {what}")


def open_video(
    path: str | os.PathLike, decoder: str = "auto", threads: int = 1, short_side: int | None = None,
    every_frame: bool = False,
) -> FrameSource:
    """Open ``path`` with ``decoder`` (auto, decord or pyav); VideoDecodeError when it cannot be read.

    ``threads``: the codec's decoding threads. ``short_side``: scale larger frames down
    to this shorter side while decoding (None: native size). ``every_frame``: the caller
    reads every frame (what ``auto`` chooses by, see the module docstring).
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    check_regular_file(path)
    if decoder == "pyav" or (decoder == "auto" and not (every_frame and decord_available())):
        return PyAVSource(path, threads=threads, short_side=short_side)
    probe = probe_video(path)
    if decoder == "decord":
        return DecordSource(path, probe, threads=threads)
    if scaled_size(probe.width, probe.height, short_side) is not None:
        # large frames: PyAV scales them while converting to RGB, decord cannot (its resize is broken)
        return PyAVSource(path, threads=threads, short_side=short_side)
    try:
        return DecordSource(path, probe, threads=threads)
    except VideoDecodeError as err:
        _log.debug("decord cannot read %s (%s); decoding with PyAV", path, err)
        return PyAVSource(path, threads=threads, short_side=short_side)


# ----------------------------------------------------------------------------- PyAV


@dataclass(frozen=True)
class VideoProbe:
    """What PyAV says about a video's first stream (sizes as coded, before rotation)."""

    width: int
    height: int
    rotation: int  # degrees counter-clockwise to turn coded frames upright
    codec: str
    first_frame: np.ndarray | None = None  # uint8 [h, w, 3] as coded; kept only when rotated


def probe_video(path: str | os.PathLike) -> VideoProbe:
    """Size, rotation and codec of the first video stream (decodes its first frame)."""
    import av

    name = Path(path).name
    try:
        with NativeName(path) as native, av.open(native.name) as container:
            stream = _video_stream(container, name)
            first = next(container.decode(stream), None)
            if first is None:
                raise VideoDecodeError(f"cannot decode {name}: no video frames")
            rotation = frame_rotation(first, stream)
            pixels = first.to_ndarray(format="rgb24") if rotation else None
            return VideoProbe(int(first.width), int(first.height), rotation, stream.codec_context.name, pixels)
    except _av_errors() as err:
        _log.debug("PyAV cannot open %s: %s", path, error_text(err))
        raise VideoDecodeError(f"cannot decode {name}: {NOT_A_VIDEO}") from None


class PyAVSource(FrameSource):
    """A video decoded with PyAV (FFmpeg): frames in presentation order, matched by pts."""

    backend = "pyav"

    def __init__(self, path: str | os.PathLike, threads: int = 1, short_side: int | None = None) -> None:
        super().__init__(path)
        self.threads = max(1, int(threads))
        self.short_side = short_side
        self._container: Any = None
        self._stream: Any = None
        self._rotation_unknown = True
        try:
            self._index()
        except _av_errors() as err:
            _log.debug("PyAV cannot open %s: %s", path, error_text(err))
            raise self._error(NOT_A_VIDEO) from None

    def _index(self) -> None:
        """Frame timestamps and keyframes from the packets (no decoding)."""
        import av

        with av.open(self.native_name) as container:
            stream = _video_stream(container, self.path.name)
            packets = [
                (p.pts, p.dts, p.duration or 0, bool(p.is_keyframe))
                for p in container.demux(stream)
                if p.size
            ]
            time_base = float(stream.time_base) if stream.time_base else 0.0
            rate = float(stream.guessed_rate or stream.average_rate or 0) or 25.0
            start = stream.start_time
            listed = int(stream.frames or 0)  # from the container's index, where it has one
        if not packets:
            raise self._error("no video frames")
        if len(packets) < 0.98 * listed:
            raise self._error(f"truncated (its index lists {listed} frames, the file holds {len(packets)})")
        self.num_frames = len(packets)
        self._pts_known = time_base > 0 and all(p[0] is not None for p in packets)
        if self._pts_known:
            order = sorted(range(len(packets)), key=lambda i: packets[i][0])
            pts = np.array([packets[i][0] for i in order], dtype=np.int64)
            origin = int(start) if start is not None else int(pts[0])
            starts = (pts - origin) * time_base
            last = packets[order[-1]][2] * time_base or (1.0 / rate)
            self._pts = pts
            self._index_of_pts = {int(p): i for i, p in enumerate(pts)}
            keys = [rank for rank, i in enumerate(order) if packets[i][3]]
        else:  # no presentation times (some AVI files): constant rate from the header
            starts = np.arange(len(packets)) / rate
            last = 1.0 / rate
            self._pts = np.zeros(0, np.int64)
            self._index_of_pts = {}
            keys = [i for i, p in enumerate(packets) if p[3]]
        ends = np.append(starts[1:], starts[-1] + last)
        self.timestamps = np.stack([starts, ends], axis=1).astype(np.float64)
        self.key_indices = np.asarray(keys or [0], dtype=np.int64)

    def _open(self) -> tuple[Any, Any]:
        import av

        self.close()
        self._container = av.open(self.native_name)
        self._stream = stream = _video_stream(self._container, self.path.name)
        stream.thread_type = "AUTO" if self.threads > 1 else "SLICE"
        stream.codec_context.thread_count = self.threads
        return self._container, stream

    def _iter_single(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        position = -1  # index of the last decoded frame
        last_index, last_frame = -1, None
        seekable = self._pts_known
        try:
            container, stream = self._open()
            frames = container.decode(stream)
            for wanted in indices:
                if wanted == last_index:
                    yield last_frame
                    continue
                if wanted < last_index or wanted >= self.num_frames:
                    raise self._error(f"frame index {wanted} out of order or range")
                keyframe = int(self.key_indices[self.key_indices <= wanted].max(initial=0))
                seeked = seekable and keyframe > position + 1
                if seeked:  # skip decoding up to the keyframe before the wanted frame
                    container.seek(int(self._pts[keyframe]), stream=stream, backward=True)
                    frames = container.decode(stream)
                frame, position = self._decode_until(frames, wanted, position, seeked)
                if frame is None and seeked:
                    # the seek landed past the frame: decode from the start without seeking
                    seekable = False
                    container, stream = self._open()
                    frames = container.decode(stream)
                    frame, position = self._decode_until(frames, wanted, -1, False)
                if frame is None:
                    raise self._error(f"the video ends before frame {wanted} (truncated or corrupt)")
                last_frame, last_index = self._to_rgb(frame), wanted
                yield last_frame
        except _av_errors() as err:
            _log.debug("PyAV failed on %s near frame %d: %s", self.path, position + 1, error_text(err))
            raise self._error(f"corrupt data near frame {position + 1}") from None
        finally:
            self.close()

    def _decode_until(self, frames: Iterator[Any], wanted: int, position: int, seeked: bool) -> tuple[Any, int]:
        """Decode up to frame ``wanted``: (the frame, its index), or (None, position) when
        the stream ends first or, just after a seek, already starts past ``wanted``."""
        for frame in frames:
            if frame.pts is not None and frame.pts in self._index_of_pts:
                index = self._index_of_pts[frame.pts]
            else:
                index = position + 1
            if seeked and index > wanted:
                return None, position
            seeked = False
            position = index
            if index >= wanted:  # a frame that did not decode is replaced by the next one
                return frame, position
        return None, position

    def _to_rgb(self, frame: Any) -> np.ndarray:
        if self._rotation_unknown:  # the first frame's display matrix stands for the video
            self.rotation = frame_rotation(frame, self._stream)
            self._rotation_unknown = False
        size = scaled_size(frame.width, frame.height, self.short_side)
        if size is None:
            return frame.to_ndarray(format="rgb24")
        return frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA").to_ndarray()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def _video_stream(container: Any, name: str) -> Any:
    if not container.streams.video:
        raise VideoDecodeError(f"cannot decode {name}: no video stream")
    return container.streams.video[0]


def _av_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.error.FFmpegError, OSError, ValueError)


# ----------------------------------------------------------------------------- decord


_decord_quiet = False


class DecordSource(FrameSource):
    """A video decoded with decord; the rotation comes from the PyAV ``probe``.

    Frames are read in order, skipping the frames in between (decoded without colour
    conversion) and seeking only when a keyframe lies in the gap; this is faster than
    ``get_batch`` here. ``release_readahead`` drops decord's read-ahead before the
    caller waits (see there): with it memory stays flat. decord raises ``RuntimeError``
    on open and ``decord._ffi.base.DECORDError`` (not a RuntimeError) while decoding.
    """

    backend = "decord"

    def __init__(self, path: str | os.PathLike, probe: VideoProbe, threads: int = 1) -> None:
        import decord

        global _decord_quiet
        if not _decord_quiet:  # its FFmpeg logs to stderr otherwise ("moov atom not found")
            decord.logging.set_level(decord.logging.QUIET)
            _decord_quiet = True
        super().__init__(path)
        self._reader: Any = None
        self._position = 0
        try:
            self._reader = decord.VideoReader(self.native_name, num_threads=max(1, int(threads)))
            self.num_frames = len(self._reader)
            if self.num_frames == 0:
                raise self._error("no video frames")
            self.timestamps = np.asarray(
                self._reader.get_frame_timestamp(list(range(self.num_frames))), dtype=np.float64
            ).reshape(-1, 2)
            self.key_indices = np.asarray(self._reader.get_key_indices(), dtype=np.int64)
            first = self._reader.next().asnumpy()
            self._reader.seek(0)
        except _decord_errors() as err:
            _log.debug("decord cannot open %s: %s", path, error_text(err))
            raise self._error(f"{NOT_A_VIDEO} for decord; try --decoder pyav") from None
        self.frame_shape = first.shape
        self.rotation = decord_rotation_to_apply(first, probe)
        if self.rotation is None:  # decord misreads very narrow frames (garbled channels)
            raise self._error(f"decord reads {first.shape} frames of a {probe.width}x{probe.height} video; "
                              "try --decoder pyav")

    def _check_shape(self, frame: np.ndarray) -> np.ndarray:
        if frame.shape != self.frame_shape:
            raise self._error(f"decord reads {frame.shape} frames after {self.frame_shape} ones; try --decoder pyav")
        return frame

    def release_readahead(self) -> None:
        """Drop what decord decoded ahead of us; call before waiting between chunks.

        decord's reader keeps pushing packets to its decoding thread while it waits for
        a frame, and that thread turns the surplus into full RGB frames while the reader
        sits idle: ~1 GB within seconds when the consumer is slow (measured at 360p and
        1080p). Seeking clears its queues; decoding resumes from the keyframe before the
        next wanted frame (at most one keyframe interval of extra decoding). After the
        last chunk the reader is closed instead.
        """
        if self._reader is None:
            return
        if self._next >= len(self._pending):
            self.close()
            return
        wanted = self._pending[self._next]
        keyframe = int(self.key_indices[self.key_indices <= wanted].max(initial=0))
        try:
            self._reader.seek(keyframe)
        except _decord_errors() as err:
            _log.debug("decord failed to seek in %s: %s", self.path, error_text(err))
            raise self._error(f"corrupt data near frame {keyframe}") from None
        self._position = keyframe

    def _iter_single(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        self._position = 0  # index of the frame next() returns
        last_index, last_frame = -1, None
        try:
            self._reader.seek(0)
            for index in indices:
                if index == last_index:
                    yield last_frame
                    continue
                if index < self._position or index >= self.num_frames:
                    raise self._error(f"frame index {index} out of order or range")
                reader = self._reader
                if index > self._position:
                    if np.any((self.key_indices > self._position) & (self.key_indices <= index)):
                        reader.seek_accurate(index)  # decodes from the keyframe before index
                    else:
                        reader.skip_frames(index - self._position)  # decoded, not converted to RGB
                last_frame = self._check_shape(reader.next().asnumpy())
                last_index, self._position = index, index + 1
                yield last_frame
        except StopIteration:
            raise self._error(f"the video ends before frame {self._position} (truncated or corrupt)") from None
        except _decord_errors() as err:
            _log.debug("decord failed on %s near frame %d: %s", self.path, self._position, error_text(err))
            raise self._error(f"corrupt data near frame {self._position}") from None

    @property
    def is_open(self) -> bool:
        """False once closed (``close``, or ``release_readahead`` after the last chunk)."""
        return self._reader is not None

    def close(self) -> None:
        self._reader = None


def decord_rotation_to_apply(first: np.ndarray, probe: VideoProbe) -> int | None:
    """The rotation still to apply to decord's frames (0 when it applied the metadata
    itself), or None when ``first`` is not a frame of this video's size."""
    coded = (probe.height, probe.width, 3)
    turned = (probe.width, probe.height, 3)
    if first.shape not in (coded, turned):
        return None
    if probe.rotation == 0:
        return 0 if first.shape == coded else None
    if probe.rotation != 180 and coded != turned:  # 90 / 270 and not square: the shape tells
        return 0 if first.shape == turned else probe.rotation
    upright_first = upright(probe.first_frame[None], probe.rotation)[0]

    def distance(a: np.ndarray) -> float:
        return float(np.abs(a.astype(np.int16) - first.astype(np.int16)).mean())

    return 0 if distance(upright_first) <= distance(probe.first_frame) else probe.rotation


def _decord_errors() -> tuple[type[BaseException], ...]:
    from decord._ffi.base import DECORDError

    return (RuntimeError, DECORDError)
