"""``--format json``: the ActivityNet results document, byte for byte what
``psftr_core.io.export.write_results_json`` writes, streamed one video at a time.

Lossless: read back with ``psftr_core.io.export.read_results_json``.
"""

from __future__ import annotations

import json
from typing import IO, Any

from psftr_core import __version__
from psftr_core.io.export import read_results_json
from psftr_core.io.formats.base import OutputFormat, StreamWriter


def _indent(text: str, spaces: int) -> str:
    """Indent every line of ``text`` but the first (it follows a key on its line)."""
    return text.replace("\n", "\n" + " " * spaces)


class JsonDocumentWriter(StreamWriter):
    """The ActivityNet results document, streamed: the same text as ``json.dump(indent=2)``.

    ``details`` goes into ``external_data.details`` at :meth:`close`, so it may be set
    (``writer.details = ...``) while videos are being written. ``version`` defaults to
    ``psftr <version>``.
    """

    fmt = "json"

    def __init__(self, stream: IO[str], flush: bool = True, details: str = "", version: str | None = None) -> None:
        super().__init__(stream, flush)
        self.details = details
        version = version if version is not None else f"psftr {__version__}"
        stream.write('{\n  "version": ' + json.dumps(version, ensure_ascii=False) + ',\n  "results": {')

    def _write(self, video: str, items: list[dict[str, Any]]) -> None:
        key = json.dumps(video, ensure_ascii=False)
        body = _indent(json.dumps(items, indent=2, ensure_ascii=False), 4)
        self._stream.write(("," if self.videos else "") + f"\n    {key}: {body}")

    def _finish(self) -> None:
        external = _indent(json.dumps({"used": False, "details": self.details}, indent=2, ensure_ascii=False), 2)
        self._stream.write(("\n  }" if self.videos else "}") + f',\n  "external_data": {external}\n}}\n')


JSON_FORMAT = OutputFormat(
    name="json",
    extension="json",
    summary="ActivityNet results",
    open=JsonDocumentWriter,
    read_back=read_results_json,
)
