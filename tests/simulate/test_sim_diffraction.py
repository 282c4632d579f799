"""Patch extraction, far field and photon statistics of the simulator (analytic checks)."""

import numpy as np
import pytest

from ptycho_torch.simulate.diffraction import extract_patches, far_field_intensity, simulate_diffraction
from ptycho_torch.simulate.probes import disk_probe
from ptycho_torch.simulate.resample import lanczos_weights


def test_integer_positions_are_exact_slices():
    rng = np.random.default_rng(0)
    obj = (rng.standard_normal((80, 90)) + 1j * rng.standard_normal((80, 90))).astype(np.complex64)
    N = 32
    positions = np.array([[16.0, 16.0], [50.0, 40.0], [74.0, 64.0]])  # (x, y), at the limits too
    patches = extract_patches(obj, positions, N)
    for k, (x, y) in enumerate(positions.astype(int)):
        np.testing.assert_array_equal(patches[k], obj[y - N // 2 : y + N // 2, x - N // 2 : x + N // 2])


def test_subpixel_positions_sample_a_plane_wave():
    # obj(r, c) = exp(2 pi i (fy r + fx c)): band-limited, so the patch is known exactly
    fy, fx = 0.04, -0.07
    rows, cols = np.indices((96, 96))
    obj = np.exp(2j * np.pi * (fy * rows + fx * cols))
    positions = np.array([[40.3, 47.75], [48.5, 50.1], [55.9, 41.45]])
    N = 32
    patches = extract_patches(obj, positions, N)
    i, j = np.indices((N, N))
    for k, (x, y) in enumerate(positions):
        expected = np.exp(2j * np.pi * (fy * (y - N / 2 + i) + fx * (x - N / 2 + j)))
        np.testing.assert_allclose(patches[k], expected, atol=1e-2)  # Lanczos-4 passband ripple < 1%


def test_lanczos_weights_sum_to_one_and_are_exact_at_integers():
    w = lanczos_weights(np.array([0.0, 0.25, 0.5, 0.999]), radius=4)
    np.testing.assert_allclose(w.sum(1), 1.0)
    np.testing.assert_allclose(w[0], [0, 0, 0, 1, 0, 0, 0, 0], atol=1e-15)
    np.testing.assert_allclose(w[2], w[2][::-1])  # half a pixel: symmetric


def test_patch_outside_object_is_refused():
    obj = np.ones((64, 64), dtype=np.complex64)
    with pytest.raises(ValueError, match="scan position 1"):
        extract_patches(obj, np.array([[32.0, 32.0], [31.5, 32.0]]), 64)


def test_uniform_object_gives_the_probes_centred_far_field():
    N = 32
    psi = np.ones((1, N, N), dtype=np.complex64)
    intensity = far_field_intensity(psi)
    assert intensity[0, N // 2, N // 2] == pytest.approx(float(N) ** 4)
    intensity[0, N // 2, N // 2] = 0
    assert np.abs(intensity).max() < 1e-6


def test_far_field_obeys_parseval_and_ignores_a_global_phase():
    rng = np.random.default_rng(1)
    psi = rng.standard_normal((3, 16, 16)) + 1j * rng.standard_normal((3, 16, 16))
    intensity = far_field_intensity(psi)
    np.testing.assert_allclose(intensity.sum((1, 2)), 16 * 16 * (np.abs(psi) ** 2).sum((1, 2)))
    np.testing.assert_allclose(far_field_intensity(psi * np.exp(0.7j)), intensity, rtol=1e-10)


def test_noise_free_scale_matches_nphotons():
    obj = np.ones((96, 96), dtype=np.complex64)
    probe = disk_probe(64)
    positions = np.array([[48.0, 48.0], [47.5, 48.25]])
    amplitude, scale = simulate_diffraction(obj, probe, positions, 1e6, rng=None)
    assert amplitude.dtype == np.float32 and amplitude.shape == (2, 64, 64)
    assert (amplitude.astype(np.float64) ** 2).sum((1, 2)).mean() == pytest.approx(1e6, rel=1e-5)
    # a uniform object: every pattern is the probe's own far field, peaked at the centre
    assert np.unravel_index(np.argmax(amplitude[0]), (64, 64)) == (32, 32)


def test_poisson_counts_have_poisson_statistics():
    rng = np.random.default_rng(2)
    obj = np.exp(0.3j * rng.standard_normal((80, 80))).astype(np.complex64)
    probe = disk_probe(64)
    positions = rng.uniform(33, 47, size=(40, 2))
    nphotons = 2e4
    noisy, scale = simulate_diffraction(obj, probe, positions, nphotons, np.random.default_rng(3))
    clean, scale_clean = simulate_diffraction(obj, probe, positions, nphotons, rng=None)
    assert scale == pytest.approx(scale_clean)
    counts = noisy.astype(np.float64) ** 2
    assert np.all(np.abs(counts - np.round(counts)) <= 1e-4 * np.maximum(counts, 1))  # integer counts (float32 sqrt)
    expected = clean.astype(np.float64) ** 2
    assert counts.sum((1, 2)).mean() == pytest.approx(nphotons, rel=0.01)
    bright = expected > 20  # normal approximation holds: (k - lambda) / sqrt(lambda) ~ N(0, 1)
    z = (counts[bright] - expected[bright]) / np.sqrt(expected[bright])
    assert abs(z.mean()) < 0.1 and z.std() == pytest.approx(1.0, abs=0.1)
    again, _ = simulate_diffraction(obj, probe, positions, nphotons, np.random.default_rng(3))
    assert np.array_equal(noisy, again)
