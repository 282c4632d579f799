"""Open or write a scan file by its suffix: ``.npz`` -> NPZ, ``.h5``/``.hdf5`` -> HDF5."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ptycho_torch.data import contract
from ptycho_torch.data.hdf5 import Hdf5ScanReader, write_scan_hdf5
from ptycho_torch.data.npz import NpzScanReader, write_scan_npz
from ptycho_torch.data.reader import ScanReader

NPZ_SUFFIXES = (".npz",)
HDF5_SUFFIXES = (".h5", ".hdf5")
SCAN_SUFFIXES = NPZ_SUFFIXES + HDF5_SUFFIXES
"""File suffixes :func:`open_scan` and :func:`write_scan` understand (case-insensitive)."""

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _reader_class(path: Path) -> type[ScanReader]:
    suffix = path.suffix.lower()
    if suffix in NPZ_SUFFIXES:
        return NpzScanReader
    if suffix in HDF5_SUFFIXES:
        return Hdf5ScanReader
    if path.is_file():  # unknown suffix: sniff the signature
        with open(path, "rb") as fh:
            head = fh.read(8)
        if head.startswith(_ZIP_MAGIC):
            return NpzScanReader
        if head == _HDF5_MAGIC:
            return Hdf5ScanReader
    raise contract.contract_error(path, None, "unknown scan file type", expected=f"a suffix in {SCAN_SUFFIXES}",
                                  found=f"suffix {path.suffix or '(none)'}",
                                  hint="scan files are NPZ (.npz) or HDF5 (.h5/.hdf5)")


def open_scan(path: str | os.PathLike[str]) -> ScanReader:
    """Open and validate a scan file; raises ``DataContractError`` for any contract violation.

    Dispatches on the suffix (``.npz``, ``.h5``, ``.hdf5``); a file with another suffix is
    recognised by its zip/HDF5 signature.
    """
    path = Path(path)
    if not path.exists():
        raise contract.contract_error(path, None, "scan file not found",
                                      hint=f"check the path (relative paths are resolved from {Path.cwd()})")
    return _reader_class(path)(path)


def write_scan(path: str | os.PathLike[str], arrays: dict[str, Any], metadata: dict[str, Any] | None = None,
               *, validate: bool = True) -> Path:
    """Write a scan file atomically, NPZ or HDF5 chosen by ``path``'s suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in NPZ_SUFFIXES:
        return write_scan_npz(path, arrays, metadata, validate=validate)
    if suffix in HDF5_SUFFIXES:
        return write_scan_hdf5(path, arrays, metadata, validate=validate)
    raise contract.contract_error(path, None, "unknown scan file type", expected=f"a suffix in {SCAN_SUFFIXES}",
                                  found=f"suffix {path.suffix or '(none)'}",
                                  hint="name the output .npz, .h5 or .hdf5")
