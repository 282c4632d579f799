"""HDF5 scan files (h5py): a lazy reader and an atomic writer.

Same keys as the NPZ contract, as datasets in the file's root group: ``diffraction``
(or ``diff3d``), ``probeGuess``, ``xcoords``, ``ycoords``, optional ``objectGuess`` and
``scan_index``.  ``_metadata`` (a JSON object string) is read from the root group's
*attribute* ``_metadata`` (what :func:`write_scan_hdf5` writes); a scalar string *dataset*
named ``_metadata`` is accepted too, the attribute winning if both exist.

Frames are read by index straight from the dataset; :func:`write_scan_hdf5` stores the
stack in one-frame chunks so that random access reads only the frames asked for.  The h5py
file handle is opened lazily, once per process (see :class:`ScanReader`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import h5py
import numpy as np

from ptycho_torch.data import contract
from ptycho_torch.data.atomic import atomic_target, encode_metadata
from ptycho_torch.data.reader import ScanReader


def _dataset(path: Path, f: h5py.File, key: str) -> h5py.Dataset:
    obj = f[key]
    if not isinstance(obj, h5py.Dataset):
        raise contract.contract_error(path, key, "not a dataset", expected="an HDF5 dataset in the root group",
                                      found=type(obj).__name__, hint="store each array as a root-level dataset")
    return obj


def _read(path: Path, f: h5py.File, key: str) -> np.ndarray:
    try:
        return np.asarray(_dataset(path, f, key)[()])
    except (OSError, ValueError, TypeError) as err:
        raise contract.contract_error(path, key, "unreadable dataset", found=str(err),
                                      hint="the file may be corrupt; rewrite it") from None


class Hdf5ScanReader(ScanReader):
    """Reader for ``.h5``/``.hdf5`` scan files (see module docstring)."""

    kind = "HDF5"
    _transient: ClassVar[tuple[str, ...]] = ("_h5",)
    _h5: h5py.File | None  # the open file, opened lazily (per process)

    def _open_file(self) -> h5py.File:
        try:
            return h5py.File(self.path, "r")
        except (OSError, ValueError) as err:
            raise contract.contract_error(self.path, None, "not a readable HDF5 file", found=str(err),
                                          hint=("the file may be truncated or not HDF5; "
                                               "write scans with h5py or ptycho_torch.data.write_scan_hdf5")
                                          ) from None

    def _open_and_validate(self) -> None:
        with self._open_file() as f:
            keys = frozenset(f.keys())
            dkey = contract.find_diffraction_key(self.path, keys)
            probe = contract.check_probe(self.path, _read(self.path, f, contract.PROBE_KEY))
            x, y = contract.check_coords(self.path, _read(self.path, f, contract.X_KEY),
                                         _read(self.path, f, contract.Y_KEY))
            dset = _dataset(self.path, f, dkey)
            info = contract.ArrayInfo(tuple(int(s) for s in dset.shape), np.dtype(dset.dtype))
            layout = contract.check_diffraction_layout(self.path, dkey, info, x.size, probe.shape)
            scan_index = None
            if contract.SCAN_INDEX_KEY in keys:
                scan_index = contract.check_scan_index(self.path, _read(self.path, f, contract.SCAN_INDEX_KEY),
                                                       layout.n)
            if contract.OBJECT_KEY in keys:
                obj = _dataset(self.path, f, contract.OBJECT_KEY)
                contract.check_object_info(self.path, contract.ArrayInfo(tuple(obj.shape), np.dtype(obj.dtype)))
            raw_meta: Any = f.attrs.get(contract.METADATA_KEY)
            if raw_meta is None and contract.METADATA_KEY in keys:
                raw_meta = _read(self.path, f, contract.METADATA_KEY)
            metadata = contract.parse_metadata(self.path, raw_meta)
        if layout.legacy_hwn and not self._quiet:
            contract.warn_legacy_layout(self.path, dkey, info)
        self.n, self.frame_shape, self.legacy_hwn = layout.n, layout.frame_shape, layout.legacy_hwn
        self.probe, self.xcoords, self.ycoords = probe, x, y
        self.scan_index, self.metadata, self.diffraction_key = scan_index, metadata, dkey
        self.has_object_guess = contract.OBJECT_KEY in keys

    def _handle(self) -> h5py.File:
        if not self._owned() or self._h5 is None:
            self._h5 = self._open_file()
        return self._h5

    def _read_sorted(self, indices: np.ndarray) -> np.ndarray:
        dset = self._handle()[self.diffraction_key]
        lo, hi = int(indices[0]), int(indices[-1]) + 1
        sel: Any = slice(lo, hi) if hi - lo == indices.size else indices  # h5py wants increasing indices
        if self.legacy_hwn:
            out = np.moveaxis(dset[:, :, sel], 2, 0)
        else:
            out = dset[sel]
        return np.ascontiguousarray(out, dtype=np.float32)

    def _load_object_guess(self) -> np.ndarray:
        return np.ascontiguousarray(self._handle()[contract.OBJECT_KEY][()], dtype=np.complex64)

    def _close_transient(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        super()._close_transient()


def _quiet_reader(path: Path) -> Hdf5ScanReader:
    return Hdf5ScanReader(path, quiet=True)


def write_scan_hdf5(path: str | os.PathLike[str], arrays: dict[str, Any], metadata: dict[str, Any] | None = None,
                    *, compression: str | None = None, validate: bool = True) -> Path:
    """Write ``arrays`` as root datasets and ``metadata`` as the ``_metadata`` JSON attribute.

    A 3-D, non-empty diffraction stack stored (n, H, W) is chunked one frame per chunk
    (``compression`` e.g. ``"gzip"`` applies to it).  Written to a temporary file beside
    ``path``, optionally validated with :class:`Hdf5ScanReader` (a violation raises
    ``DataContractError`` and nothing is written), then moved into place atomically.
    Returns the final path.
    """
    path = Path(path)
    with atomic_target(path, _quiet_reader if validate else None) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in arrays.items():
                arr = np.asarray(value)
                if key == contract.METADATA_KEY and arr.dtype.kind in "US" and arr.ndim == 0:
                    f.attrs[key] = str(arr.item())
                    continue
                kwargs: dict[str, Any] = {}
                if key in contract.DIFFRACTION_KEYS and arr.ndim == 3 and arr.size and arr.shape[1] == arr.shape[2]:
                    kwargs = {"chunks": (1, *arr.shape[1:]), "compression": compression}
                f.create_dataset(key, data=arr, **kwargs)
            if metadata is not None:
                f.attrs[contract.METADATA_KEY] = encode_metadata(metadata)
    return path
