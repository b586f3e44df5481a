"""What the editor formats (edl, otio, chapters) share: one video's timeline per file,
and what they know of the video itself.

``write_video(video, detections, media=None)``: ``media`` describes the video, any
object with the attributes (or a mapping with the keys) ``fps`` (frames per second),
``duration`` (seconds) and ``file`` (its path), each optional (``VideoInfo`` of
``psftr_core.infer.results`` is one). What is not known falls back: the timecode rate
to ``timecode.DEFAULT_FPS``, the duration to the last segment's end, the file name to
the video id. The other formats take no ``media``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from psftr_core.errors import InputError
from psftr_core.io.formats.base import StreamWriter


def media_field(media: Any, name: str) -> Any:
    """``media``'s ``name`` (attribute or key), None when it has none."""
    if media is None:
        return None
    if isinstance(media, Mapping):
        return media.get(name)
    return getattr(media, name, None)


def media_fps(media: Any) -> float | None:
    """The video's frame rate, None when unknown or not a positive number."""
    fps = media_field(media, "fps")
    return float(fps) if isinstance(fps, (int, float)) and fps > 0 else None


def media_duration(media: Any, items: Sequence[Mapping[str, Any]]) -> float:
    """The video's duration: known, else the last segment's end (0 without segments)."""
    duration = media_field(media, "duration")
    ends = [d["segment"][1] for d in items]
    if isinstance(duration, (int, float)) and duration >= 0:
        return max([float(duration), *ends])
    return max(ends, default=0.0)


def media_name(video: str, media: Any) -> str:
    """The video file's name (``bikes.mp4``), else the video id."""
    file = media_field(media, "file")
    return Path(file).name if file else video


def check_start(video: str, start: float) -> None:
    """Editor times start at 0: InputError naming the video for a negative start."""
    if start < 0:
        raise InputError(f"video {video!r}: segment start {start:g} is negative: timeline times start at 0")


class TimelineWriter(StreamWriter):
    """One video per stream (the format's ``single_video``); ``self.media`` is the video's
    description during :meth:`_write`."""

    def __init__(self, stream: IO[str], flush: bool = True, details: str = "", version: str | None = None) -> None:
        super().__init__(stream, flush)
        self._video: str | None = None
        self.media: Any = None

    def write_video(self, video: str, detections: Sequence[Any], media: Any = None) -> None:
        if self._video is not None:
            raise InputError(
                f"--format {self.fmt} holds one video's timeline; got a second video {video!r} "
                f"after {self._video!r} (write one file per video instead)"
            )
        self.media = media
        super().write_video(video, detections)
        self._video = video
