"""Rows of the bad-input matrix for issue 27 (data): see bad_input_cases for the row format."""

from __future__ import annotations

from bad_input_cases import Case

CASES: list[Case] = []
