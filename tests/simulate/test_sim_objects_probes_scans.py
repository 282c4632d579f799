"""Objects, probes and scan patterns of the simulator: ranges, shapes, determinism, analytics."""

import numpy as np
import pytest

from ptycho_torch.simulate.objects import dead_leaves_object, grf_object, lines_object
from ptycho_torch.simulate.probes import curved_probe, default_probe_diameter, disk_probe
from ptycho_torch.simulate.scans import random_scan, raster_grid_size, raster_scan, scan_limits

GENERATORS = [lines_object, grf_object, dead_leaves_object]


@pytest.mark.parametrize("generator", GENERATORS)
def test_objects_are_complex64_square_and_seeded(generator):
    a = generator(64, np.random.default_rng(5))
    b = generator(64, np.random.default_rng(5))
    c = generator(64, np.random.default_rng(6))
    assert a.shape == (64, 64) and a.dtype == np.complex64
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(np.isfinite(a))


def test_lines_amplitude_range_and_phase_derived_from_amplitude():
    obj = lines_object(96, np.random.default_rng(0), amplitude_min=0.3, phase_max_rad=1.2)
    amp, phase = np.abs(obj), np.angle(obj)
    assert amp.min() == pytest.approx(0.3, abs=1e-6) and amp.max() == pytest.approx(1.0, abs=1e-6)
    # phase = phase_max * t and amp = 0.3 + 0.7 t for the same texture t
    np.testing.assert_allclose(phase, 1.2 * (amp - 0.3) / 0.7, atol=1e-5)
    # lines are sparse features on a background: most pixels are darker than the middle
    assert np.median(amp) < 0.65


def _radial_slope(field: np.ndarray) -> float:
    """Log-log slope of the radially averaged power spectrum, fitted on mid frequencies."""
    size = field.shape[0]
    power = np.abs(np.fft.fft2(field - field.mean())) ** 2
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    ring = np.rint(k * size).astype(int)
    rings = np.arange(4, size // 2)
    mean_power = np.array([power[ring == r].mean() for r in rings])
    return float(np.polyfit(np.log(rings), np.log(mean_power), 1)[0])


@pytest.mark.parametrize("exponent", [-0.4, -2.0])
def test_grf_power_spectrum_follows_the_power_law(exponent):
    obj = grf_object(128, np.random.default_rng(1), exponent=exponent)
    # amplitude and phase are linear maps of their fields, so they share the spectrum's slope
    assert _radial_slope(np.abs(obj)) == pytest.approx(exponent, abs=0.25)
    assert _radial_slope(np.angle(obj)) == pytest.approx(exponent, abs=0.25)
    assert np.abs(obj).min() >= 0.5 - 1e-6 and np.abs(obj).max() <= 1.0 + 1e-6


def test_dead_leaves_ranges_and_piecewise_constant():
    obj = dead_leaves_object(96, np.random.default_rng(2), edge_sigma_px=0.0)
    amp, phase = np.abs(obj), np.angle(obj)
    assert amp.min() >= 0.6 - 1e-6 and amp.max() <= 1.1 + 1e-6
    assert phase.min() >= -np.pi - 1e-6 and phase.max() <= np.pi + 1e-6
    n_values = np.unique(np.round(amp, 6)).size
    assert 10 < n_values < amp.size // 20  # many shapes, each one flat
    smooth = np.abs(dead_leaves_object(96, np.random.default_rng(2), edge_sigma_px=0.8))
    assert smooth.min() >= 0.6 - 1e-6 and smooth.max() <= 1.1 + 1e-6  # the blur never overshoots


@pytest.mark.parametrize("N", [64, 128])
def test_disk_probe_is_centred_disk_of_requested_diameter(N):
    probe = disk_probe(N)
    amp = np.abs(probe)
    assert probe.shape == (N, N) and probe.dtype == np.complex64
    assert amp[N // 2, N // 2] == pytest.approx(1.0)
    assert np.allclose(np.angle(probe), 0.0)
    diameter = default_probe_diameter(N)
    assert (amp >= 0.5).sum() == pytest.approx(np.pi * (diameter / 2) ** 2, rel=0.06)
    rows, cols = np.indices(amp.shape)
    weight = amp**2 / (amp**2).sum()
    assert (weight * rows).sum() == pytest.approx(N // 2, abs=0.01)
    assert (weight * cols).sum() == pytest.approx(N // 2, abs=0.01)
    assert amp[0, :].max() < 1e-3 and amp[:, 0].max() < 1e-3  # nothing at the border


def test_curved_probe_has_disk_aperture_and_quadratic_phase():
    N, diameter, rim = 64, 28.0, 2.0 * np.pi
    curved = curved_probe(N, diameter_px=diameter, rim_phase_rad=rim)
    disk = disk_probe(N, diameter_px=diameter)
    np.testing.assert_allclose(np.abs(curved), np.abs(disk), atol=1e-6)
    c = N // 2
    for k in (1, 3, 5):
        expected = rim * k**2 / (diameter / 2) ** 2
        assert np.angle(curved[c, c + k] / curved[c, c]) == pytest.approx(expected, abs=1e-5)
        assert np.angle(curved[c - k, c] / curved[c, c]) == pytest.approx(expected, abs=1e-5)


def test_probe_rejects_bad_sizes():
    with pytest.raises(ValueError, match="diameter"):
        disk_probe(64, diameter_px=80)


def test_random_scan_stays_inside_limits_and_is_seeded():
    pos = random_scan(200, 64, 500, np.random.default_rng(3))
    low, high = scan_limits(200, 64)
    assert pos.shape == (500, 2) and pos.dtype == np.float64
    assert pos.min() >= low and pos.max() <= high and low >= 32.0
    assert np.array_equal(pos, random_scan(200, 64, 500, np.random.default_rng(3)))


def test_raster_scan_grid_spacing_and_jitter():
    pos = raster_scan(160, 64, 8.0, 0.0, np.random.default_rng(0))
    n_axis = raster_grid_size(160, 64, 8.0, 0.0)
    assert pos.shape == (n_axis**2, 2)
    xs, ys = np.unique(pos[:, 0]), np.unique(pos[:, 1])
    np.testing.assert_allclose(np.diff(xs), 8.0)
    np.testing.assert_allclose(np.diff(ys), 8.0)
    assert pos[1, 0] - pos[0, 0] == pytest.approx(8.0) and pos[1, 1] == pos[0, 1]  # x is the fast axis
    jittered = raster_scan(160, 64, 8.0, 1.5, np.random.default_rng(0))
    low, high = scan_limits(160, 64)
    assert jittered.min() >= low and jittered.max() <= high
    assert np.array_equal(jittered, raster_scan(160, 64, 8.0, 1.5, np.random.default_rng(0)))  # seeded
    # same node count as the unjittered grid shrunk by the jitter, each node moved by <= 1.5 px
    n_axis = raster_grid_size(160, 64, 8.0, 1.5)
    assert jittered.shape == (n_axis**2, 2)
    node = np.round((jittered - jittered.min(0)) / 8.0)
    residual = jittered - node * 8.0
    assert np.ptp(residual[:, 0]) <= 3.0 + 1e-9 and np.ptp(residual[:, 0]) > 1.0
    assert np.ptp(residual[:, 1]) <= 3.0 + 1e-9 and np.ptp(residual[:, 1]) > 1.0


def test_scan_rejects_object_too_small():
    with pytest.raises(ValueError, match="object_size"):
        random_scan(60, 64, 10, np.random.default_rng(0))
