"""``--format srt``: SubRip subtitles of one video (rules in ``subtitles``).

SRT has no escape syntax: ``<`` / ``>`` become ``‹`` / ``›``, so players read no
``<i>``-style tag and ``-->`` cannot appear; the label in an SRT cue is for display, the
JSON outputs keep it exactly. Times are ``HH:MM:SS,mmm``.
"""

from __future__ import annotations

from psftr_core.io.formats.base import OutputFormat
from psftr_core.io.formats.subtitles import SubtitleWriter, one_line


def srt_text(label: str, score: float) -> str:
    """SRT cue text: one line, ``<`` ``>`` as ``‹`` ``›`` (SRT cannot escape; no ``-->``)."""
    text = one_line(label).replace("<", "\u2039").replace(">", "\u203a")
    return f"{text} ({score:.3f})"


class SrtWriter(SubtitleWriter):
    """Numbered cues from 1: number, timing, text, blank line."""

    fmt = "srt"
    decimal_mark = ","

    def _cue(self, number: int, timing: str, label: str, score: float) -> str:
        return f"{number}\n{timing}\n{srt_text(label, score)}\n\n"


SRT_FORMAT = OutputFormat(name="srt", extension="srt", summary="SubRip subtitles", open=SrtWriter, single_video=True)
