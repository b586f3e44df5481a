"""No output may be an input: ``refuse_outputs_over_inputs`` compares files by inode."""

from __future__ import annotations

import os

import pytest

from psftr_core.errors import InputError
from psftr_core.io.paths import files_in, refuse_outputs_over_inputs


@pytest.fixture()
def video(tmp_path):
    path = tmp_path / "a.mp4"
    path.write_bytes(b"video bytes")
    return path


def test_the_input_itself_is_refused_naming_the_flag_and_path(video):
    with pytest.raises(InputError, match=r"--report .*a\.mp4 is an input of this run"):
        refuse_outputs_over_inputs({"--report": video}, [video])


def test_a_symlink_to_an_input_is_refused_naming_both(tmp_path, video):
    link = tmp_path / "out.json"
    os.symlink(video, link)
    with pytest.raises(InputError) as caught:
        refuse_outputs_over_inputs({"-o": link}, [video])
    assert f"-o {link} is the input {video}" in str(caught.value)


def test_a_hard_link_and_a_relative_spelling_are_the_same_file(tmp_path, video, monkeypatch):
    hard = tmp_path / "page.html"
    os.link(video, hard)
    with pytest.raises(InputError, match="page.html is the input"):
        refuse_outputs_over_inputs({"--report": hard}, [video])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="is an input"):
        refuse_outputs_over_inputs({"--report": "a.mp4"}, [video])


def test_other_files_missing_outputs_folders_and_devices_pass(tmp_path, video):
    other = tmp_path / "b.mp4"
    other.write_bytes(b"video bytes")  # same content, another file
    refuse_outputs_over_inputs(
        {"-o": other, "--new": tmp_path / "new.json", "--dir": tmp_path, "--dev": os.devnull, "--none": None},
        [video, None, tmp_path / "missing.mp4"],
    )
    assert video.read_bytes() == b"video bytes"


def test_a_list_of_outputs_is_checked_in_order_and_the_first_clash_named(tmp_path, video):
    folder = tmp_path / "od"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    os.symlink(video, folder / "a.json")
    assert files_in(folder, ["json"]) == [folder / "a.json"]
    with pytest.raises(InputError, match=r"--output-dir .*od/a\.json is the input"):
        refuse_outputs_over_inputs({"--output-dir": [folder, *files_in(folder, ["json"])]}, [video])
