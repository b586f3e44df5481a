"""Reading a .npy header: shape, dtype, and whether the data is all there."""

from __future__ import annotations

import numpy as np
import pytest

from psftr_core.io.npy import read_npy_header


def test_header_of_version_1_and_2_files(tmp_path):
    one = tmp_path / "one.npy"
    np.save(one, np.zeros((7, 3), np.float16))
    header = read_npy_header(one)
    assert header.shape == (7, 3) and header.dtype == np.float16 and header.complete
    two = tmp_path / "two.npy"
    with open(two, "wb") as handle:
        np.lib.format.write_array(handle, np.zeros(5, np.float64), version=(2, 0))
    header = read_npy_header(two)
    assert header.shape == (5,) and header.dtype == np.float64 and header.complete


def test_truncated_file_is_incomplete(tmp_path):
    path = tmp_path / "cut.npy"
    np.save(path, np.ones((4, 8), np.float32))
    data = path.read_bytes()
    path.write_bytes(data[:-1])  # one byte short of 4 * 8 * 4 data bytes
    header = read_npy_header(path)
    assert header.shape == (4, 8) and not header.complete


def test_not_numpy_and_missing(tmp_path):
    garbage = tmp_path / "g.npy"
    garbage.write_bytes(b"not numpy")
    with pytest.raises(ValueError):
        read_npy_header(garbage)
    with pytest.raises(OSError):
        read_npy_header(tmp_path / "missing.npy")
