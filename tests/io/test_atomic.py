"""Atomic writes: all or nothing, ordinary file permissions, failures named in one line."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from psftr_core.errors import OutputError
from psftr_core.io.atomic import atomic_open, write_json, write_text


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_gets_the_umask_mode_and_no_temp_file_is_left(tmp_path):
    old = os.umask(0o022)
    os.umask(old)
    target = tmp_path / "sub" / "out.json"
    write_json(target, {"a": 1})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert _mode(target) == 0o666 & ~old
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_replacing_keeps_the_existing_mode(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    os.chmod(target, 0o640)
    write_text(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o640


def test_an_error_while_writing_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("complete")
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(target) as handle:
            handle.write("half")
            raise KeyboardInterrupt
    assert target.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def _no_temp_files(folder) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_a_file_where_the_folder_should_be_is_one_named_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    with pytest.raises(OutputError) as caught:
        write_json(blocker / "sub" / "out.json", {"a": 1})
    assert str(caught.value) == f"cannot write {blocker / 'sub' / 'out.json'}: {blocker} is a file, not a folder"
    assert caught.value.exit_code == 2 and blocker.read_text() == "keep"


def test_replacing_a_folder_is_refused_and_the_temp_file_removed(tmp_path):
    target = tmp_path / "results"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    with pytest.raises(OutputError, match="it is a folder, not a file"):
        write_text(target, "new")
    assert (target / "keep.txt").read_text() == "keep" and _no_temp_files(tmp_path)


def test_a_failed_write_keeps_the_old_file_and_is_still_an_oserror(tmp_path):
    """A full disk mid-write: the old file stays, no temp file, one line naming the path;
    code that degrades on OSError (an optional cache) keeps working."""
    target = tmp_path / "out.txt"
    target.write_text("complete")
    with pytest.raises(OSError) as caught:
        with atomic_open(target) as handle:
            handle.write("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert isinstance(caught.value, OutputError)
    assert str(caught.value) == f"cannot write {target}: no space left on the device"
    assert caught.value.errno == errno.ENOSPC and caught.value.strerror == "no space left on the device"
    assert target.read_text() == "complete" and _no_temp_files(tmp_path)

