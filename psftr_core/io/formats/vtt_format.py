"""``--format vtt``: WebVTT subtitles of one video (rules in ``subtitles``).

The file starts with ``WEBVTT``, a blank line and a ``NOTE`` naming the video. Cue text
escapes ``&``, ``<`` and ``>`` as character references (so ``-->`` cannot appear, and
no markup tag is read). Times are ``HH:MM:SS.mmm``.
"""

from __future__ import annotations

from psftr_core.io.formats.base import OutputFormat
from psftr_core.io.formats.subtitles import SubtitleWriter, one_line


def vtt_escape(text: str) -> str:
    """WebVTT cue text escaping: ``&``, ``<``, ``>`` as character references."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt_text(label: str, score: float) -> str:
    """WebVTT cue text: one line, escaped."""
    return f"{vtt_escape(one_line(label))} ({score:.3f})"


class VttWriter(SubtitleWriter):
    """Header, a NOTE naming the video, then timing + text cues."""

    fmt = "vtt"
    decimal_mark = "."
    header = "WEBVTT\n\n"

    def _preamble(self, video: str) -> str:
        # NOTE text may not contain "-->" or a blank line; one_line + escape see to both.
        return f"NOTE psftr detections of video {vtt_escape(one_line(video))}\n\n"

    def _cue(self, number: int, timing: str, label: str, score: float) -> str:
        return f"{timing}\n{vtt_text(label, score)}\n\n"


VTT_FORMAT = OutputFormat(name="vtt", extension="vtt", summary="WebVTT subtitles", open=VttWriter, single_video=True)
