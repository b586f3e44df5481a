"""Cut each detected segment of a video into its own short video (``psftr detect --clips DIR``).

:func:`write_clips` writes ``DIR/<video>/<label>_<start>.mp4`` per segment with PyAV (no
``ffmpeg`` program needed) and returns a :class:`ClipRecord` per clip, in time order.

Names: ``<video>`` and ``<label>`` go through :func:`~psftr_core.io.output_dir.safe_stem`
(``/``, ``:``... become ``_``), and white space in labels becomes ``_`` (``high jump`` ->
``high_jump_12.340.mp4``: no quoting in a shell). ``<start>`` is the detected start with 3
decimals, as in the CSV, also when padding makes the clip start earlier. A name another
clip of the video has (compared case-folded, as macOS and Windows do) gets ``~2``, ``~3``...
in time order; a folder holding another video id's clips (``a:b`` and ``a_b`` share a
stem) makes the video's ``<video>~<8 hex digits of the id's SHA-256>``.

Times are seconds from the video's first frame (the detected segments' timeline).
``padding`` seconds go on both sides, clamped to [0, duration]; a segment with nothing
left (end <= start) gets no clip and no record. How a clip is cut (``method``):

- ``"copy"``: the packets are copied as they are (no quality loss, fast), from the
  keyframe at or before the start, so the clip may start early (up to a keyframe
  interval; ``actual_start`` says where). It ends after the last frame that starts
  before the end: exact to the frame without B-frames; with B-frames the frames decoded
  from the next reference frame come along (a few frames past the end). Audio (the
  first audio stream) is copied packet by packet over the same span (an AAC packet is
  21 ms at 48 kHz). Audio MP4 cannot hold (PCM) makes ``copy`` fail and ``auto`` encode.
- ``"encode"``: decoded from the keyframe before the start and re-encoded with H.264
  (``libx264``, CRF 18) where PyAV has it, else MPEG-4 Part 2: exactly the frames that
  show during [start, end), with the source's timestamps (variable frame rates are
  kept). Audio is re-encoded to AAC, cut to the sample at the first frame's start and at
  ``end``. Odd frame sizes lose their last row or column (4:2:0 needs even sizes).
- ``"auto"`` (default): ``copy`` when the start is on a keyframe (within half a frame),
  else ``encode``.

Clip timestamps start at 0; the rotation of the source (display matrix) is kept; only the
first video and audio streams are written (subtitles and data streams are not).

Writes are atomic (``psftr_core.io.atomic``: a temporary sibling renamed at the end; the
temporary files of a dead writer are swept). ``DIR/<video>/.psftr-clips.json`` records
each clip with its settings (source size and mtime, label, start, end, padding, method):
a re-run skips a clip with the same ones whose file is there (status ``"skipped"``),
rewrites one whose settings changed and deletes the clips it lists that are no longer
asked for (no other file). Only one process should write a video's folder at a time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
from collections import namedtuple
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

from psftr_core.errors import InputError, error_text
from psftr_core.io.atomic import atomic_open, remove_stale_temp_files, write_text
from psftr_core.io.output_dir import id_hash, safe_stem, stem_key
from psftr_core.io.paths import write_error

_log = logging.getLogger(__name__)

CLIPS_MANIFEST_NAME = ".psftr-clips.json"
CLIPS_MANIFEST_VERSION = 1
CLIP_METHODS = ("auto", "copy", "encode")
CLIP_EXTENSION = "mp4"
_EPS = 1e-4  # seconds: a frame this close to a cut point counts as on it (printed times have 3 decimals)


@dataclass(frozen=True)
class ClipRecord:
    """One clip of a video: written now or skipped (already there with the same settings).

    ``start``/``end``: the span asked for (padded and clamped), seconds on the source's
    timeline; ``actual_start``/``actual_end``: what the file holds, on the same timeline
    (the file's own timestamps start at 0). ``method``: ``"copy"`` or ``"encode"``, the
    one used. ``status``: ``"written"`` or ``"skipped"``.
    """

    path: Path
    label: str
    start: float
    end: float
    method: str
    actual_start: float
    actual_end: float
    status: str


@dataclass(frozen=True)
class _Source:
    """A video file as the cutters need it (times in seconds from its first frame)."""

    path: Path
    duration: float
    frame_duration: float  # seconds, from the guessed frame rate
    rotation: float  # display-matrix rotation, degrees counter-clockwise
    fingerprint: dict[str, int]  # size and mtime: a changed file invalidates its clips


# A clip to write: its file name, the segment as detected and the padded span (seconds).
_Plan = namedtuple("_Plan", "name label segment_start segment_end start end")


def write_clips(clips_dir: str | os.PathLike, video_id: str, video_file: str | os.PathLike, segments: Iterable[Any],
                *, padding: float = 0.0, method: str = "auto") -> list[ClipRecord]:
    """Write one clip per segment of ``video_id`` under ``clips_dir/<video>/`` (module docstring).

    ``segments``: objects with ``label``, ``start`` and ``end`` (seconds), such as
    ``psftr_core.infer.results.Segment``, or mappings with those keys. ``padding``:
    seconds added on both sides (>= 0). ``method``: ``"auto"``, ``"copy"`` or ``"encode"``.
    Returns the records in time order. InputError for a bad argument or a video that
    cannot be read (one line naming it); OutputError when a clip cannot be written.
    """
    if method not in CLIP_METHODS:
        raise InputError(f"clip method must be one of {', '.join(CLIP_METHODS)}, got {method!r}")
    if not isinstance(padding, (int, float)) or not math.isfinite(padding) or padding < 0:
        raise InputError(f"clip padding must be a number of seconds >= 0, got {padding!r}")
    if video_file is None:
        raise InputError(f"video {video_id} has no video file to cut clips from")
    spans = [_segment_span(segment, i) for i, segment in enumerate(segments)]
    source = _probe(Path(video_file))
    plans = _plan(spans, source.duration, float(padding))
    folder = _video_folder(Path(clips_dir), video_id)
    if not plans and not folder.exists():
        return []  # no empty folders for videos without segments
    manifest = _Manifest(folder, video_id)
    manifest.keep_only({plan.name for plan in plans})
    records = []
    for plan in plans:
        settings = {"source": source.fingerprint, "label": plan.label, "start": plan.segment_start,
                    "end": plan.segment_end, "padding": float(padding), "method": method}
        path = folder / plan.name
        held, status = manifest.done(plan.name, settings), "skipped"
        if held is None:
            held, status = _cut(source, path, plan.start, plan.end, method), "written"
            manifest.add(plan.name, settings, held)
        records.append(ClipRecord(path, plan.label, plan.start, plan.end, held["method"], held["actual_start"],
                                  held["actual_end"], status))
    return records


def _segment_span(segment: Any, index: int) -> tuple[str, float, float]:
    """``(label, start, end)`` of a segment object or mapping; InputError naming it if bad."""
    get = segment.get if isinstance(segment, Mapping) else lambda key: getattr(segment, key, None)
    label, start, end = get("label"), get("start"), get("end")
    if not isinstance(label, str) or not label:
        raise InputError(f"segment {index + 1} has no label (a non-empty text)")
    try:
        start, end = float(start), float(end)
    except (TypeError, ValueError):
        start = end = math.nan
    if not (math.isfinite(start) and math.isfinite(end)):
        raise InputError(f"segment {index + 1} ({label}) needs finite start and end seconds")
    return label, start, end


def label_stem(label: str) -> str:
    """The file-name stem of an action label: :func:`safe_stem` with white space as ``_``."""
    return safe_stem(re.sub(r"\s+", "_", label.strip()) or "_")


def _plan(spans: list[tuple[str, float, float]], duration: float, padding: float) -> list[_Plan]:
    """The clips to write, in time order, with unique names; empty spans dropped."""
    plans, taken = [], set()
    for label, seg_start, seg_end in sorted(spans, key=lambda s: (s[1], s[2], s[0])):
        start = min(max(seg_start - padding, 0.0), duration)
        end = min(max(seg_end + padding, 0.0), duration)
        if end - start <= _EPS:
            _log.debug("segment %s %.3f-%.3f is empty within the video: no clip", label, seg_start, seg_end)
            continue
        base = f"{label_stem(label)}_{seg_start:.3f}"
        name, copy = f"{base}.{CLIP_EXTENSION}", 1
        while stem_key(name) in taken:
            copy += 1
            name = f"{base}~{copy}.{CLIP_EXTENSION}"
        taken.add(stem_key(name))
        plans.append(_Plan(name, label, seg_start, seg_end, start, end))
    return plans


def _video_folder(clips_dir: Path, video_id: str) -> Path:
    """``clips_dir/<safe stem>``, or the hashed name when another video's clips are there."""
    if clips_dir.exists() and not clips_dir.is_dir():
        raise InputError(f"clips folder {clips_dir} is a file, expected a folder")
    stem = safe_stem(video_id)
    for name in (stem, f"{stem}~{id_hash(video_id)}"):
        data = _Manifest._read(clips_dir / name / CLIPS_MANIFEST_NAME)
        if data is None or data["video"] == video_id:
            return clips_dir / name
    raise InputError(f"no free clips folder for video {video_id!r} in {clips_dir}")  # needs a hash clash


class _Manifest:
    """``<folder>/.psftr-clips.json``: ``{"version", "video", "clips": {name: entry}}``, where
    an entry is ``{"settings", "method", "actual_start", "actual_end", "size"}``."""

    def __init__(self, folder: Path, video_id: str) -> None:
        self.folder = folder
        self.path = folder / CLIPS_MANIFEST_NAME
        self.video_id = video_id
        data = self._read(self.path)
        clips = data.get("clips") if data and data.get("video") == video_id else None
        self.clips: dict[str, dict[str, Any]] = {
            name: entry for name, entry in (clips or {}).items() if _usable_entry(name, entry)}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(self.folder, err) from err
        remove_stale_temp_files(self.folder)  # clips of a writer killed mid-way
        self._save()  # claims the folder for this video before any clip is written

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        """The manifest's data, None if missing or unusable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        ok = isinstance(data, dict) and data.get("version") == CLIPS_MANIFEST_VERSION
        return data if ok and isinstance(data.get("clips"), dict) and isinstance(data.get("video"), str) else None

    def _save(self) -> None:
        data = {"version": CLIPS_MANIFEST_VERSION, "video": self.video_id, "clips": self.clips}
        write_text(self.path, json.dumps(data, indent=2) + "\n")  # ASCII: ids that are not UTF-8 round-trip

    def keep_only(self, names: set[str]) -> None:
        """Delete the clips written earlier that are not in ``names``."""
        gone = sorted(set(self.clips) - names)
        for name in gone:
            path = self.folder / name
            with contextlib.suppress(OSError):  # gone already, or not ours to delete
                if path.is_file() and not path.is_symlink():
                    path.unlink()
            del self.clips[name]
        if gone:
            self._save()

    def done(self, name: str, settings: dict[str, Any]) -> dict[str, Any] | None:
        """The entry of ``name`` if it was written with ``settings`` and its file is whole."""
        entry = self.clips.get(name)
        if entry is None or entry.get("settings") != settings:
            return None
        try:
            size = (self.folder / name).stat().st_size
        except OSError:
            return None
        return entry if size == entry.get("size") else None

    def add(self, name: str, settings: dict[str, Any], held: dict[str, Any]) -> None:
        size = (self.folder / name).stat().st_size
        self.clips[name] = {"settings": settings, **held, "size": size}
        self._save()


def _usable_entry(name: Any, entry: Any) -> bool:
    """A plain clip name (we delete the files listed) with what a record needs."""
    return (isinstance(name, str) and name.endswith("." + CLIP_EXTENSION) and safe_stem(name) == name
            and isinstance(entry, dict) and entry.get("method") in ("copy", "encode")
            and all(isinstance(entry.get(key), (int, float)) for key in ("actual_start", "actual_end")))


def _av_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.error.FFmpegError, OSError, ValueError, EOFError)


@contextlib.contextmanager
def _open_input(path: Path) -> Iterator[Any]:
    """PyAV input container of ``path`` read through a Python file (any file name works)."""
    import av

    with open(path, "rb") as handle, av.open(handle, "r") as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        yield container


def _probe(path: Path) -> _Source:
    """Duration, frame rate, rotation and fingerprint of ``path``; InputError if unreadable."""
    try:
        info = os.stat(path)
        with _open_input(path) as container:
            stream = container.streams.video[0]
            rate = stream.guessed_rate or stream.average_rate or 25
            first = next(container.decode(stream), None)
            if first is None:
                raise ValueError("no video frames")
            rotation = float(getattr(first, "rotation", 0) or 0)
            duration = _duration(container, stream)
    except _av_errors() as err:
        raise InputError(f"cannot cut clips from {path.name}: {_reason(err)}") from None
    fingerprint = {"size": int(info.st_size), "mtime_ns": int(info.st_mtime_ns)}
    return _Source(path, duration, 1.0 / float(rate), rotation, fingerprint)


def _reason(err: BaseException) -> str:
    """Why a video cannot be read, in words (PyAV's text goes to the debug log)."""
    _log.debug("PyAV error: %s", error_text(err))
    if isinstance(err, OSError) and type(err).__module__ == "builtins":  # from open(), not from FFmpeg
        known = {FileNotFoundError: "no such file", IsADirectoryError: "a folder, not a video"}
        return known.get(type(err), (err.strerror or "unreadable").lower())
    return error_text(err) if type(err) is ValueError else "not a video or corrupt"


def _duration(container: Any, stream: Any) -> float:
    """Seconds from the first frame to the end of the last one: the stream header's
    duration, else the container's, else the packets' timestamps."""
    tb = float(stream.time_base)
    if stream.duration:
        return float(stream.duration) * tb
    if container.duration:
        return float(container.duration) / 1_000_000
    container.seek(0)
    ends = [p.pts + (p.duration or 0) for p in container.demux(stream) if p.pts is not None]
    if not ends:
        raise ValueError("no video frames")
    return (max(ends) - _origin(stream)) * tb


def _origin(stream: Any) -> int:
    """pts of the first frame (the zero of the source timeline)."""
    return int(stream.start_time or 0)


def _seek_keyframe(container: Any, stream: Any, target: int) -> tuple[int, int]:
    """``(seek_to, key)``: ``key`` is the pts of the last keyframe that shows at or before
    ``target`` (stream time base), and ``container.seek(seek_to)`` makes demuxing reach it
    first. Seeking goes by decoding times, which come before the display times with
    B-frames: a keyframe found after ``target`` makes us aim half a second earlier."""
    aim, step, key = target, max(1, round(0.5 / float(stream.time_base))), None
    for _ in range(8):
        container.seek(aim, stream=stream, backward=True, any_frame=False)
        key = next((p.pts for p in container.demux(stream) if p.is_keyframe and p.pts is not None), None)
        if key is None:
            raise ValueError("no keyframe")
        if key <= target or aim < _origin(stream):
            break
        aim -= key - target + step
    return aim, key


def _cut(source: _Source, path: Path, start: float, end: float, method: str) -> dict[str, Any]:
    """Write the clip [start, end) of ``source`` to ``path`` atomically; returns
    ``{"method", "actual_start", "actual_end"}``."""
    chosen = method
    try:
        with _open_input(source.path) as container:
            stream = container.streams.video[0]
            tb, origin = float(stream.time_base), _origin(stream)
            seek_to, key = _seek_keyframe(container, stream, origin + round((start + source.frame_duration / 2) / tb))
            on_key = abs((key - origin) * tb - start) <= source.frame_duration / 2
            chosen = method if method != "auto" else ("copy" if on_key else "encode")
            for attempt in (chosen, "encode") if chosen == "copy" and method == "auto" else (chosen,):
                chosen = attempt
                container.seek(seek_to, stream=stream, backward=True, any_frame=False)
                try:
                    with atomic_open(path, "wb") as handle:
                        if chosen == "copy":
                            actual = _copy_packets(container, handle, key, end, source.frame_duration)
                        else:
                            actual = _encode_frames(container, handle, source, start, end)
                    break
                except _av_errors() as err:
                    if method != "auto" or chosen != "copy" or isinstance(err, InputError):
                        raise
                    _log.debug("stream copy into MP4 failed (%s): re-encoding", error_text(err))
    except _av_errors() as err:
        if isinstance(err, InputError):  # OutputError: the clip cannot be written
            raise
        if chosen == "copy" and not isinstance(err, OSError):
            raise InputError(f"cannot stream-copy a clip of {source.path.name} into MP4 (its codecs may not fit "
                             f"MP4: {error_text(err, 120)}); method \"encode\" re-encodes it") from None
        raise InputError(f"cannot cut a clip from {source.path.name}: {_reason(err)}") from None
    return {"method": chosen, "actual_start": round(actual[0], 6), "actual_end": round(actual[1], 6)}


def _template_stream(output: Any, stream: Any) -> Any:
    """An output stream copying ``stream``'s codec parameters (side data, rotation included)."""
    add = getattr(output, "add_stream_from_template", None)
    return add(stream) if add is not None else output.add_stream(template=stream)  # PyAV < 14


def _copy_packets(container: Any, handle: Any, key: int, end: float, frame_duration: float) -> tuple[float, float]:
    """Remux from the keyframe ``key`` (pts) to the end; returns the span held (seconds)."""
    import av

    video = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    vtb, origin = float(video.time_base), _origin(video)
    key_time = (key - origin) * vtb
    cut = _PacketCut(key, origin + round((end - _EPS) / vtb))
    late: list[Any] = []  # audio after ``end``, kept while the video end is undecided
    with av.open(handle, "w", format="mp4") as output:
        out_video = _template_stream(output, video)
        out_audio = _template_stream(output, audio) if audio is not None else None
        audio_zero = round((origin * vtb + key_time) / float(audio.time_base)) if audio is not None else 0
        last_end = key + round(frame_duration / vtb)

        def audio_time(packet: Any) -> float:
            return packet.pts * float(packet.time_base) - origin * vtb

        def mux_video(packets: list[Any]) -> None:
            nonlocal last_end
            for packet in packets:
                last_end = max(last_end, packet.pts + (packet.duration or round(frame_duration / vtb)))
                _mux_shifted(output, out_video, packet, key)

        for packet in container.demux([s for s in (video, audio) if s is not None]):
            if packet.pts is None or packet.dts is None or not packet.size:
                continue
            if packet.stream is video:
                mux_video(cut.offer(packet))
            elif audio_time(packet) < key_time - _EPS:
                continue
            elif cut.done:
                if audio_time(packet) >= (last_end - origin) * vtb - _EPS:
                    break
                _mux_shifted(output, out_audio, packet, audio_zero)
            elif audio_time(packet) >= end - _EPS:
                late.append(packet)
            else:
                _mux_shifted(output, out_audio, packet, audio_zero)
        mux_video(cut.finish())
        for packet in late:
            if audio_time(packet) < (last_end - origin) * vtb - _EPS:
                _mux_shifted(output, out_audio, packet, audio_zero)
    return key_time, (last_end - origin) * vtb


class _PacketCut:
    """Which video packets (in decoding order) a stream copy keeps, so that every frame
    showing from keyframe ``key`` up to ``end_pts`` decodes.

    The packets after the first one showing at or after the end (an *anchor*) that show
    before it are B-frames decoded from it: when one of them shows before the end, the
    anchor and they are kept; otherwise none is (so without B-frames the clip ends at the
    last frame that starts before the end).
    """

    def __init__(self, key: int, end_pts: int) -> None:
        self.key, self.end_pts, self.started, self.done = key, end_pts, False, False
        self.anchor: Any = None
        self.tail: list[Any] = []

    def offer(self, packet: Any) -> list[Any]:
        """The packets to write now."""
        if self.done:
            return []
        if not self.started:
            self.started = bool(packet.is_keyframe) and packet.pts == self.key
            return [packet] if self.started else []  # the keyframe is always kept
        if packet.pts < self.key:
            return []  # leading frames of an open GOP: they need the GOP before
        if self.anchor is None:
            if packet.pts < self.end_pts:
                return [packet]
            self.anchor = packet
            return []
        if packet.pts < self.anchor.pts:
            self.tail.append(packet)
            return []
        return self.finish()

    def finish(self) -> list[Any]:
        """The held packets to write once the anchor's B-frames are all seen (or at the end)."""
        if self.done:
            return []
        self.done = True
        if self.anchor is not None and any(p.pts < self.end_pts for p in self.tail):
            return [self.anchor, *self.tail]
        return []


def _mux_shifted(output: Any, out_stream: Any, packet: Any, zero: int) -> None:
    """Mux ``packet`` into ``out_stream`` with timestamps moved so ``zero`` becomes 0."""
    packet.pts -= zero
    packet.dts -= zero
    packet.stream = out_stream
    output.mux(packet)


def _video_encoder(output: Any, video: Any, source: _Source) -> Any:
    """H.264 (libx264) where PyAV has it, else MPEG-4 Part 2, on the source's time base."""
    import av

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    rate = Fraction(video.guessed_rate or video.average_rate or 25).limit_denominator(1001 * 1000)
    stream = output.add_stream(codec, rate=rate)
    ctx = video.codec_context
    stream.width, stream.height = max(2, ctx.width // 2 * 2), max(2, ctx.height // 2 * 2)
    stream.pix_fmt = "yuv420p"
    stream.time_base = video.time_base
    stream.codec_context.time_base = video.time_base
    if codec == "libx264":
        stream.options = {"preset": "veryfast", "crf": "18"}
    else:
        stream.bit_rate = max(500_000, int(stream.width * stream.height * float(rate) * 0.25))
    if source.rotation and hasattr(stream, "set_display_rotation"):
        stream.set_display_rotation(source.rotation)
    return stream


_AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _audio_encoder(output: Any, audio: Any) -> Any:
    """AAC at the source's rate, on the usual layout of its channel count (AAC refuses
    layouts without a channel order, which PCM tracks often have; more than 8: 7.1)."""
    ctx = audio.codec_context
    channels = len(ctx.layout.channels) if ctx.layout else 2
    stream = output.add_stream("aac", rate=ctx.sample_rate or 48000)
    stream.layout = _AAC_LAYOUTS[min(max(channels, 1), 8)]
    stream.format = "fltp"  # FFmpeg's AAC encoder takes only this; PyAV converts the frames
    return stream


def _encode_frames(container: Any, handle: Any, source: _Source, start: float, end: float) -> tuple[float, float]:
    """Decode from the current (keyframe) position, encode the frames that show during
    [start, end) and the audio from the first one's start to ``end``; returns the span
    held (seconds)."""
    import av

    video = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    vtb, origin = float(video.time_base), _origin(video)
    first: tuple[int, float] | None = None  # (pts, seconds) of the clip's first frame: its zero
    last_end = next_time = None
    pending: list[tuple[Any, float]] = []  # audio decoded before the zero is known
    with av.open(handle, "w", format="mp4") as output:
        out_video = _video_encoder(output, video, source)
        out_audio = _audio_encoder(output, audio) if audio is not None else None
        for packet in container.demux([s for s in (video, audio) if s is not None]):
            for frame in packet.decode():
                if frame.pts is None:
                    continue
                if packet.stream is audio:
                    pending.append((frame, frame.pts * float(frame.time_base) - origin * vtb))
                    continue
                time = (frame.pts - origin) * vtb
                if next_time is not None or time >= end - _EPS:
                    next_time = time if next_time is None else next_time
                    continue
                shown = frame.duration * vtb if getattr(frame, "duration", 0) else source.frame_duration
                if time + shown <= start + _EPS:
                    continue  # ends before the clip starts
                first = first or (frame.pts, time)
                last_end = time + shown
                _encode(output, out_video, frame, frame.pts - first[0])
            if first is not None and out_audio is not None:
                for audio_frame, audio_time in pending:
                    _encode_audio(output, out_audio, audio_frame, audio_time, first[1], end)
                pending.clear()
            if next_time is not None and (audio is None or packet.stream is audio and packet.pts is not None
                                          and packet.pts * float(packet.time_base) - origin * vtb >= end):
                break  # the video is done and the audio past the end
        if first is None or last_end is None:
            raise ValueError("no frame in the clip's span")
        for stream in (s for s in (out_video, out_audio) if s is not None):
            for packet in stream.encode(None):  # flush the encoders
                output.mux(packet)
    return first[1], next_time if next_time is not None else last_end


def _encode(output: Any, stream: Any, frame: Any, pts: int) -> None:
    """Encode a decoded frame at ``pts`` (the output's time base is the source's)."""
    ctx = stream.codec_context
    out = frame.reformat(width=ctx.width, height=ctx.height, format="yuv420p")
    out.pts = pts
    out.time_base = ctx.time_base
    out.pict_type = 0  # let the encoder choose (the source's keyframe flags do not apply)
    for packet in stream.encode(out):
        output.mux(packet)


def _encode_audio(output: Any, stream: Any, frame: Any, time: float, start: float, end: float) -> None:
    """Encode the part of the audio ``frame`` (its first sample at ``time`` seconds) within
    [start, end), timed from ``start``."""
    import av

    rate = frame.sample_rate
    first = max(0, round((start - time) * rate))
    last = min(frame.samples, round((end - time) * rate))
    if last <= first:
        return
    if first or last < frame.samples:
        samples = frame.to_ndarray()  # planar: [channels, n]; packed: [1, n * channels]
        step = 1 if frame.format.is_planar else len(frame.layout.channels)
        part = samples[:, first * step:last * step].copy()
        frame = av.AudioFrame.from_ndarray(part, format=frame.format.name, layout=frame.layout.name)
        frame.sample_rate = rate
    frame.pts = round((time - start) * rate) + first
    frame.time_base = Fraction(1, rate)
    for packet in stream.encode(frame):
        output.mux(packet)
