"""The header of a ``.npy`` file (shape, dtype) without reading its data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    dtype: Any  # numpy.dtype
    complete: bool  # the file holds all the data the header announces (not truncated)
    data_bytes: int = -1  # bytes after the header (-1: not measured)
    expected_bytes: int = -1  # bytes the header announces


def read_npy_header(path: str | os.PathLike) -> NpyHeader:
    """Read the header of the ``.npy`` file at ``path``.

    Raises OSError when the file cannot be opened, ValueError when it is not a ``.npy``
    file of a known format version.
    """
    import numpy as np  # here, not at import: `psftr --help` stays fast

    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        try:
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version in ((2, 0), (3, 0)):  # 3.0 differs from 2.0 only in the header's text encoding
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"unknown .npy format version {version}")
        except TypeError as err:  # some malformed headers surface as TypeError
            raise ValueError(str(err)) from None
        data_bytes = os.fstat(handle.fileno()).st_size - handle.tell()
    expected_bytes = int(np.prod(shape)) * dtype.itemsize
    return NpyHeader(tuple(int(n) for n in shape), dtype, data_bytes >= expected_bytes, data_bytes, expected_bytes)
