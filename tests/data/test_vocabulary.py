"""Action vocabulary and per-action threshold parsing (psftr_core.data.vocabulary)."""

from __future__ import annotations

import os

import pytest

from psftr_core.errors import InputError
from psftr_core.data.vocabulary import (
    DISPLAY_CHARS,
    clean_name,
    display_name,
    normalise_vocabulary,
    parse_thresholds,
    parse_vocabulary,
    read_actions_file,
    resolve_thresholds,
)


def test_actions_argument_is_split_trimmed_and_deduplicated_keeping_first_spelling():
    vocab = parse_vocabulary(" Diving , pole   vault,diving,POLE VAULT,, ,Cliff Diving ")
    assert vocab == ["Diving", "pole vault", "Cliff Diving"]


def test_repeated_actions_option_and_file_are_merged_in_order(tmp_path):
    f = tmp_path / "actions.txt"
    f.write_text("# sports\nhigh jump\n\n  Diving  \nshot put, indoor\n", encoding="utf-8")
    vocab = parse_vocabulary(["diving", "long jump"], actions_file=f)
    # "Diving" from the file is a duplicate of "diving" (case-insensitive): first spelling kept.
    assert vocab == ["diving", "long jump", "high jump", "shot put, indoor"]


def test_actions_file_keeps_commas_and_hash_inside_names(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("\ufeffcook, then eat\n   # indented comment\nlevel #2 jump\n", encoding="utf-8")
    assert read_actions_file(f) == ["cook, then eat", "level #2 jump"]


def test_unicode_names_are_kept_and_matched_case_insensitively():
    # "É" given as E + combining accent (NFD) and as one code point (NFC) are the same name.
    vocab = normalise_vocabulary(["Plongée", "PLONGE\u0301E", "跳水", "Straße", "STRASSE", "ørsted"])
    assert vocab == ["Plongée", "跳水", "Straße", "ørsted"]  # ß casefolds to ss
    assert vocab[0] == "Plong\u00e9e"  # stored NFC


@pytest.mark.parametrize("actions", ["", " , ,", [], None])
def test_empty_vocabulary_is_an_input_error(actions):
    with pytest.raises(InputError, match="no actions given") as info:
        parse_vocabulary(actions)
    assert info.value.exit_code == 2


def test_actions_file_with_only_comments_is_named(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("# nothing here\n\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        parse_vocabulary(None, actions_file=f)
    assert str(info.value) == f"actions file {f} lists no actions (only comments or blank lines)"


def test_a_folder_or_fifo_as_actions_file_is_named_for_what_it_is(tmp_path):
    with pytest.raises(InputError) as info:
        read_actions_file(tmp_path)
    assert str(info.value) == f"actions file {tmp_path} is a folder, not a file"
    fifo = tmp_path / "actions.fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as info:
        read_actions_file(fifo)  # not opened: without a writer that would block
    assert str(info.value) == f"actions file {fifo} is not a regular file"
    with pytest.raises(InputError) as info:
        read_actions_file(tmp_path / "nope.txt")
    assert str(info.value) == f"actions file not found: {tmp_path / 'nope.txt'}"


def test_long_names_are_kept_whole_but_shown_short():
    long_name = "x" * 10000
    assert parse_vocabulary(f"{long_name},walking") == [long_name, "walking"]
    assert display_name("walking") == "walking"
    assert display_name(long_name) == "x" * (DISPLAY_CHARS - 1) + "…"
    with pytest.raises(InputError) as info:
        resolve_thresholds(["walking"], 0.3, {long_name: 0.5})
    assert len(str(info.value)) < 3 * DISPLAY_CHARS + 100
    with pytest.raises(InputError) as info:
        clean_name(long_name + "\x1b")
    assert len(str(info.value)) < DISPLAY_CHARS + 100


def test_missing_or_binary_actions_file_is_named(tmp_path):
    with pytest.raises(InputError, match="nope.txt"):
        parse_vocabulary(None, actions_file=tmp_path / "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError, match="not UTF-8"):
        parse_vocabulary(None, actions_file=bad)


def test_control_characters_are_rejected_but_whitespace_collapses():
    assert clean_name("a\tb\n c") == "a b c"
    with pytest.raises(InputError, match="control character"):
        clean_name("evil\x1b[31m")


def test_one_and_a_thousand_actions():
    assert parse_vocabulary("diving") == ["diving"]
    names = [f"action {i}" for i in range(1000)]
    assert parse_vocabulary(",".join(names + ["ACTION 7"])) == names


def test_thresholds_global_and_per_action():
    global_thr, per_action = parse_thresholds(["0.25", "pole vault=0.5", "a=b=0.75"])
    assert global_thr == 0.25
    assert per_action == {"pole vault": 0.5, "a=b": 0.75}  # the last '=' separates
    resolved = resolve_thresholds(["Pole Vault", "a=b", "diving"], 0.25, per_action)
    assert resolved == {"Pole Vault": 0.5, "a=b": 0.75, "diving": 0.25}


@pytest.mark.parametrize(
    "values, message",
    [
        (["0.3", "0.4"], "already given"),
        (["x=0.3", "X=0.4"], "given twice"),
        (["1.5"], "outside"),
        (["x=abc"], "not a number"),
        (["=0.3"], "missing action name"),
    ],
)
def test_bad_thresholds(values, message):
    with pytest.raises(InputError, match=message):
        parse_thresholds(values)


def test_threshold_for_unknown_action_is_an_error():
    with pytest.raises(InputError, match="not one of the actions"):
        resolve_thresholds(["diving"], 0.3, {"divng": 0.5})
