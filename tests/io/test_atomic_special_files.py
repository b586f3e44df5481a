"""Writes to what is not a regular file: devices and FIFOs directly, symlinks through."""

from __future__ import annotations

import os
import stat
import threading

from psftr_core.io.atomic import is_special_file, write_json, write_text


def test_dev_null_stays_a_device():
    write_text("/dev/null", "segments\n")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert is_special_file("/dev/null")


def test_a_fifo_receives_the_text_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text(encoding="utf-8")))
    reader.start()
    write_text(fifo, "a,b\n1,2\n")
    reader.join(timeout=10)
    assert received == ["a,b\n1,2\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_symlink_is_written_through_and_kept(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "target.json").write_text("old", encoding="utf-8")
    link = tmp_path / "link.json"
    link.symlink_to(real / "target.json")
    write_json(link, {"new": 1})
    assert link.is_symlink() and os.readlink(link) == str(real / "target.json")
    assert (real / "target.json").read_text(encoding="utf-8") == '{\n  "new": 1\n}\n'
    # A dangling link: its target is created.
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(real / "missing.txt")
    write_text(dangling, "x")
    assert dangling.is_symlink() and (real / "missing.txt").read_text(encoding="utf-8") == "x"
