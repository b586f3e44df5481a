"""A new ``psftr detect`` output format is one module plus one registry line.

The toy format below is what such a module holds (a writer and its ``OutputFormat``);
adding it to the registry dict (as the one line in ``psftr_core/io/formats/__init__.py``
would) is all ``--format``, ``--format all``, the data stream and ``--output-dir`` (file
extension, manifest, resume) need.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from psftr_core.io.formats import OUTPUT_FORMATS as _REGISTRY

from psftr_core.io import formats
from psftr_core.io.formats.base import OutputFormat, StreamWriter
from psftr_core.io.output_dir import DETECT_MANIFEST_NAME
from cli_runner import run_cli

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo"
RUN = ["--features", DEMO, "synth_test_0000", "synth_test_0001", "--actions", "diving,long jump", "-q", "--keep-nested"]

# The demo's detections of these two videos, in the toy format.
TOY_LINES = {
    "synth_test_0000": "synth_test_0000\tdiving\t1.600\t13.600\t0.826\n",
    "synth_test_0001": (
        "synth_test_0001\tlong jump\t17.067\t20.267\t0.342\n"
        "synth_test_0001\tlong jump\t22.133\t32.000\t0.558\n"
        "synth_test_0001\tdiving\t37.867\t45.600\t0.535\n"
        "synth_test_0001\tdiving\t38.400\t40.267\t0.305\n"
    ),
}


# ---------------------------------------------------------------- what the new module would hold


class ToyWriter(StreamWriter):
    """One tab-separated line per segment: video, label, start, end, score."""

    fmt = "toy"

    def _write(self, video: str, items: list[dict[str, Any]]) -> None:
        for det in items:
            start, end = det["segment"]
            self._stream.write(f"{video}\t{det['label']}\t{start:.3f}\t{end:.3f}\t{det['score']:.3f}\n")


TOY_FORMAT = OutputFormat(name="toy", extension="tsv", summary="tab-separated", open=ToyWriter)


@pytest.fixture()
def toy_registered(monkeypatch):
    """The one registry line: ``TOY_FORMAT,`` in ``OUTPUT_FORMATS``."""
    importlib.import_module("psftr_cli.main")  # the --format help is built at import: from the built-ins here
    monkeypatch.setitem(formats.OUTPUT_FORMATS, "toy", TOY_FORMAT)


# ---------------------------------------------------------------- the CLI picks it up


def test_toy_format_on_stdout_and_to_a_file(toy_registered, tmp_path, capsys, monkeypatch):
    code, stdout, stderr = run_cli([*RUN, "--format", "toy"], capsys, monkeypatch)
    assert code == 0, stderr
    assert stdout == TOY_LINES["synth_test_0000"] + TOY_LINES["synth_test_0001"]
    code, _, stderr = run_cli([*RUN, "--format", "toy", "--output", tmp_path / "all.tsv"], capsys, monkeypatch)
    assert code == 0, stderr
    assert (tmp_path / "all.tsv").read_text(encoding="utf-8") == stdout


def test_toy_format_in_the_output_dir_with_its_extension(toy_registered, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    args = [*RUN, "--output-dir", out, "--format", "toy", "--format", "jsonl"]
    code, stdout, stderr = run_cli(args, capsys, monkeypatch)
    assert code == 0 and stdout == "", stderr
    assert sorted(p.name for p in out.iterdir()) == [DETECT_MANIFEST_NAME, "synth_test_0000.jsonl",
                                                     "synth_test_0000.tsv", "synth_test_0001.jsonl",
                                                     "synth_test_0001.tsv"]
    for video, text in TOY_LINES.items():
        assert (out / f"{video}.tsv").read_bytes() == text.encode("utf-8")
    manifest = json.loads((out / DETECT_MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["finished"]["synth_test_0001"] == ["synth_test_0001.jsonl", "synth_test_0001.tsv"]
    # A re-run skips both finished videos: no file is written again.
    files = [p for p in out.iterdir() if p.name != DETECT_MANIFEST_NAME]
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}
    code, _, stderr = run_cli(args, capsys, monkeypatch)
    assert code == 0, stderr
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files} == before


def test_all_includes_the_registered_format(toy_registered, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    code, _, stderr = run_cli([*RUN, "--output-dir", out, "--format", "all"], capsys, monkeypatch)
    assert code == 0, stderr
    names = sorted(p.name for p in out.iterdir() if p.name.startswith("synth_test_0000"))
    extensions = [f.extension for f in _REGISTRY.values()]  # toy's included (registered by the fixture)
    assert "tsv" in extensions
    assert names == sorted(f"synth_test_0000.{ext}" for ext in extensions)
    assert json.loads((out / DETECT_MANIFEST_NAME).read_text(encoding="utf-8"))["finished"]["synth_test_0000"] == [
        f"synth_test_0000.{ext}" for ext in extensions]


def test_unregistered_format_is_refused(capsys, monkeypatch):
    code, stdout, stderr = run_cli([*RUN, "--format", "toy"], capsys, monkeypatch)
    assert code == 2 and stdout == ""
    assert f"--format must be one of {', '.join(_REGISTRY)} or all, got 'toy'" in stderr


def test_help_lists_the_registry(capsys, monkeypatch):
    code, stdout, _ = run_cli(["-h"], capsys, monkeypatch)
    assert code == 0
    help_text = " ".join(stdout.split())
    assert ("json (ActivityNet results), csv (one row per segment), jsonl (one segment per line), srt (SubRip "
            "subtitles), vtt (WebVTT subtitles)") in help_text
    for fmt in _REGISTRY.values():
        assert f"{fmt.name} ({fmt.summary})" in help_text
