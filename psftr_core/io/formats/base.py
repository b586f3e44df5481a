"""What every output format of ``psftr detect`` shares: its descriptor, the writer
interface, and the writer bookkeeping.

A format is one module of this package defining a :class:`OutputFormat` (its name,
file extension, writer, ...) and listed in the registry (``psftr_core.io.formats``).
Every writer has the same small interface (:class:`SegmentWriter`)::

    writer = output_format("jsonl").open(sys.stdout, flush=True, details="", version=None)
    writer.write_video("video_a", detections)   # flushed after each video
    writer.close()                                # writes any trailer (JSON; CSV: none)

``detections`` are ActivityNet detection dicts (``{"segment": [start_s, end_s],
"label": str, "score": float}``) or objects with a ``to_result()`` method giving one
(``psftr_core.infer.detect.Segment``). They are validated like the results files of
:mod:`psftr_core.io.export` (finite numbers, end >= start, non-empty label).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any, Callable, Optional, Protocol

from psftr_core.errors import InputError
from psftr_core.io.atomic import atomic_open
from psftr_core.io.export import normalise_results


class SegmentWriter(Protocol):
    """What an :class:`OutputFormat` opens on a text stream."""

    videos: int  # videos written so far
    segments: int  # segments written so far

    def write_video(self, video: str, detections: Sequence[Any]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class OutputFormat:
    """One output format of ``psftr detect``, as the registry lists it.

    - ``name``: its ``--format`` name (lower case);
    - ``extension``: the file extension, no dot (``--output-dir`` files are
      ``<video>.<extension>``);
    - ``summary``: a few words for the ``--format`` help (may be empty);
    - ``open(stream, flush=, details=, version=)``: a :class:`SegmentWriter` on a text
      stream. ``flush=True`` flushes after each video; ``details`` / ``version`` describe
      the run for formats that record them (json), the others ignore them. A writer
      writes its own line ends: a file for it is opened with ``newline=""``;
    - ``single_video``: a file or stream holds one video's timeline (srt, vtt): the
      writer refuses a second video, and ``psftr detect`` refuses several videos on one
      stream before any work (one file per video with ``--output-dir``);
    - ``read_back(path)``: reads a file of this format back as ``{video: [detection
      dicts]}`` exactly as written (same order, numbers, labels), or None when the
      format rounds or changes things. Only such lossless formats let a resumed
      ``--output-dir`` run pass finished videos on to its other outputs;
    - ``media``: the writer takes what is known of the video
      (``write_video(video, detections, media=)``: its frame rate, duration, file; see
      ``timeline.py``), as the editor formats do; :meth:`write_file` and ``psftr detect``
      pass it to those only.
    """

    name: str
    extension: str
    summary: str
    open: Callable[..., SegmentWriter]
    single_video: bool = False
    read_back: Optional[Callable[[str | os.PathLike], dict[str, list[dict[str, Any]]]]] = None
    media: bool = False

    @property
    def lossless(self) -> bool:
        """Does :attr:`read_back` give back exactly what was written?"""
        return self.read_back is not None

    def write_file(
        self, path: str | os.PathLike, video: str, detections: Sequence[Any], *, details: str = "",
        version: str | None = None, media: Any = None,
    ) -> None:
        """Write one video's detections to ``path``, atomically (``media``: what is known
        of the video, for the formats that take it).

        A malformed detection raises InputError and leaves ``path`` untouched.
        """
        with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
            writer = self.open(handle, flush=False, details=details, version=version)
            self.write_video(writer, video, detections, media)
            writer.close()

    def write_video(self, writer: SegmentWriter, video: str, detections: Sequence[Any], media: Any = None) -> None:
        """``writer.write_video``, with ``media`` when this format takes it."""
        if self.media:
            writer.write_video(video, detections, media=media)  # type: ignore[call-arg]
        else:
            writer.write_video(video, detections)


def detection_dicts(video: str, detections: Iterable[Any]) -> list[dict[str, Any]]:
    """Validated ActivityNet detection dicts of one video (``to_result()`` objects allowed).

    Raises InputError naming the video and entry on a malformed detection.
    """
    items = [d.to_result() if hasattr(d, "to_result") else d for d in detections]
    return normalise_results({video: items})[video]


class StreamWriter:
    """The base of the writers: counts, flush after each video, no writes after close.

    A format's writer subclasses it and implements :meth:`_write` (one video's validated
    detection dicts) and, if it has a trailer, :meth:`_finish`. The constructor is the
    ``open`` of :class:`OutputFormat`.
    """

    fmt = ""  # the format's name, for messages

    def __init__(self, stream: IO[str], flush: bool = True, details: str = "", version: str | None = None) -> None:
        self._stream = stream
        self._flush = flush
        self._closed = False
        self.videos = 0
        self.segments = 0

    def write_video(self, video: str, detections: Sequence[Any]) -> None:
        if self._closed:
            raise ValueError(f"{self.fmt} writer is closed")
        if not isinstance(video, str):
            raise InputError(f"video id {video!r} is not a string")
        items = detection_dicts(video, detections)
        self._write(video, items)
        self.videos += 1
        self.segments += len(items)
        if self._flush:
            self._stream.flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._finish()
            if self._flush:
                self._stream.flush()

    def __enter__(self) -> "StreamWriter":
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:  # an error leaves the output unfinished, so it cannot pass as complete
            self.close()

    def _write(self, video: str, items: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        pass
