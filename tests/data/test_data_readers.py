"""NPZ/HDF5 readers: lazy frames (read in place, never loaded whole), exact values, pickling, intensity, writers."""

from __future__ import annotations

import logging
import os
import pickle
import zipfile

import h5py
import numpy as np
import pytest

from ptycho_torch.data import Hdf5ScanReader, NpzScanReader, open_scan, write_scan, write_scan_hdf5, write_scan_npz


def test_read_frames_any_order_with_repeats(tmp_path, suffix, scan_arrays):
    arrays = scan_arrays()
    r = open_scan(write_scan(tmp_path / f"s{suffix}", arrays))
    assert isinstance(r, NpzScanReader if suffix == ".npz" else Hdf5ScanReader)
    assert (r.n, r.frame_shape) == (24, (64, 64))
    for idx in ([7], [3, 4, 5], [20, 2, 2, 9], np.arange(24)[::-1]):
        got = r.read_frames(idx)
        assert got.dtype == np.float32 and got.shape == (len(idx), 64, 64) and got.flags.c_contiguous
        np.testing.assert_array_equal(got, arrays["diffraction"][idx])
    assert r.read_frames([]).shape == (0, 64, 64)
    with pytest.raises(IndexError):
        r.read_frames([24])
    np.testing.assert_array_equal(r.probe, arrays["probeGuess"])
    np.testing.assert_array_equal(r.positions, np.stack([arrays["xcoords"], arrays["ycoords"]], 1))


def test_uncompressed_npz_is_read_in_place_not_mapped(tmp_path, scan_arrays):
    arrays = scan_arrays()
    path = write_scan_npz(tmp_path / "s.npz", arrays)
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("diffraction.npy").compress_type == zipfile.ZIP_STORED
    r = open_scan(path)
    np.testing.assert_array_equal(r.read_frames([3, 4, 5, 9, 0]), arrays["diffraction"][[3, 4, 5, 9, 0]])
    assert r._frames is None and r._file is not None  # positional reads, no map
    r.close()
    assert r._file is None
    # Fortran-ordered stacks are mapped with the right order too
    arrays["diffraction"] = np.asfortranarray(arrays["diffraction"])
    r2 = open_scan(write_scan_npz(tmp_path / "f.npz", arrays))
    np.testing.assert_array_equal(r2.read_frames([1, 17]), arrays["diffraction"][[1, 17]])


def _resident_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
@pytest.mark.parametrize("compressed", [False, True])
def test_a_pass_over_the_scan_does_not_grow_the_process(tmp_path, compressed):
    """Reading every frame in batches keeps only a batch resident (a memory map kept the whole file)."""
    n = 4096  # 64 MiB of frames
    arrays = {"diffraction": np.ones((n, 64, 64), np.float32), "probeGuess": np.ones((64, 64), np.complex64),
              "xcoords": np.arange(n, dtype=np.float64), "ycoords": np.zeros(n)}
    path = write_scan_npz(tmp_path / "big.npz", arrays, compressed=compressed)
    del arrays
    before = _resident_bytes()  # before opening: validation already touches frames spread over the file
    r = open_scan(path)
    total = 0.0
    for start in range(0, n, 64):
        total += float(r.read_frames(np.arange(start, start + 64)).sum())
    grown = _resident_bytes() - before
    assert total == n * 64 * 64
    assert grown < 16 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB over a 64 MiB pass"


def test_compressed_npz_is_decompressed_to_a_temporary_file(tmp_path, scan_arrays, caplog):
    arrays = scan_arrays()
    with caplog.at_level(logging.WARNING, logger="ptycho_torch.data.npz"):
        r = open_scan(write_scan_npz(tmp_path / "c.npz", arrays, compressed=True))
    assert len([m for m in caplog.messages if "compressed" in m]) == 1
    np.testing.assert_array_equal(r.read_frames([5, 0, 1, 2]), arrays["diffraction"][[5, 0, 1, 2]])
    assert r._frames is None and r._file is not None and r._file.name != str(r.path)  # a spilled copy, not loaded
    r.close()
    np.testing.assert_array_equal(r.read_frames([23]), arrays["diffraction"][[23]])  # spilled again after close


def test_hdf5_layout_and_metadata_dataset(tmp_path, scan_arrays):
    arrays = scan_arrays()
    path = write_scan_hdf5(tmp_path / "s.h5", arrays, {"nphotons": 1e5})
    with h5py.File(path, "r") as f:
        assert f["diffraction"].chunks == (1, 64, 64)
        assert "_metadata" in f.attrs
    alt = tmp_path / "alt.hdf5"  # metadata stored as a string dataset instead of an attribute
    with h5py.File(alt, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
        f.create_dataset("_metadata", data='{"nphotons": 2e3}')
    assert open_scan(alt).nphotons == 2e3


def test_reader_pickles_without_frames_and_reopens(tmp_path, suffix, scan_arrays):
    arrays = scan_arrays()
    r = open_scan(write_scan(tmp_path / f"s{suffix}", arrays))
    r.read_frames([0])  # opens the map / handle in this process
    blob = pickle.dumps(r)
    assert len(blob) < arrays["diffraction"].nbytes / 10  # frames are not shipped
    r2 = pickle.loads(blob)
    np.testing.assert_array_equal(r2.read_frames([4, 1]), arrays["diffraction"][[4, 1]])
    r2.close()
    np.testing.assert_array_equal(r2.read_frames([2]), arrays["diffraction"][[2]])  # re-opens after close


def test_mean_total_intensity_analytic(tmp_path, suffix, scan_arrays):
    arrays = scan_arrays(n=10, size=64)
    arrays["diffraction"] = np.stack([np.full((64, 64), float(i), np.float32) for i in range(10)])
    r = open_scan(write_scan(tmp_path / f"s{suffix}", arrays))
    # frame i has sum X^2 = i^2 * 64^2; mean over i = 0..9 of i^2 = 28.5
    assert r.mean_total_intensity() == pytest.approx(28.5 * 64 * 64, rel=1e-12)
    # subset of 4 evenly spaced frames: 0, 3, 6, 9 -> mean i^2 = 31.5
    assert r.mean_total_intensity(max_frames=4, chunk_frames=3) == pytest.approx(31.5 * 64 * 64, rel=1e-12)


def test_writers_are_atomic_and_overwrite(tmp_path, suffix, scan_arrays):
    path = tmp_path / "sub" / f"s{suffix}"
    write_scan(path, scan_arrays(seed=1))
    write_scan(path, scan_arrays(seed=2))
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    np.testing.assert_array_equal(open_scan(path).read_frames([0]), scan_arrays(seed=2)["diffraction"][[0]])


def test_unknown_suffix_is_sniffed(tmp_path, scan_arrays):
    src = write_scan(tmp_path / "s.h5", scan_arrays())
    renamed = src.rename(tmp_path / "s.data")
    assert isinstance(open_scan(renamed), Hdf5ScanReader)
