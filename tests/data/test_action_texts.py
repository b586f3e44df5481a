"""Actions files with descriptions (YAML, TSV, GAP's JSON) and several prompt templates:
what each form parses to, and the one-line errors naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runner import run_cli
from psftr_core.data.vocabulary import (TextRecipe, parse_action_texts, read_action_texts, read_actions_file)
from psftr_core.errors import InputError

GAP = Path(__file__).resolve().parents[3] / "shared" / "data" / "reference" / "gap" / "data"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_mapping_with_lists_strings_and_bare_names(tmp_path):
    path = write(tmp_path, "actions.yaml", "# mine\ndiving: [a person jumps into water from a board, a diver "
                 "somersaults in the air]\npole vault: an athlete vaults over a bar\nrunning:\n")
    assert read_action_texts(path) == [
        ("diving", ["a person jumps into water from a board", "a diver somersaults in the air"]),
        ("pole vault", ["an athlete vaults over a bar"]),
        ("running", []),
    ]


def test_yaml_list_of_names_and_detection_by_content(tmp_path):
    assert read_actions_file(write(tmp_path, "a.yml", "- diving\n- 'yes'\n")) == ["diving", "yes"]
    # no extension: "name:" on the first line is YAML
    assert read_action_texts(write(tmp_path, "acts", "diving:\n  - jumps in\n")) == [("diving", ["jumps in"])]


def test_tsv_and_plain_lines(tmp_path):
    tsv = write(tmp_path, "a.tsv", "diving\tjumps in\t a diver spins \nrunning\n# note\n")
    assert read_action_texts(tsv) == [("diving", ["jumps in", "a diver spins"]), ("running", [])]
    plain = write(tmp_path, "a.txt", "pick up, put down\nC# coding\n")  # commas and inner '#' stay names
    assert read_action_texts(plain) == [("pick up, put down", []), ("C# coding", [])]


@pytest.mark.parametrize("version, first", [(3, "the pitcher throwing the baseball from the mound"),
                                            (4, "A person throws a ball with their hand."),
                                            (6, "Grabs baseball")])
def test_gap_description_json(version, first):
    path = GAP / "Thumos14" / f"Thumos14_description_v{version}.json"
    if not path.is_file():
        pytest.skip("the GAP reference copy is not here")
    pairs = read_action_texts(path)
    assert len(pairs) == 20 and pairs[0][0] == "BaseballPitch"
    assert pairs[0][1][0].startswith(first)
    assert len(pairs[0][1]) == (1 if version == 3 else 3)


def test_gap_schema_written_by_the_test(tmp_path):
    data = {"Diving": {"idx": 0, "Elaboration": {"Description": ["jumps in", "spins"]}, "Origin_Chat": "{}"},
            "Run": {"idx": 1, "Elaboration": {"Entity": ["a track"], "Description": "runs fast"}}}
    path = write(tmp_path, "d.json", json.dumps(data))
    assert read_action_texts(path) == [("Diving", ["jumps in", "spins"]), ("Run", ["runs fast"])]


@pytest.mark.parametrize("name, text, words", [
    ("bad.yaml", "diving: [jumps\nrunning: x\n", ["bad.yaml", "line", "not valid YAML"]),
    ("bad.yaml", "diving: {a: 1}\n", ["bad.yaml", "'diving'", "descriptions"]),
    ("bad.yaml", "1: jumps\n", ["bad.yaml", "1", "quote it"]),
    ("bad.tsv", "diving\tjumps\n\tno name\n", ["bad.tsv", "line 2", "no action name"]),
    ("bad.tsv", "diving\tjumps \x07\n", ["bad.tsv", "line 1", "control character"]),
    ("bad.json", '{"Diving": {"idx": 0}}', ["bad.json", "'Diving'", "Elaboration.Description"]),
    ("bad.json", '{"Diving": [}', ["bad.json", "line 1", "not valid JSON"]),
    ("empty.yaml", "# nothing\n", ["empty.yaml", "lists no actions"]),
])
def test_malformed_files_name_file_and_line(tmp_path, name, text, words):
    with pytest.raises(InputError) as err:
        read_action_texts(write(tmp_path, name, text))
    assert all(word in str(err.value) for word in words), str(err.value)


def test_recipe_only_when_there_is_more_than_one_text(tmp_path):
    assert parse_action_texts("diving", None, "a clip of {}") == (["diving"], "a clip of {}")
    assert parse_action_texts("diving", None, None) == (["diving"], None)
    path = write(tmp_path, "a.yaml", "Diving: [jumps in]\ndiving: [spins]\nrun:\n")
    vocabulary, recipe = parse_action_texts(None, path, ["a video of {}", "{} in a video"])
    assert vocabulary == ["Diving", "run"]  # first spelling wins, descriptions of both are kept
    assert recipe == TextRecipe(("a video of {}", "{} in a video"), {"diving": ("jumps in", "spins")})
    # templates first (filled with the name), then the descriptions as written
    assert recipe.texts("Diving", "unused {}") == ["a video of Diving", "Diving in a video", "jumps in", "spins"]
    assert recipe.texts("run", "unused {}") == ["a video of run", "run in a video"]
    assert TextRecipe((), {"run": ("x",)}).texts("run", "a clip of {}") == ["a clip of run", "x"]


@pytest.mark.parametrize("template", ["no slot", "{} and {name}", "{0"])
def test_bad_templates_are_refused(template):
    with pytest.raises(InputError, match="--prompt"):
        parse_action_texts("diving", None, ["{}", template])


def test_cli_bad_actions_file_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, "acts.tsv", "diving\tjumps\n\tno name\n")
    out_dir = tmp_path / "out"
    code, out, err = run_cli([str(tmp_path), "--actions-file", path, "--output", out_dir], capsys, monkeypatch)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert lines == [f"psftr: error: actions file {path}, line 2: no action name before the first tab"]
    assert not out_dir.exists()


def test_cli_bad_prompt_template_is_exit_2(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli([str(tmp_path), "-a", "diving", "--prompt", "{}", "--prompt", "none"], capsys,
                           monkeypatch)
    assert code == 2 and err.startswith("psftr: error: --prompt 'none'") and "Traceback" not in err
