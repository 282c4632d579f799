"""Stitching: round trip against a known object, overlap averaging, coverage, errors, speed."""

import time

import numpy as np
import pytest

from ptycho_torch.errors import ConfigError
from ptycho_torch.evaluate import canvas_shape, coverage_bbox, ssim, stitch_patches
from ptycho_torch.simulate.diffraction import extract_patches
from ptycho_torch.simulate.objects import lines_object
from ptycho_torch.simulate.scans import raster_scan


def test_round_trip_recovers_the_object_at_subpixel_positions():
    obj = lines_object(160, np.random.default_rng(0))
    N = 64
    positions = raster_scan(160, N, 6.0, 1.3, np.random.default_rng(1))
    assert np.any(np.abs(positions - np.round(positions)) > 0.2)  # really sub-pixel
    stitched, counts = stitch_patches(extract_patches(obj, positions, N), positions, obj.shape)
    y0, y1, x0, x1 = coverage_bbox(counts)
    assert np.isfinite(stitched[counts > 0]).all() and np.isnan(stitched[counts == 0]).all()
    inner = (slice(y0 + 2, y1 - 2), slice(x0 + 2, x1 - 2))
    assert (counts[inner] > 0).all()
    error = np.abs(stitched[inner] - obj[inner])
    assert error.mean() < 0.01 and error.max() < 0.1  # lines are not band-limited: ~1% interpolation error
    amp_range = np.ptp(np.abs(obj[inner]))
    assert ssim(np.abs(stitched[inner]), np.abs(obj[inner]), amp_range) > 0.99


def test_integer_positions_round_trip_exactly():
    obj = lines_object(128, np.random.default_rng(2))
    positions = np.array([[40.0, 40.0], [56.0, 44.0], [72.0, 88.0], [88.0, 60.0]])
    stitched, counts = stitch_patches(extract_patches(obj, positions, 64), positions, obj.shape)
    covered = counts > 0
    np.testing.assert_array_equal(stitched[covered], obj[covered])
    assert covered.sum() == len(np.unique(np.flatnonzero(covered)))


def test_overlaps_are_averaged_and_counted():
    N, crop = 8, 4
    patches = np.stack([np.full((N, N), 1.0 + 0j), np.full((N, N), 3.0 + 2j)]).astype(np.complex64)
    positions = np.array([[10.0, 10.0], [12.0, 10.0]])  # crops: cols 8..11 and 10..13, rows 8..11
    stitched, counts = stitch_patches(patches, positions, (20, 20), crop=crop)
    assert counts[8:12, 8:10].tolist() == [[1, 1]] * 4 and counts[8:12, 10:12].tolist() == [[2, 2]] * 4
    np.testing.assert_allclose(stitched[8:12, 8:10], 1.0)
    np.testing.assert_allclose(stitched[8:12, 10:12], 2.0 + 1j)
    np.testing.assert_allclose(stitched[8:12, 12:14], 3.0 + 2j)
    assert counts.sum() == 2 * crop * crop and np.isnan(stitched[0, 0])


def test_real_patches_stay_real():
    stitched, _ = stitch_patches(np.ones((1, 8, 8)), np.array([[5.5, 5.5]]), (12, 12))
    assert stitched.dtype == np.float32 and np.nanmax(np.abs(stitched - 1)) < 1e-6


def test_canvas_shape_holds_every_patch_and_outside_is_refused():
    positions = np.array([[32.0, 32.0], [100.4, 70.7]])
    shape = canvas_shape(positions, 64)
    stitch_patches(np.zeros((2, 64, 64), np.complex64), positions, shape)  # fits
    with pytest.raises(ConfigError, match="patch 1"):
        stitch_patches(np.zeros((2, 64, 64), np.complex64), positions, (90, 90))
    with pytest.raises(ConfigError, match="positions"):
        stitch_patches(np.zeros((2, 64, 64), np.complex64), positions[:1], shape)
    with pytest.raises(ConfigError, match="patches"):
        stitch_patches(np.zeros((2, 64, 32)), positions, shape)


def test_thousands_of_patches_stitch_quickly():
    rng = np.random.default_rng(3)
    n, N = 2000, 64
    positions = rng.uniform(N / 2 + 1, 600 - N / 2 - 1, size=(n, 2))
    patches = (rng.standard_normal((n, N, N)) + 1j * rng.standard_normal((n, N, N))).astype(np.complex64)
    start = time.perf_counter()
    stitched, counts = stitch_patches(patches, positions, (600, 600))
    assert time.perf_counter() - start < 5.0  # ~0.5 s on one core
    assert counts.sum() == n * (N // 2) ** 2
