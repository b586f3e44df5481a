"""JSON input files: parsed as they are, or one InputError line naming the file."""

from __future__ import annotations

import gzip

import pytest

from psftr_core.errors import InputError
from psftr_core.io.json_file import read_json_file


def test_plain_and_gzipped_files_read_the_same(tmp_path):
    plain = tmp_path / "info.json"
    plain.write_text('{"v": {"snippet_length": 3}}', encoding="utf-8")
    packed = tmp_path / "info.json.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_json_file(plain, "feature info") == {"v": {"snippet_length": 3}}
    assert read_json_file(packed, "feature info") == {"v": {"snippet_length": 3}}


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "annotations file {path} is empty, expected JSON"),
        (b" \n", "annotations file {path} is empty, expected JSON"),
        (b"{not json", "cannot read annotations file {path}: it is not valid JSON (line 1, column 2: "),
        (b"\xff\xfe{}", "annotations file {path} is not UTF-8 text, expected JSON"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "ann.json"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_json_file(path, "annotations")
    assert str(info.value).startswith(message.format(path=path))
    assert "\n" not in str(info.value)


def test_missing_file_folder_and_truncated_gzip(tmp_path):
    with pytest.raises(InputError, match="^annotations file not found: .*nope.json$"):
        read_json_file(tmp_path / "nope.json", "annotations")
    with pytest.raises(InputError, match="is a directory, expected a JSON file"):
        read_json_file(tmp_path, "annotations")
    truncated = tmp_path / "info.json.gz"
    truncated.write_bytes(gzip.compress(b'{"v": 1}')[:12])
    with pytest.raises(InputError, match=f"^cannot read feature info file {truncated}: "):
        read_json_file(truncated, "feature info")
