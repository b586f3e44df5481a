"""What a detection run gives: segments, failures, per-video results and the report.

:class:`~psftr_core.infer.detect.DetectionRun` yields a :class:`VideoResult` (or a
:class:`Failure`) per video; :func:`~psftr_core.infer.detect.detect` returns a
:class:`DetectionReport`. Plain records, no model or file access.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from psftr_core.errors import PartialFailure, PsftrError


@dataclass(frozen=True)
class Segment:
    """One detected action instance (seconds)."""

    video: str
    label: str
    start: float
    end: float
    score: float

    def to_result(self) -> dict[str, Any]:
        """The ActivityNet detection dict: ``{"segment": [start, end], "label", "score"}``."""
        return {"segment": [self.start, self.end], "label": self.label, "score": self.score}


@dataclass(frozen=True)
class Failure:
    """An input that produced no result: ``input`` is the path or video id."""

    input: str
    reason: str


@dataclass
class VideoInfo:
    """A processed video: its id, where it came from, its duration (seconds, or None).

    ``file`` is the local video file (None for a feature dataset's video); ``fps`` its
    frame rate (None when unknown). The editor formats read ``fps``, ``duration`` and
    ``file`` (``psftr_core.io.formats.timeline``).
    """

    video: str
    source: str
    duration: float | None
    num_features: int
    file: str | None = None
    fps: float | None = None


@dataclass(frozen=True)
class PlannedVideo:
    """A video a run will process: its id, the input as named (a path or a dataset's
    video id) and the local video file (None for a feature dataset)."""

    video: str
    source: str
    file: str | None


@dataclass
class VideoResult:
    """One processed video, as :meth:`DetectionRun.results` yields it.

    ``segments`` are the kept ones, sorted by start, then decreasing score, then label;
    ``status`` says where the features came from (``cached``, ``extracted``, ``loaded``).
    ``below_threshold``: when no segment passed the score thresholds, the scores of those
    the filter stage would keep at threshold 0, best first (for the "lower the
    threshold" hint); else empty.
    """

    info: VideoInfo
    segments: list[Segment]
    status: str
    below_threshold: list[float] = field(default_factory=list)

    @property
    def video(self) -> str:
        return self.info.video

    def detections(self) -> list[dict[str, Any]]:
        """The segments as ActivityNet detection dicts."""
        return [seg.to_result() for seg in self.segments]


@dataclass
class DetectionReport:
    """What :func:`detect` returns.

    ``segments`` are sorted by video, then start time; ``videos`` lists every processed
    video (also those without detections); ``details`` names the model that produced the
    segments (it goes into the results JSON's ``external_data.details``).
    """

    segments: list[Segment]
    failures: list[Failure]
    details: str
    stats: dict[str, Any]
    actions: list[str]
    videos: dict[str, VideoInfo] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def results(self) -> dict[str, list[dict[str, Any]]]:
        """``{video_id: [{"segment", "label", "score"}]}`` with every processed video."""
        out: dict[str, list[dict[str, Any]]] = {video: [] for video in sorted(self.videos)}
        for seg in self.segments:
            out.setdefault(seg.video, []).append(seg.to_result())
        return out

    def durations(self) -> dict[str, float | None]:
        return {video: info.duration for video, info in self.videos.items()}

    def segments_per_action(self) -> dict[str, int]:
        counts = Counter(seg.label for seg in self.segments)
        return {name: counts.get(name, 0) for name in self.actions}

    def raise_for_failures(self) -> None:
        """``PsftrError`` when every input failed (nothing to write), ``PartialFailure``
        (exit 3) when some did; nothing when none did. Skipped videos count as done."""
        if not self.failures:
            return
        first = f"{self.failures[0].input}: {self.failures[0].reason}"
        done = len(self.videos) + int(self.stats.get("skipped", 0))
        if not done:
            raise PsftrError(f"all {len(self.failures)} inputs failed (first: {first}); nothing written")
        raise PartialFailure(
            f"{len(self.failures)} of {len(self.failures) + done} inputs failed "
            f"(first: {first}); the others were written"
        )
