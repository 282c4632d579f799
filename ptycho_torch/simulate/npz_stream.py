"""Write an NPZ archive member by member, large members chunk by chunk (bounded memory).

An ``.npz`` file is a zip of ``.npy`` files.  :func:`write_npz` writes each member as an
uncompressed (stored) zip entry: a plain array is written whole; a :class:`StreamedArray`
gets its ``.npy`` header from the declared shape and dtype, then its chunks are appended as
they are produced, so the whole array never has to exist in memory.  Stored entries keep
the file memory-mappable by the scan reader (:mod:`ptycho_torch.data.npz`).

Every entry carries the fixed timestamp 1980-01-01, so equal arrays give equal bytes, and a
streamed member gives the same bytes as the same array written whole.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO

import numpy as np
from numpy.lib import format as npformat

__all__ = ["StreamedArray", "write_npz", "npz_bytes"]

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
"""The earliest time a zip entry can hold; used for every entry so no wall-clock time leaks in."""


@dataclass
class StreamedArray:
    """A C-ordered array declared by ``shape`` and ``dtype``, produced as ``chunks`` along axis 0."""

    shape: tuple[int, ...]
    dtype: np.dtype
    chunks: Iterable[np.ndarray]


def _entry(key: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _write_streamed(handle: IO[bytes], key: str, member: StreamedArray) -> None:
    dtype = np.dtype(member.dtype)
    if dtype.hasobject:
        raise ValueError(f"{key}: object arrays are refused (they would need pickle to load)")
    header = {"descr": npformat.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(member.shape)}
    try:
        npformat.write_array_header_1_0(handle, header)
    except ValueError:  # header over 64 KiB: the same fallback np.save takes
        npformat.write_array_header_2_0(handle, header)
    rows, row_shape = 0, tuple(member.shape[1:])
    for chunk in member.chunks:
        chunk = np.ascontiguousarray(chunk, dtype=dtype)
        if chunk.shape[1:] != row_shape:
            raise ValueError(f"{key}: chunk of shape {chunk.shape} does not fit the declared {member.shape}")
        handle.write(chunk.tobytes())
        rows += chunk.shape[0]
    if rows != member.shape[0]:
        raise ValueError(f"{key}: {rows} rows were produced for a declared {member.shape[0]}")


def write_npz(target: IO[bytes], members: Mapping[str, np.ndarray | StreamedArray]) -> None:
    """Write ``members`` (key -> array or :class:`StreamedArray`), in order, as an NPZ to ``target``.

    ``target`` is a binary file object (a real file or ``io.BytesIO``).  Object arrays are
    refused: they would need pickle to load.
    """
    with zipfile.ZipFile(target, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for key, value in members.items():
            with archive.open(_entry(key), mode="w", force_zip64=True) as handle:
                if isinstance(value, StreamedArray):
                    _write_streamed(handle, key, value)
                else:
                    npformat.write_array(handle, np.asanyarray(value), allow_pickle=False)


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An NPZ archive (uncompressed, like ``np.savez``) of whole arrays, as bytes."""
    buffer = io.BytesIO()
    write_npz(buffer, arrays)
    return buffer.getvalue()
