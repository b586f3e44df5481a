"""Output paths checked before the work (psftr_core.io.paths): known refusals, nothing created."""

from __future__ import annotations

import errno
import os

import pytest

from psftr_core.errors import InputError, OutputError
from psftr_core.io.paths import os_error_reason, prepare_output_dir, prepare_output_file


def refusal(call, *args) -> OutputError:
    with pytest.raises(OutputError) as caught:
        call(*args)
    err = caught.value
    assert isinstance(err, InputError) and isinstance(err, OSError) and err.exit_code == 2
    assert "\n" not in str(err)
    return err


def test_a_file_where_a_folder_is_meant(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep")
    err = refusal(prepare_output_dir, target, "--timeline")
    assert str(err) == f"cannot write {target} (--timeline): it is a file, not a folder"
    assert err.errno == errno.ENOTDIR and err.filename == str(target)
    assert target.read_text() == "keep"


def test_a_folder_where_a_file_is_meant(tmp_path):
    target = tmp_path / "results"
    (target / "inner").mkdir(parents=True)
    err = refusal(prepare_output_file, target, "-o")
    assert str(err) == f"cannot write {target} (-o): it is a folder, not a file"
    assert err.errno == errno.EISDIR


def test_a_parent_that_is_a_file_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    err = refusal(prepare_output_file, blocker / "sub" / "out.json", "-o")
    assert str(err) == f"cannot write {blocker / 'sub' / 'out.json'} (-o): {blocker} is a file, not a folder"
    err = refusal(prepare_output_dir, blocker / "feats", "extract -o")
    assert f"{blocker} is a file, not a folder" in str(err)


def test_missing_folders_are_accepted_and_nothing_is_created(tmp_path):
    assert prepare_output_file(tmp_path / "a" / "b" / "out.json", "-o") == tmp_path / "a" / "b" / "out.json"
    assert prepare_output_dir(tmp_path / "c" / "d", "--output") == tmp_path / "c" / "d"
    existing = tmp_path / "old.json"
    existing.write_text("{}")
    assert prepare_output_file(existing, "-o") == existing
    assert prepare_output_dir(tmp_path, "--output") == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]  # no folders, no probe left


def test_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert prepare_output_file("~/out.json", "-o") == tmp_path / "out.json"


def test_an_immutable_folder_is_refused_also_for_root(tmp_path, make_immutable):
    folder = tmp_path / "ro"
    folder.mkdir()
    make_immutable(folder)
    err = refusal(prepare_output_dir, folder, "--timeline")
    assert str(err).startswith(f"cannot write {folder} (--timeline): cannot create files: ")
    assert err.errno in (errno.EPERM, errno.EACCES)
    err = refusal(prepare_output_file, folder / "out.json", "-o")
    assert f"cannot create files in {folder}: " in str(err)
    err = refusal(prepare_output_dir, folder / "later" / "run", "--output")  # to be made inside it
    assert f"cannot create files in {folder}: " in str(err)


def test_an_immutable_file_is_refused(tmp_path, make_immutable):
    target = tmp_path / "out.json"
    target.write_text("{}")
    make_immutable(target)
    err = refusal(prepare_output_file, target, "-o")
    assert str(err) == f"cannot write {target} (-o): the file is read-only"


@pytest.mark.parametrize(
    "code, words",
    [
        (errno.EROFS, "read-only file system"),
        (errno.ENOSPC, "no space left on the device"),
        (errno.EACCES, "permission denied"),
        (errno.EPERM, "operation not permitted (read-only or immutable)"),
        (errno.EISDIR, "it is a folder, not a file"),
    ],
)
def test_reasons_in_words(code, words):
    assert os_error_reason(OSError(code, os.strerror(code))) == words


def test_an_unlisted_reason_is_the_system_text():
    assert os_error_reason(OSError(errno.EBUSY, "Device or resource busy")) == "device or resource busy"


def test_an_atomic_write_into_an_immutable_folder_keeps_the_old_file(tmp_path, make_immutable):
    """The writers' last line of defence (a folder made read-only during the run)."""
    from psftr_core.io.atomic import write_text

    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "out.txt").write_text("complete")
    make_immutable(folder)
    with pytest.raises(OutputError) as caught:
        write_text(folder / "out.txt", "new")
    assert str(caught.value) == f"cannot write {folder / 'out.txt'}: operation not permitted (read-only or immutable)"
    assert (folder / "out.txt").read_text() == "complete" and [p.name for p in folder.iterdir()] == ["out.txt"]
