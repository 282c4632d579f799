"""Probe-weighted stitching: uniform in, uniform out; weights right up to the scan's edges."""

import numpy as np
import pytest
import torch

from ptycho_torch.errors import ConfigError
from ptycho_torch.evaluate import ssim
from ptycho_torch.evaluate import stitch as stitch_module
from ptycho_torch.evaluate.stitch import WEIGHT_FLOOR, ObjectStitcher, scanned_bbox, stitch_patches
from ptycho_torch.simulate.diffraction import extract_patches
from ptycho_torch.simulate.objects import lines_object
from ptycho_torch.simulate.probes import curved_probe
from ptycho_torch.simulate.scans import raster_scan

N = 64


def test_a_uniform_object_stitches_to_a_uniform_object_at_subpixel_positions():
    positions = raster_scan(160, N, 7.0, 1.5, np.random.default_rng(0))
    value = np.complex64(0.7 * np.exp(0.4j))
    patches = np.full((len(positions), N, N), value, np.complex64)
    stitched, weights = stitch_patches(patches, positions, (160, 160), probe=curved_probe(N))
    covered = np.isfinite(stitched)
    assert covered.sum() > 0.5 * covered.size
    y0, y1, x0, x1 = scanned_bbox(positions, N)
    inner = (slice(y0 + 8, y1 - 8), slice(x0 + 8, x1 - 8))  # the probe (29 px) leaves the crops' corners dark
    assert covered[inner].all()
    # the weighted mean of a constant is the constant, wherever there is light
    np.testing.assert_allclose(stitched[covered], value, rtol=1e-4)


def test_weights_are_the_summed_probe_intensity_up_to_the_scan_edges():
    probe = curved_probe(N)
    intensity = np.abs(probe) ** 2
    intensity = intensity / intensity.max()
    positions = np.array([[32.0, 32.0], [40.0, 32.0], [32.0, 45.0], [75.0, 60.0]])  # integer: placed exactly
    shape = (100, 110)  # the first patch touches the top-left corner of the canvas
    expected = np.zeros(shape)
    for x, y in positions:
        r, c = int(y - N / 2), int(x - N / 2)
        expected[r : r + N, c : c + N] += intensity
    stitched, weights = stitch_patches(np.ones((4, N, N), np.complex64), positions, shape, probe=probe)
    np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-6)
    floor = WEIGHT_FLOOR * expected.max()
    assert np.array_equal(np.isfinite(stitched), expected >= floor)
    np.testing.assert_allclose(stitched[expected >= floor], 1.0, rtol=1e-5)


def test_weighted_stitching_of_true_patches_recovers_the_object():
    obj = lines_object(160, np.random.default_rng(1))
    positions = raster_scan(160, N, 6.0, 1.3, np.random.default_rng(2))
    stitched, _ = stitch_patches(extract_patches(obj, positions, N), positions, obj.shape, probe=curved_probe(N))
    y0, y1, x0, x1 = scanned_bbox(positions, N)
    inner = (slice(y0 + 8, y1 - 8), slice(x0 + 8, x1 - 8))
    amp_ref = np.abs(obj[inner])
    assert ssim(np.abs(stitched[inner]), amp_ref, float(np.ptp(amp_ref))) > 0.99


def test_batches_add_up_to_one_call_and_the_device_accumulators_match(monkeypatch):
    monkeypatch.setattr(stitch_module, "ADD_CHUNK", 16)  # the one call of 40 works in three parts
    rng = np.random.default_rng(3)
    positions = rng.uniform(N / 2 + 1, 200 - N / 2 - 1, size=(40, 2))
    patches = (rng.standard_normal((40, N, N)) + 1j * rng.standard_normal((40, N, N))).astype(np.complex64)
    whole, whole_w = stitch_patches(patches, positions, (200, 200), probe=curved_probe(N))
    stitcher = ObjectStitcher((200, 200), N, "probe_weighted", torch.as_tensor(curved_probe(N)))
    for start in range(0, 40, 7):
        stitcher.add(torch.as_tensor(patches[start : start + 7]), positions[start : start + 7])
    parts, parts_w = stitcher.finish()
    np.testing.assert_allclose(parts_w, whole_w, rtol=1e-5, atol=1e-6)
    finite = np.isfinite(whole)
    assert np.array_equal(finite, np.isfinite(parts))
    np.testing.assert_allclose(parts[finite], whole[finite], rtol=1e-4, atol=1e-5)


def test_probe_weighted_mode_needs_a_probe_and_modes_are_checked():
    with pytest.raises(ConfigError, match="probe"):
        ObjectStitcher((100, 100), N, "probe_weighted")
    with pytest.raises(ConfigError, match="stitching"):
        ObjectStitcher((100, 100), N, "median")
