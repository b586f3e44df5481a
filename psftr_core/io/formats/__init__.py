"""The registry of ``psftr detect`` output formats: name -> :class:`OutputFormat`.

Each format is one module, ``<name>_format.py``, defining its writer and its descriptor
(``base.OutputFormat``). Adding a format: write that module, then list it here (its
import and its line in ``OUTPUT_FORMATS``). ``--format`` (names, help, validation,
``all``), ``--output-dir`` file names and resuming all read it from here. Lookups read
``OUTPUT_FORMATS`` when called, so a test may add a descriptor with
``monkeypatch.setitem``.

The modules are named ``<name>_format`` rather than ``json``, ``csv``, ``srt``: those
are also top-level modules (the standard library's, the ``srt`` parser's), and a
submodule ``json`` would rebind the name ``json`` inside this package.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO, Any

from psftr_core.errors import InputError
from psftr_core.io.formats.base import OutputFormat, SegmentWriter
from psftr_core.io.formats.chapters_format import CHAPTERS_FORMAT
from psftr_core.io.formats.csv_format import CSV_FORMAT
from psftr_core.io.formats.edl_format import EDL_FORMAT
from psftr_core.io.formats.json_format import JSON_FORMAT
from psftr_core.io.formats.jsonl_format import JSONL_FORMAT
from psftr_core.io.formats.otio_format import MISSING as OTIO_MISSING
from psftr_core.io.formats.otio_format import OTIO_FORMAT, otio_available
from psftr_core.io.formats.srt_format import SRT_FORMAT
from psftr_core.io.formats.vtt_format import VTT_FORMAT

# In the order messages, help and ``--format all`` list them.
OUTPUT_FORMATS: dict[str, OutputFormat] = {fmt.name: fmt for fmt in (
    JSON_FORMAT,
    CSV_FORMAT,
    JSONL_FORMAT,
    SRT_FORMAT,
    VTT_FORMAT,
    EDL_FORMAT,
    *([OTIO_FORMAT] if otio_available() else []),  # an optional extra: --format all is the installed ones
    CHAPTERS_FORMAT,
)}
# Formats of this version that this install lacks: name -> the one-line reason (the extra to install).
MISSING_FORMATS: dict[str, str] = {} if otio_available() else {"otio": OTIO_MISSING}


def format_names() -> tuple[str, ...]:
    """The ``--format`` names, in registry order."""
    return tuple(OUTPUT_FORMATS)


def output_format(name: str) -> OutputFormat:
    """The format named ``name``; InputError naming the choices for an unknown one."""
    fmt = OUTPUT_FORMATS.get(name) if isinstance(name, str) else None
    if fmt is None:
        raise InputError(f"unknown output format {name!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    return fmt


def open_writer(
    name: str, stream: IO[str], *, flush: bool = True, details: str = "", version: str | None = None
) -> SegmentWriter:
    """A writer of format ``name`` on ``stream`` (see ``OutputFormat.open``).

    ``flush=True`` flushes the stream after each video, so a reader of a pipe sees each
    video's lines as soon as it is done. CSV on a file needs ``newline=""``.
    """
    return output_format(name).open(stream, flush=flush, details=details, version=version)


def write_video_file(
    path: str | os.PathLike, name: str, video: str, detections: Sequence[Any], *, details: str = "",
    version: str | None = None,
) -> None:
    """Write one video's detections in format ``name`` to ``path``, atomically.

    A malformed detection raises InputError and leaves ``path`` untouched.
    """
    output_format(name).write_file(path, video, detections, details=details, version=version)


def read_video_file(path: str | os.PathLike, name: str) -> dict[str, list[dict[str, Any]]]:
    """A file of a lossless format read back: ``{video: [detection dicts]}``, exactly as written.

    Raises InputError (naming the file) on a missing or malformed file, or for a format
    that cannot be read back.
    """
    fmt = output_format(name)
    if fmt.read_back is None:
        lossless = ", ".join(f.name for f in OUTPUT_FORMATS.values() if f.lossless)
        raise InputError(f"cannot read segments back from --format {name} (only {lossless})")
    return fmt.read_back(path)
