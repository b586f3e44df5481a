"""Where ``psftr detect`` puts each video's segments, fed one finished video at a time.

:class:`DetectOutputs` writes to every output asked for as soon as a video is done:

- the data stream (a text stream the caller opens: stdout, or a file it renames at the
  end), in one format of the registry (``psftr_core.io.formats``); csv and jsonl are
  flushed per video, json is one document;
- ``--output-dir``: ``DIR/<video>.<ext>`` per video and format, each atomic, recorded
  as finished in the folder's manifest (:class:`psftr_core.io.output_dir.OutputDir`), so
  a re-run with the same settings skips finished videos before loading their features;
- the segments of every video kept in memory for whole-run outputs (the HTML report,
  timelines);
- ``--clips DIR``: each segment cut into its own video (:mod:`psftr_core.io.clips`), as
  each video is passed on (a resumed video's clips already there are skipped).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any, Callable, List, Optional

from psftr_core.errors import InputError
from psftr_core.io.formats import format_names, open_writer, output_format, read_video_file
from psftr_core.io.formats.timeline import media_field
from psftr_core.io.output_dir import OutputDir
from psftr_core.io.report import ReportVideo


def output_formats(fmt: Optional[List[str]], output: Optional[str], output_dir: Optional[Path]) -> tuple[list[str], str]:
    """``(formats of --output-dir files, format of the data stream)`` from ``--format``.

    ``--format`` is repeatable and ``all`` means every format, both only with
    ``--output-dir``. Without ``--format``: csv when ``--output`` ends in ``.csv``, else
    json. The stream uses the one format given, else that default. The names are the
    format registry's (``psftr_core.io.formats``), in its order.
    """
    names = format_names()
    chosen: list[str] = []
    for value in fmt or []:
        name = value.strip().lower()
        if name == "all":
            chosen.extend(names)
        elif name in names:
            chosen.append(name)
        else:
            raise InputError(f"--format must be one of {', '.join(names)} or all, got {value!r}")
    chosen = [name for name in names if name in chosen]  # registry order, no repeats
    by_suffix = "csv" if output and output != "-" and Path(output).suffix.lower() == ".csv" else "json"
    if len(chosen) > 1 and output_dir is None:
        raise InputError("several formats (--format repeated, or all) need --output-dir DIR (one file per video "
                         "and format); --output and stdout take one format")
    stream = chosen[0] if len(chosen) == 1 else by_suffix
    return chosen or [by_suffix], stream


def write_detection_files(targets: list[tuple[str, str]], result: Any, details: str) -> None:
    """Write a finished video's (a ``VideoResult``) per-video files, each atomically;
    ``targets``: ``(format, path)`` pairs (:meth:`DetectOutputs.file_targets`)."""
    detections = result.detections()
    for name, path in targets:
        output_format(name).write_file(Path(path), result.video, detections, details=details, media=result.info)


class DetectOutputs:
    """Writes each video's segments to every requested output as soon as it is done.

    ``resume(video)`` is the run's skip rule: a video already finished in ``--output-dir``
    is skipped, and its segments are read back for the other outputs from its file of the
    first lossless format written (``json`` or ``jsonl``: ``OutputFormat.read_back``);
    when no lossless format is written, finished videos are processed again, from the
    feature cache, instead.
    """

    def __init__(self, run: Any, open_stream: Callable[[str], IO[str]], *, stream_to: Optional[str],
                 stream_format: str, output_dir: Optional[Path], dir_formats: list[str], collect: bool,
                 clips_dir: Optional[Path] = None, clip_padding: float = 0.0) -> None:
        """``run``: the detection run (its inputs, settings, details); ``open_stream(format)``
        opens the data stream when the first video is done (so a run where every video fails
        creates no file); ``stream_to``: None (no stream), ``"-"`` (stdout) or a file path;
        ``clips_dir``/``clip_padding``: cut each segment into a clip there."""
        self.run = run
        self._open_stream = open_stream
        self.stream_to = stream_to  # None: no stream; "-": stdout; else a file
        self.stream_format = stream_format
        streamed = output_format(stream_format)
        if stream_to is not None and streamed.single_video and len(run.inputs) > 1:
            raise InputError(
                f"--format {stream_format} holds one video's timeline but there are {len(run.inputs)} videos; "
                f"use --output-dir DIR for one .{streamed.extension} file per video"
            )
        self._writer: Any = None
        self.dir_formats = dir_formats
        self._dir_extensions = {name: output_format(name).extension for name in dir_formats}
        self.output_dir: Any = None
        self._read_back: Optional[str] = None  # the lossless format finished videos are read back from
        if output_dir is not None:
            self.output_dir = OutputDir(output_dir, list(self._dir_extensions.values()),
                                        {**run.settings, "formats": dir_formats})
            self.output_dir.assign(item.video for item in run.inputs)
            lossless = [name for name in dir_formats if output_format(name).lossless]
            self._read_back = lossless[0] if lossless else None
        self.collect = collect  # keep every video's segments (for the report and timelines)
        self.clips_dir = clips_dir
        self.clip_padding = clip_padding
        self.clips: list[Any] = []  # ClipRecords of this run
        self.clip_failures: list[str] = []  # "video: reason" of videos whose clips could not be cut
        # outputs that cover the whole run (clips: a resumed video's clips are checked, skipped if there)
        self.needs_every_video = collect or stream_to is not None or clips_dir is not None
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.durations: dict[str, Optional[float]] = {}
        self._files = {item.video: item.file for item in run.inputs}  # the video files (report, clips)
        self.rerun_note = bool(self.output_dir is not None and self.needs_every_video and self._read_back is None)

    # -- the skip rule

    def will_skip(self, video: str) -> bool:
        """Forecast of :meth:`resume` without reading any file (decoding reads ahead of the
        videos' turns): finished, and its segments can be read back when other outputs need
        them. A file damaged since is still caught by :meth:`resume` at the video's turn."""
        if self.output_dir is None or not self.output_dir.is_complete(video):
            return False
        return not self.needs_every_video or self._read_back is not None

    def resume(self, video: str) -> bool:
        """True (skip) when ``video`` is finished in the output folder and its segments can be
        had without running it; they are then passed on to the other outputs."""
        if not self.will_skip(video):
            return False
        if self.needs_every_video:
            path = self.output_dir.path_for(video, self._dir_extensions[self._read_back])
            try:
                detections = read_video_file(path, self._read_back).get(video, [])
            except InputError:
                return False  # damaged since: process the video again
            self._emit(video, detections, self.output_dir.info(video))
        return True

    # -- one video

    def file_targets(self, video: str) -> list[tuple[str, str]]:
        """``(format, path)`` of each of ``video``'s files in the output folder (none without one)."""
        if self.output_dir is None:
            return []
        return [(name, str(self.output_dir.path_for(video, extension)))
                for name, extension in self._dir_extensions.items()]

    def add(self, result: Any, files_written: bool = False) -> None:
        """A finished video: its files in the output folder (unless an engine's worker wrote
        them: ``files_written``), then the stream."""
        detections = result.detections()
        if self.output_dir is not None:
            if not files_written:
                write_detection_files(self.file_targets(result.video), result, self.run.details)
            # what the editor formats of the stream need again when a re-run passes the video on
            info = {key: value for key, value in (("duration", result.info.duration), ("fps", result.info.fps),
                                                  ("file", result.info.file)) if value is not None} or None
            self.output_dir.mark_complete(result.video, info)
        self._emit(result.video, detections, result.info)

    def _emit(self, video: str, detections: list, media: Any) -> None:
        """Pass a video on to the stream and the whole-run outputs; ``media``: its
        ``VideoInfo``, or the manifest's record of it (a mapping) for a resumed video."""
        if self.stream_to is not None:
            output_format(self.stream_format).write_video(self._stream(), video, detections, media)
        if self.collect:
            self.results[video] = detections
            self.durations[video] = media_field(media, "duration")
        if self.clips_dir is not None:
            self._cut_clips(video, detections, self._files.get(video) or media_field(media, "file"))

    def _cut_clips(self, video: str, detections: list, file: Optional[str]) -> None:
        """This video's clips; a video that cannot be cut is noted (the run goes on)."""
        from psftr_core.errors import PsftrError
        from psftr_core.io.clips import write_clips

        spans = [{"label": d["label"], "start": d["segment"][0], "end": d["segment"][1]} for d in detections]
        try:
            self.clips.extend(write_clips(self.clips_dir, video, file, spans, padding=self.clip_padding))
        except PsftrError as err:
            self.clip_failures.append(f"{video}: {err}")

    def _stream(self) -> Any:
        """The stream writer, opened with the first video (a run where all fail writes nothing)."""
        if self._writer is None:
            self._writer = open_writer(self.stream_format, self._open_stream(self.stream_format),
                                       flush=self.stream_to == "-", details=self.run.details)
        return self._writer

    def close(self) -> None:
        """Finish the stream (the JSON document's end); the file is renamed when the stack closes."""
        if self._writer is not None:
            self._writer.close()

    # -- whole-run outputs

    def report_videos(self) -> list[ReportVideo]:
        return [ReportVideo(video, dets, self.durations.get(video), self._files.get(video))
                for video, dets in self.results.items()]


