"""Video inputs: collect files, give them ids, plan which frames to sample, decode them.

Collection (``collect_videos``): files, folders (recursive; hidden entries skipped),
glob patterns and ``@list.txt`` files (one entry per line, relative to the list's folder,
``#`` comments). Files without a video extension are skipped with a note. The same file
named twice (by resolved path) is used once.

Video ids (``assign_video_ids``): the file stem. When several inputs share a stem
(compared case-insensitively, so ids stay distinct on case-insensitive file systems)
each of them gets ``<stem>-<first 8 hex digits of sha1(resolved path)>``. The rule
depends only on the input list, so every shard of a run computes the same ids.

Sampling (``plan_samples``), from the decoder's per-frame timestamps:

* stride S: feature i covers frames [i*S, (i+1)*S) and looks at its centre frame
  i*S + S//2; T = floor(num_frames / S) (the THUMOS14 CLIP feature convention,
  ``snippet_length = floor(frame_length / 8)``). The feature's time is the start
  timestamp of that frame, which for constant frame rate is the window's centre.
* fps F: feature k covers [k/F, (k+1)/F) seconds and looks at the frame whose start
  timestamp is nearest to the centre (k + 0.5)/F; T = floor(duration * F). Above the
  native rate a frame may serve several features.

Decoding (``VideoSource.iter_frames``) reads sampled frames in order, skipping the frames
in between (decoded without colour conversion) and seeking only when a keyframe lies in
the gap; this is faster than ``get_batch`` here. ``release_readahead`` drops decord's
read-ahead before the caller waits (see there): with it memory stays flat.
decord raises ``RuntimeError`` on open and ``decord._ffi.base.DECORDError`` (not a
RuntimeError) while decoding: both become ``VideoDecodeError``.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from psftr_core.errors import InputError, PsftrError, error_text

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".qt", ".mpg", ".mpeg", ".mpe",
        ".m2v", ".ts", ".mts", ".m2ts", ".flv", ".f4v", ".wmv", ".asf", ".ogv", ".3gp",
        ".3g2", ".vob", ".dv", ".y4m", ".h264", ".hevc",
    }
)
_GLOB_CHARS = set("*?[")


class VideoDecodeError(PsftrError):
    """A video that cannot be opened or decoded (reported; the other videos go on)."""


@dataclass(frozen=True)
class VideoInput:
    path: Path  # resolved absolute path
    video_id: str


@dataclass
class SamplePlan:
    """Which frames to decode for the features of one video.

    indices: int64 [T] frame index per feature (non-decreasing).
    times: float64 [T] seconds, the time each feature stands for.
    """

    indices: np.ndarray
    times: np.ndarray
    frame_length: int
    video_fps: float
    duration: float  # seconds of video (end of the last frame)
    snippet_duration: float  # seconds covered by the T features

    @property
    def num_features(self) -> int:
        return int(len(self.indices))


# ----------------------------------------------------------------------------- inputs


def is_video_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def collect_videos(inputs: Sequence[str], exclude: Sequence[str | os.PathLike] = ()) -> tuple[list[Path], list[str]]:
    """Expand inputs into video files (resolved, input order, duplicates once).

    Returns (videos, notes); notes say which files were skipped and why. Folders in
    ``exclude`` (e.g. the output folder) are not searched. A missing path, a glob
    without matches or an unreadable list -> InputError.
    """
    videos: list[Path] = []
    notes: list[str] = []
    seen: set[Path] = set()
    excluded = {Path(e).resolve() for e in exclude}

    def _walk(folder: Path) -> Iterator[Path]:
        for found in _walk_files(folder):
            if not excluded or not any(parent in excluded for parent in found.resolve().parents):
                yield found

    def add_file(path: Path) -> None:
        resolved = path.resolve()
        if resolved in seen:
            return
        seen.add(resolved)
        if is_video_file(resolved):
            videos.append(resolved)
        else:
            notes.append(f"skipped {path}: not a video file (extension {path.suffix or 'none'})")

    def add(entry: str, base: Path | None, origin: str) -> None:
        if entry.startswith("@") and base is None:
            _read_list(Path(entry[1:]), add)
            return
        path = Path(os.path.expanduser(entry))
        if base is not None and not path.is_absolute():
            path = base / path
        if path.is_dir():
            for found in _walk(path):
                add_file(found)
        elif path.is_file():
            add_file(path)
        elif _GLOB_CHARS & set(entry):
            matches = sorted(glob.glob(str(path), recursive=True))
            if not matches:
                raise InputError(f"no files match {entry}{origin}")
            for match in matches:
                match_path = Path(match)
                if match_path.is_dir():
                    for found in _walk(match_path):
                        add_file(found)
                elif match_path.is_file():
                    add_file(match_path)
        else:
            raise InputError(f"input not found: {path}{origin}")

    def _read_list(list_path: Path, add_fn) -> None:
        try:
            lines = list_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise InputError(f"list file not found: {list_path}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read list file {list_path}: {err}") from None
        for number, line in enumerate(lines, 1):
            entry = line.strip()
            if entry and not entry.startswith("#"):
                add_fn(entry, list_path.parent, f" (line {number} of {list_path})")

    for item in inputs:
        add(str(item), None, "")
    return videos, notes


def _walk_files(folder: Path) -> Iterator[Path]:
    """Files under folder, recursively, sorted, skipping hidden files and folders."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def assign_video_ids(paths: Sequence[Path]) -> list[VideoInput]:
    """Stable, unique ids (see module docstring). Order follows ``paths``."""
    by_stem: dict[str, int] = {}
    for path in paths:
        key = path.stem.lower()
        by_stem[key] = by_stem.get(key, 0) + 1
    out = []
    for path in paths:
        stem = path.stem
        if by_stem[stem.lower()] > 1:
            digest = hashlib.sha1(str(Path(path).resolve()).encode("utf-8")).hexdigest()[:8]
            stem = f"{stem}-{digest}"
        out.append(VideoInput(Path(path).resolve(), stem))
    return out


def parse_shard(spec: str | None, env: dict | None = None) -> tuple[int, int]:
    """``"I/N"`` -> (I, N); None -> RANK / WORLD_SIZE from the environment, else (0, 1)."""
    env = os.environ if env is None else env
    if spec is None:
        if env.get("WORLD_SIZE") and env.get("RANK"):
            spec, origin = f"{env['RANK']}/{env['WORLD_SIZE']}", "RANK/WORLD_SIZE"
        else:
            return 0, 1
    else:
        origin = "--shard"
    try:
        index_text, count_text = str(spec).split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise InputError(f"{origin} {spec!r}: expected I/N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"{origin} {spec!r}: need 0 <= I < N")
    return index, count


def shard_videos(videos: Sequence[VideoInput], index: int, count: int) -> list[VideoInput]:
    """Round-robin over videos sorted by id: every video lands in exactly one shard."""
    ordered = sorted(videos, key=lambda v: v.video_id)
    return [v for k, v in enumerate(ordered) if k % count == index]


# ----------------------------------------------------------------------------- sampling


def plan_samples(timestamps: np.ndarray, stride: int | None = None, fps: float | None = None) -> SamplePlan:
    """Frames to sample from per-frame timestamps [N, 2] (start, end) in seconds."""
    if (stride is None) == (fps is None):
        raise InputError("give exactly one of --stride and --fps")
    ts = np.asarray(timestamps, dtype=np.float64).reshape(-1, 2)
    n = len(ts)
    duration = float(ts[-1, 1]) if n else 0.0
    video_fps = n / duration if duration > 0 else 0.0
    if stride is not None:
        if stride < 1:
            raise InputError(f"--stride must be at least 1, got {stride}")
        count = n // stride
        indices = np.arange(count, dtype=np.int64) * stride + stride // 2
        times = ts[indices, 0] if count else np.zeros(0)
        covered = float(ts[count * stride - 1, 1]) if count else 0.0
    else:
        if not fps > 0:
            raise InputError(f"--fps must be positive, got {fps}")
        count = int(np.floor(duration * fps + 1e-9))
        times = (np.arange(count) + 0.5) / fps
        starts = ts[:, 0]
        # nearest frame start to each centre time (starts are sorted for decoded order)
        right = np.clip(np.searchsorted(starts, times), 0, max(n - 1, 0))
        left = np.clip(right - 1, 0, max(n - 1, 0))
        pick_left = np.abs(starts[left] - times) <= np.abs(starts[right] - times)
        indices = np.where(pick_left, left, right).astype(np.int64) if n else np.zeros(0, np.int64)
        covered = count / fps
    return SamplePlan(
        indices=indices,
        times=np.asarray(times, dtype=np.float64),
        frame_length=n,
        video_fps=video_fps,
        duration=duration,
        snippet_duration=covered,
    )


# ----------------------------------------------------------------------------- decoding


class VideoSource:
    """One opened video (decord). Frames come out as uint8 RGB arrays [H, W, 3]."""

    def __init__(self, path: str | os.PathLike, num_threads: int = 1) -> None:
        import decord

        self.path = Path(path)
        self._pending: list[int] = []
        self._next = 0  # position in _pending of the next frame to decode
        self._position = 0
        self._last_index = -1
        try:
            self._reader = decord.VideoReader(str(path), num_threads=num_threads)
            self.num_frames = len(self._reader)
            if self.num_frames == 0:
                raise VideoDecodeError(f"{self.path.name}: no video frames")
            self.timestamps = np.asarray(
                self._reader.get_frame_timestamp(list(range(self.num_frames))), dtype=np.float64
            ).reshape(-1, 2)
            self.key_indices = np.asarray(self._reader.get_key_indices(), dtype=np.int64)
        except _decode_errors() as err:
            raise VideoDecodeError(f"{self.path.name}: cannot open video: {error_text(err)}") from None

    def plan(self, stride: int | None = None, fps: float | None = None) -> SamplePlan:
        return plan_samples(self.timestamps, stride=stride, fps=fps)

    def iter_frames(self, indices: Sequence[int], chunk: int = 16) -> Iterator[np.ndarray]:
        """Decode frames at non-decreasing ``indices``, yielding uint8 [n<=chunk, H, W, 3].

        Between chunks the caller may call ``release_readahead()`` (before it waits).
        """
        indices = [int(i) for i in indices]
        self._pending = indices
        buffer: list[np.ndarray] = []
        for k, frame in enumerate(self._iter_single(indices)):
            buffer.append(frame)
            if len(buffer) == chunk:
                self._next = k + 1
                yield np.stack(buffer)
                buffer = []
        self._next = len(indices)
        if buffer:
            yield np.stack(buffer)

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
        earlier = self.key_indices[self.key_indices <= wanted]
        keyframe = int(earlier.max()) if len(earlier) else 0
        try:
            self._reader.seek(keyframe)
        except _decode_errors() as err:
            raise VideoDecodeError(f"{self.path.name}: seeking failed near frame {keyframe}: {error_text(err)}") from None
        self._position = keyframe

    def _iter_single(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        self._position = 0  # index of the frame next() returns
        self._last_index, last_frame = -1, None
        try:
            self._reader.seek(0)
            for index in indices:
                if index == self._last_index:
                    yield last_frame
                    continue
                if index < self._position or index >= self.num_frames:
                    raise VideoDecodeError(f"{self.path.name}: frame index {index} out of order or range")
                reader = self._reader
                if index > self._position:
                    if np.any((self.key_indices > self._position) & (self.key_indices <= index)):
                        reader.seek_accurate(index)  # decodes from the keyframe before index
                    else:
                        reader.skip_frames(index - self._position)  # decoded, not converted to RGB
                last_frame = reader.next().asnumpy()
                self._last_index, self._position = index, index + 1
                yield last_frame
        except StopIteration:
            raise VideoDecodeError(f"{self.path.name}: video ended before frame {self._position}") from None
        except _decode_errors() as err:
            raise VideoDecodeError(
                f"{self.path.name}: decoding failed near frame {self._position}: {error_text(err)}"
            ) from None

    @property
    def is_open(self) -> bool:
        """False once closed (``close``, or ``release_readahead`` after the last chunk)."""
        return self._reader is not None

    def close(self) -> None:
        self._reader = None


def _decode_errors() -> tuple[type[BaseException], ...]:
    from decord._ffi.base import DECORDError

    return (RuntimeError, DECORDError)
