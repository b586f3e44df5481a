"""Shell completion of option values (what `psftr --install-completion` sets up asks for)."""

from __future__ import annotations

import os
import subprocess

import pytest

from train_helpers import console_scripts


def complete(words: str) -> list[str]:
    """The candidates bash completion gets for the last word of ``words``."""
    env = {**os.environ, "_PSFTR_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    (psftr,) = console_scripts("psftr")  # completion is keyed by the program's name
    done = subprocess.run([str(psftr)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.parametrize("words, expected", [
    ("psftr detect --device c", ["cpu", "cuda"]),
    ("psftr detect --format e", ["edl"]),
    ("psftr detect --format j", ["json", "jsonl"]),
    ("psftr detect --score i", ["independent"]),
    ("psftr extract --dtype b", ["bfloat16"]),
    ("psftr extract --engine ", ["local", "ray"]),
])
def test_option_values_complete(words, expected):
    assert complete(words) == expected
