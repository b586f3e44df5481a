"""``--format otio``: an OpenTimelineIO timeline of one video, with a marker per segment.

The timeline (named after the video) has one video track holding the video as one clip:
its media reference is the video file (an ``ExternalReference`` to its ``file://`` URL,
or a ``MissingReference`` for a feature dataset's video) with the available range
0 - duration, and the clip covers all of it. Each segment is a marker on the clip:
name = label, marked range = the segment (exact seconds), metadata
``{"psftr": {"score": s}}``. Times use the video's frame rate as their rate
(``timecode.DEFAULT_FPS`` when unknown). The file is ``otio_json``, read by
``opentimelineio.adapters.read_from_file`` and by the editors' OTIO importers.

Needs the ``opentimelineio`` package (``pip install 'psftr[otio]'``), imported only
when the format is used; without it ``--format otio`` is refused in one line (exit 2)
and ``--format all`` leaves it out.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from psftr_core.errors import InputError
from psftr_core.io.formats.base import OutputFormat
from psftr_core.io.formats.subtitles import cue_order
from psftr_core.io.formats.timecode import DEFAULT_FPS
from psftr_core.io.formats.timeline import TimelineWriter, check_start, media_duration, media_field, media_fps

MISSING = "--format otio needs the opentimelineio package: pip install 'psftr[otio]'"


def otio_available() -> bool:
    """Is ``opentimelineio`` installed? (Looked up without importing it.)"""
    try:
        return importlib.util.find_spec("opentimelineio") is not None
    except ValueError:  # sys.modules holds None for it: imports of it fail
        return False


def load_otio() -> Any:
    """The ``opentimelineio`` module; InputError naming the extra when it is missing."""
    try:
        import opentimelineio
    except ImportError:
        raise InputError(MISSING) from None
    return opentimelineio


def media_reference(otio: Any, file: str | None, available: Any) -> Any:
    """The clip's media: the video file's URL, or a MissingReference without a file."""
    if not file:
        return otio.schema.MissingReference(available_range=available)
    return otio.schema.ExternalReference(target_url=Path(file).resolve().as_uri(), available_range=available)


def segment_marker(otio: Any, det: dict[str, Any], rate: float) -> Any:
    """One marker: name = label, marked range = segment, metadata = score."""
    start, end = det["segment"]
    marked = otio.opentime.TimeRange(otio.opentime.from_seconds(start, rate),
                                     otio.opentime.from_seconds(end - start, rate))
    return otio.schema.Marker(name=det["label"], marked_range=marked, metadata={"psftr": {"score": det["score"]}})


def timeline(otio: Any, video: str, items: list[dict[str, Any]], media: Any) -> Any:
    """The timeline of one video: a track, the video as a clip, a marker per segment."""
    rate = media_fps(media) or DEFAULT_FPS
    available = otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                        otio.opentime.from_seconds(media_duration(media, items), rate))
    clip = otio.schema.Clip(name=video, media_reference=media_reference(otio, media_field(media, "file"), available),
                            source_range=available)
    for det in cue_order(items):
        check_start(video, det["segment"][0])
        clip.markers.append(segment_marker(otio, det, rate))
    track = otio.schema.Track(name="video", kind=otio.schema.TrackKind.Video)
    track.append(clip)
    result = otio.schema.Timeline(name=video)
    result.tracks.append(track)
    return result


class OtioWriter(TimelineWriter):
    """The timeline as ``otio_json`` (opentimelineio loaded when the writer is opened)."""

    fmt = "otio"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._otio = load_otio()  # before anything is written: a missing package writes nothing
        super().__init__(*args, **kwargs)

    def _write(self, video: str, items: list[dict[str, Any]]) -> None:
        document = self._otio.adapters.write_to_string(timeline(self._otio, video, items, self.media), "otio_json")
        self._stream.write(document + "\n")


OTIO_FORMAT = OutputFormat(name="otio", extension="otio", summary="OpenTimelineIO timeline", open=OtioWriter,
                           single_video=True, media=True)
