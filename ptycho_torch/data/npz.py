"""NPZ scan files: a lazy reader (frames read on demand) and an atomic writer.

``np.load(..., mmap_mode='r')`` does not memory-map arrays inside an ``.npz`` (a zip).
For an *uncompressed* (ZIP_STORED) ``diffraction`` member this reader finds the member's
data in the zip (local file header + the ``.npy`` header) and reads the requested frames
straight from the file with positional reads (``os.preadv``, one per run of consecutive
frames) into a fresh array, so frames are read on demand and never loaded whole.  Why not
a memory map: every page a map touches stays in the process's resident set, so a pass over
a scan (an inference, a training epoch) grows the process by the size of the file (1.6 GB
at 100k patterns of 64 x 64); a read leaves only the batch in memory and the operating
system's page cache does the caching.  Stacks stored Fortran-ordered or in the legacy
(H, W, n) layout, where one frame is not contiguous, are still memory-mapped.

A compressed member (written by ``np.savez_compressed``) cannot be read in place: on first
use it is decompressed, in 16 MiB steps, into an anonymous temporary file (deleted when
closed; one per process) and frames are read from there, so memory stays flat at the cost
of disk space and one decompression, with a one-line log note (a compressed Fortran-ordered
or legacy-layout stack is loaded whole).  Small members (probe, coordinates, ...) are read
when the file is opened; ``objectGuess`` is read on first access.  ``allow_pickle`` is
never enabled.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.lib import format as npformat

from ptycho_torch.data import contract
from ptycho_torch.data.atomic import atomic_target, encode_metadata
from ptycho_torch.data.reader import ScanReader

log = logging.getLogger(__name__)

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")  # zip local file header, 30 bytes
_LOCAL_SIGNATURE = 0x04034B50
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, struct.error)


@dataclass(frozen=True)
class _Member:
    """Where a ``.npy`` member's array data lives inside the zip."""

    name: str
    info: contract.ArrayInfo
    fortran_order: bool
    data_offset: int | None  # absolute file offset of the array bytes; None when compressed


def _read_npy_header(fp: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = npformat.read_magic(fp)
    if version == (1, 0):
        return npformat.read_array_header_1_0(fp)
    if version == (2, 0):
        return npformat.read_array_header_2_0(fp)
    raise ValueError(f"unsupported .npy format version {version}")


def _locate(path: Path, zf: zipfile.ZipFile, zinfo: zipfile.ZipInfo, key: str) -> _Member:
    """Read a member's .npy header and, when stored uncompressed, its absolute data offset."""
    try:
        with zf.open(zinfo) as fp:
            shape, fortran, dtype = _read_npy_header(fp)
            header_len = fp.tell()
    except _READ_ERRORS as err:
        raise contract.contract_error(path, key, "unreadable array header", found=str(err),
                                      hint="the file may be truncated; rewrite it") from None
    if dtype.hasobject:
        raise contract.contract_error(path, key, "object (pickled) array", expected="a numeric array",
                                      found=f"dtype {dtype}", hint="store plain numeric arrays")
    info = contract.ArrayInfo(tuple(int(s) for s in shape), np.dtype(dtype))
    offset = None
    if zinfo.compress_type == zipfile.ZIP_STORED and not zinfo.flag_bits & 0x1:
        with open(path, "rb") as raw:
            raw.seek(zinfo.header_offset)
            fields = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
        if fields[0] != _LOCAL_SIGNATURE:
            raise contract.contract_error(path, key, "corrupt zip entry", hint="rewrite the file")
        offset = zinfo.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10] + header_len
        nbytes = int(np.prod(info.shape, dtype=np.int64)) * info.dtype.itemsize
        if offset + nbytes > path.stat().st_size:
            raise contract.contract_error(path, key, "truncated file", expected=f"{nbytes} bytes of data",
                                          found=f"file ends early ({path.stat().st_size} bytes)",
                                          hint="the file was not fully written; rewrite it")
    return _Member(zinfo.filename, info, bool(fortran), offset)


def _load_member(path: Path, zf: zipfile.ZipFile, zinfo: zipfile.ZipInfo, key: str) -> np.ndarray:
    try:
        with zf.open(zinfo) as fp:
            return npformat.read_array(fp, allow_pickle=False)
    except _READ_ERRORS as err:
        raise contract.contract_error(path, key, "unreadable array", found=str(err).split("\n")[0],
                                      hint="store plain numeric arrays (metadata as a JSON string)") from None


class NpzScanReader(ScanReader):
    """Reader for ``.npz`` scan files (see module docstring for laziness rules)."""

    kind = "NPZ"
    _transient: ClassVar[tuple[str, ...]] = ("_frames", "_file")
    _frames: np.ndarray | None  # the stacked frames (memmap or loaded), opened lazily
    _file: Any  # the open file the frames are read from (the scan, or a spilled copy)

    def _close_transient(self) -> None:
        if self._file is not None and self._owned():
            self._file.close()
        super()._close_transient()

    def _open_zip(self) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            raise contract.contract_error(self.path, None, "not a readable NPZ (zip) archive", found=str(err),
                                          hint=("the file may be truncated or not an NPZ; "
                                               "write scans with numpy.savez or ptycho_torch.data.write_scan_npz")
                                          ) from None

    def _open_and_validate(self) -> None:
        with self._open_zip() as zf:
            members = {z.filename[:-4]: z for z in zf.infolist() if z.filename.endswith(".npy")}
            dkey = contract.find_diffraction_key(self.path, frozenset(members))
            probe = contract.check_probe(self.path, _load_member(self.path, zf, members[contract.PROBE_KEY],
                                                                 contract.PROBE_KEY))
            x, y = contract.check_coords(
                self.path, _load_member(self.path, zf, members[contract.X_KEY], contract.X_KEY),
                _load_member(self.path, zf, members[contract.Y_KEY], contract.Y_KEY))
            diff = _locate(self.path, zf, members[dkey], dkey)
            layout = contract.check_diffraction_layout(self.path, dkey, diff.info, x.size, probe.shape)
            scan_index = None
            if contract.SCAN_INDEX_KEY in members:
                scan_index = contract.check_scan_index(
                    self.path, _load_member(self.path, zf, members[contract.SCAN_INDEX_KEY],
                                            contract.SCAN_INDEX_KEY), layout.n)
            if contract.OBJECT_KEY in members:
                obj = _locate(self.path, zf, members[contract.OBJECT_KEY], contract.OBJECT_KEY)
                contract.check_object_info(self.path, obj.info)
            raw_meta = None
            if contract.METADATA_KEY in members:
                raw_meta = _load_member(self.path, zf, members[contract.METADATA_KEY], contract.METADATA_KEY)
            metadata = contract.parse_metadata(self.path, raw_meta)
        if layout.legacy_hwn and not self._quiet:
            contract.warn_legacy_layout(self.path, dkey, diff.info)
        if diff.data_offset is None and not self._quiet:
            log.warning("%s [%s]: compressed NPZ member is decompressed into a temporary file before use "
                        "(write with write_scan_npz(..., compressed=False) to read it in place)", self.path, dkey)
        self.n, self.frame_shape, self.legacy_hwn = layout.n, layout.frame_shape, layout.legacy_hwn
        self.probe, self.xcoords, self.ycoords = probe, x, y
        self.scan_index, self.metadata, self.diffraction_key = scan_index, metadata, dkey
        self.has_object_guess = contract.OBJECT_KEY in members
        self._diff_member = diff

    def _frames_array(self) -> np.ndarray:
        """The stored stack as an array-like: a read-only memmap, or the loaded array."""
        if not self._owned() or self._frames is None:
            m = self._diff_member
            if m.data_offset is not None:
                self._frames = np.memmap(self.path, dtype=m.info.dtype, mode="r", offset=m.data_offset,
                                         shape=m.info.shape, order="F" if m.fortran_order else "C")
            else:
                with self._open_zip() as zf:
                    self._frames = _load_member(self.path, zf, zf.getinfo(m.name), self.diffraction_key)
        return self._frames

    def _frames_readable(self) -> bool:
        """True when frames can be read with positional reads (C-ordered (n, H, W), stored or spilled)."""
        m = self._diff_member
        return not m.fortran_order and not self.legacy_hwn

    def _open_frames_file(self) -> tuple[Any, int]:
        """The file holding the frames' bytes and their offset in it (the scan, or a spilled copy)."""
        m = self._diff_member
        if not self._owned() or self._file is None:
            if m.data_offset is not None:
                self._file = open(self.path, "rb", buffering=0)
            else:
                self._file = self._spill_compressed()
        return self._file, (m.data_offset if m.data_offset is not None else 0)

    def _spill_compressed(self) -> Any:
        """Decompress the diffraction member's array bytes into an anonymous temporary file."""
        spill = tempfile.TemporaryFile(prefix="ptycho-frames-")
        try:
            with self._open_zip() as zf, zf.open(self._diff_member.name) as member:
                _read_npy_header(member)
                shutil.copyfileobj(member, spill, 16 * 2**20)
        except _READ_ERRORS as err:
            spill.close()
            raise contract.contract_error(self.path, self.diffraction_key, "unreadable array", found=str(err),
                                          hint="the file may be truncated; rewrite it") from None
        spill.flush()
        return spill

    def _read_runs(self, indices: np.ndarray) -> np.ndarray:
        """Frames at sorted ``indices`` read from the file, one positional read per consecutive run."""
        m = self._diff_member
        out = np.empty((indices.size, *m.info.shape[1:]), dtype=m.info.dtype)
        if indices.size == 0:
            return out
        handle, base = self._open_frames_file()
        frame_bytes = out[0].nbytes
        flat = memoryview(out.reshape(-1).view(np.uint8).data)
        breaks = np.flatnonzero(np.diff(indices) != 1) + 1
        for first, stop in zip(np.concatenate(([0], breaks)), np.concatenate((breaks, [indices.size]))):
            offset = base + int(indices[first]) * frame_bytes
            _read_exactly(handle, flat[first * frame_bytes:stop * frame_bytes], offset, self.path)
        return out

    def _read_sorted(self, indices: np.ndarray) -> np.ndarray:
        if self._frames_readable():
            return np.ascontiguousarray(self._read_runs(indices), dtype=np.float32)
        stack = self._frames_array()
        if self.legacy_hwn:
            out = np.moveaxis(stack[:, :, indices], 2, 0)
        else:
            out = stack[indices]
        return np.ascontiguousarray(out, dtype=np.float32)

    def _load_object_guess(self) -> np.ndarray:
        with self._open_zip() as zf:
            obj = _load_member(self.path, zf, zf.getinfo(contract.OBJECT_KEY + ".npy"), contract.OBJECT_KEY)
        return np.ascontiguousarray(obj, dtype=np.complex64)


def _read_exactly(handle: Any, buffer: memoryview, offset: int, path: Path) -> None:
    """Fill ``buffer`` from ``handle`` at ``offset`` (positional reads; short reads continue)."""
    fd = handle.fileno()
    while len(buffer):
        if hasattr(os, "preadv"):
            got = os.preadv(fd, [buffer], offset)
        else:  # Windows and older platforms: no positional read into a buffer
            handle.seek(offset)
            got = handle.readinto(buffer)
        if not got:
            raise contract.contract_error(path, None, "truncated file", found=f"end of file at byte {offset}",
                                          hint="the file was not fully written; rewrite it")
        buffer, offset = buffer[got:], offset + got


def _quiet_reader(path: Path) -> NpzScanReader:
    return NpzScanReader(path, quiet=True)


def write_scan_npz(path: str | os.PathLike[str], arrays: dict[str, Any], metadata: dict[str, Any] | None = None,
                   *, compressed: bool = False, validate: bool = True) -> Path:
    """Write ``arrays`` (key -> array) and optional ``metadata`` (-> ``_metadata`` JSON) to an NPZ.

    The file is written to a temporary name next to ``path``, flushed, optionally validated
    by opening it with :class:`NpzScanReader` (a violation raises ``DataContractError`` and
    nothing is written), then moved into place with ``os.replace`` (atomic).  Keep
    ``compressed=False`` for memory-mapped reads; ``validate=False`` writes arrays verbatim.
    Returns the final path.
    """
    path = Path(path)
    payload: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
    if metadata is not None:
        payload[contract.METADATA_KEY] = np.array(encode_metadata(metadata))
    save = np.savez_compressed if compressed else np.savez
    with atomic_target(path, _quiet_reader if validate else None) as tmp:
        with open(tmp, "wb") as fh:
            save(fh, **payload)
            fh.flush()
            os.fsync(fh.fileno())
    return path
