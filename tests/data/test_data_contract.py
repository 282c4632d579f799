"""DATA-001 / FORMAT-001: every violation is a one-line DataContractError raised at open."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from ptycho_torch.data import LegacyLayoutWarning, open_scan, write_scan
from ptycho_torch.data.contract import CHECK_FRAMES_MAX
from ptycho_torch.errors import DataContractError


def _bad(tmp_path, suffix, arrays, metadata=None):
    path = tmp_path / f"scan{suffix}"
    write_scan(path, arrays, metadata, validate=False)
    with pytest.raises(DataContractError) as info:
        open_scan(path)
    err = info.value
    line = err.one_line()
    assert "\n" not in line and "HINT:" in line and str(path) in line
    return err


def test_missing_file(tmp_path, suffix):
    path = tmp_path / f"nope{suffix}"
    with pytest.raises(DataContractError, match="not found") as info:
        open_scan(path)
    assert str(path) in info.value.one_line() and "HINT" in info.value.one_line()


def test_not_a_zip_or_hdf5(tmp_path, suffix):
    path = tmp_path / f"junk{suffix}"
    path.write_text("this is not a scan")
    with pytest.raises(DataContractError, match="not a readable") as info:
        open_scan(path)
    assert str(path) in info.value.one_line()


def test_truncated_file(tmp_path, suffix, scan_arrays):
    path = write_scan(tmp_path / f"cut{suffix}", scan_arrays())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataContractError) as info:
        open_scan(path)
    assert str(path) in info.value.one_line() and "HINT" in info.value.one_line()


def test_unknown_suffix(tmp_path):
    path = tmp_path / "scan.txt"
    path.write_text("x")
    with pytest.raises(DataContractError, match="unknown scan file type"):
        open_scan(path)


@pytest.mark.parametrize("key", ["diffraction", "probeGuess", "xcoords", "ycoords"])
def test_missing_key(tmp_path, suffix, scan_arrays, key):
    arrays = scan_arrays()
    del arrays[key]
    err = _bad(tmp_path, suffix, arrays)
    assert err.message == "missing required key" and f"[{key}]" in err.where


def test_wrong_dtypes(tmp_path, suffix, scan_arrays):
    arrays = scan_arrays()
    arrays["diffraction"] = (arrays["diffraction"] * 10).astype(np.int32)
    err = _bad(tmp_path, suffix, arrays)
    assert "[diffraction]" in err.where and "int32" in err.found and "float32" in err.expected
    arrays = scan_arrays()
    arrays["probeGuess"] = arrays["probeGuess"].real.copy()
    err = _bad(tmp_path, suffix, arrays)
    assert "[probeGuess]" in err.where and "float32" in err.found and "complex64" in err.expected


@pytest.mark.parametrize("key,shape", [("diffraction", (64, 64)), ("probeGuess", (1, 64, 64)), ("xcoords", (24, 1))])
def test_wrong_rank(tmp_path, suffix, scan_arrays, key, shape):
    arrays = scan_arrays()
    arrays[key] = np.zeros(shape, dtype=arrays[key].dtype)
    err = _bad(tmp_path, suffix, arrays)
    assert err.message == "wrong rank" and f"[{key}]" in err.where and str(shape) in err.found


def test_nan_in_diffraction_and_inf_in_coords(tmp_path, suffix, scan_arrays):
    arrays = scan_arrays()
    arrays["diffraction"][5, 3, 3] = np.nan
    err = _bad(tmp_path, suffix, arrays)
    assert "non-finite" in err.message and "frame 5" in err.found
    arrays = scan_arrays()
    arrays["ycoords"][7] = np.inf
    err = _bad(tmp_path, suffix, arrays)
    assert "[ycoords]" in err.where and "index 7" in err.found


def test_large_files_check_a_bounded_sample(tmp_path, scan_arrays):
    n = CHECK_FRAMES_MAX + 44
    arrays = scan_arrays(n=n, size=8)
    arrays["diffraction"][0, 0, 0] = np.inf  # frame 0 is always in the evenly spaced sample
    err = _bad(tmp_path, ".npz", arrays)
    assert "frame 0" in err.found


def test_coordinate_count_mismatch(tmp_path, suffix, scan_arrays):
    arrays = scan_arrays()
    arrays["xcoords"] = arrays["xcoords"][:20]
    arrays["ycoords"] = arrays["ycoords"][:20]
    err = _bad(tmp_path, suffix, arrays)
    assert "[diffraction]" in err.where and "20" in err.expected and "(24, 64, 64)" in err.found
    arrays = scan_arrays()
    arrays["ycoords"] = arrays["ycoords"][:20]
    err = _bad(tmp_path, suffix, arrays)
    assert "[ycoords]" in err.where and "24" in err.expected


def test_empty_scan(tmp_path, suffix, scan_arrays):
    arrays = scan_arrays()
    arrays.update(diffraction=np.zeros((0, 64, 64), np.float32), xcoords=np.zeros(0), ycoords=np.zeros(0))
    err = _bad(tmp_path, suffix, arrays)
    assert err.message == "empty scan"


def test_probe_shape_and_non_square(tmp_path, suffix, scan_arrays):
    arrays = scan_arrays()
    arrays["probeGuess"] = arrays["probeGuess"][:32, :32].copy()
    err = _bad(tmp_path, suffix, arrays)
    assert "[probeGuess]" in err.where and "(64, 64)" in err.expected and "(32, 32)" in err.found
    arrays = scan_arrays()
    arrays["diffraction"] = arrays["diffraction"][:, :, :48].copy()
    arrays["probeGuess"] = arrays["probeGuess"][:, :48].copy()
    err = _bad(tmp_path, suffix, arrays)
    assert err.message == "non-square frames" and "(64, 48)" in err.found


def test_negative_values(tmp_path, suffix, scan_arrays):
    arrays = scan_arrays()
    arrays["diffraction"][11, 0, 1] = -0.5
    err = _bad(tmp_path, suffix, arrays)
    assert "negative" in err.message and "frame 11" in err.found and "-0.5" in err.found


def test_frame_size_outside_64_128_256_is_not_a_contract_error(tmp_path, suffix, scan_arrays):
    path = write_scan(tmp_path / f"s{suffix}", scan_arrays(n=5, size=32))
    assert open_scan(path).frame_shape == (32, 32)


def test_accepted_dtypes_are_cast(tmp_path, suffix, scan_arrays):
    arrays = scan_arrays()
    arrays["probeGuess"] = arrays["probeGuess"].astype(np.complex128)
    arrays["xcoords"] = arrays["xcoords"].astype(np.float32)
    arrays["diffraction"] = arrays["diffraction"].astype(np.float64)
    arrays["scan_index"] = np.arange(24, dtype=np.int32)
    r = open_scan(write_scan(tmp_path / f"s{suffix}", arrays))
    assert r.probe.dtype == np.complex64 and r.xcoords.dtype == np.float64 and r.scan_index.dtype == np.int64
    assert r.read_frames([0]).dtype == np.float32
    np.testing.assert_array_equal(r.xcoords, arrays["xcoords"].astype(np.float64))


def test_legacy_key_and_layout(tmp_path, suffix, scan_arrays):
    arrays = scan_arrays(n=24)
    stack = arrays.pop("diffraction")
    arrays["diff3d"] = np.ascontiguousarray(np.moveaxis(stack, 0, 2))  # (H, W, n)
    path = write_scan(tmp_path / f"legacy{suffix}", arrays, validate=False)
    with pytest.warns(LegacyLayoutWarning) as record:
        r = open_scan(path)
    assert len([w for w in record if issubclass(w.category, LegacyLayoutWarning)]) == 1
    assert r.legacy_hwn and r.n == 24 and r.frame_shape == (64, 64) and r.diffraction_key == "diff3d"
    np.testing.assert_array_equal(r.read_frames([3, 0, 3]), stack[[3, 0, 3]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r.read_frames(np.arange(24))  # reading warns no more


def test_metadata(tmp_path, suffix, scan_arrays):
    r = open_scan(write_scan(tmp_path / f"m{suffix}", scan_arrays(), {"nphotons": 1e4, "object": "lines"}))
    assert r.nphotons == 1e4 and r.metadata["object"] == "lines"
    assert open_scan(write_scan(tmp_path / f"n{suffix}", scan_arrays())).nphotons is None
    err = _bad(tmp_path, suffix, scan_arrays(), {"nphotons": -3})
    assert "nphotons" in err.where
    arrays = scan_arrays()
    arrays["_metadata"] = np.array("{not json")
    err = _bad(tmp_path, suffix, arrays)
    assert "JSON" in err.message


def test_object_guess_and_scan_index(tmp_path, suffix, scan_arrays):
    arrays = scan_arrays()
    obj = (np.ones((160, 160)) * np.exp(0.3j)).astype(np.complex128)
    arrays["objectGuess"] = obj
    r = open_scan(write_scan(tmp_path / f"o{suffix}", arrays))
    assert r._object_guess is None  # lazy
    assert r.object_guess.dtype == np.complex64 and r.object_guess.shape == (160, 160)
    np.testing.assert_allclose(r.object_guess, obj, rtol=1e-6)
    arrays["objectGuess"] = obj.real
    err = _bad(tmp_path, suffix, arrays)
    assert "[objectGuess]" in err.where
    arrays = scan_arrays()
    arrays["scan_index"] = np.arange(10)
    err = _bad(tmp_path, suffix, arrays)
    assert "[scan_index]" in err.where and "(24,)" in err.expected


def test_validating_writer_writes_nothing_on_violation(tmp_path, suffix, scan_arrays):
    arrays = scan_arrays()
    arrays["diffraction"][0, 0, 0] = -1.0
    path = tmp_path / f"out{suffix}"
    with pytest.raises(DataContractError) as info:
        write_scan(path, arrays)
    assert str(path) in info.value.one_line() and "nothing was written" in info.value.one_line()
    assert list(tmp_path.iterdir()) == []
    open_scan(write_scan(path, scan_arrays(), {"nphotons": 1e9}))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_metadata_is_json_on_disk(tmp_path, scan_arrays):
    path = write_scan(tmp_path / "m.npz", scan_arrays(), {"nphotons": np.float64(1e6), "n": np.int64(3)})
    with np.load(path) as z:
        assert json.loads(str(z["_metadata"])) == {"n": 3, "nphotons": 1e6}
