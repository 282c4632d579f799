"""SSIM, PSNR, FRC on known cases, and the full evaluate_reconstruction pipeline."""

import json

import numpy as np
import pytest

from ptycho_torch.errors import ConfigError
from ptycho_torch.evaluate import apply_shift, evaluate_reconstruction, frc, psnr, ssim
from ptycho_torch.simulate.objects import lines_object


@pytest.fixture(scope="module")
def image():
    return np.abs(lines_object(96, np.random.default_rng(0))).astype(np.float64)


def test_ssim_identical_is_one_and_noise_is_low(image):
    assert ssim(image, image, data_range=np.ptp(image)) == pytest.approx(1.0, abs=1e-12)
    noise = np.random.default_rng(1).uniform(image.min(), image.max(), image.shape)
    assert ssim(image, noise, data_range=np.ptp(image)) < 0.1
    rng = np.random.default_rng(2)
    scores = [ssim(image, image + s * rng.standard_normal(image.shape), np.ptp(image)) for s in (0.01, 0.05, 0.2)]
    assert scores[0] > scores[1] > scores[2]


def test_ssim_of_a_constant_pair_follows_the_stabilisers():
    # two constants a, b: SSIM = (2ab + C1) / (a^2 + b^2 + C1), the luminance term only
    a, b, data_range = np.full((20, 20), 0.5), np.full((20, 20), 0.7), 1.0
    c1 = (0.01 * data_range) ** 2
    assert ssim(a, b, data_range) == pytest.approx((2 * 0.5 * 0.7 + c1) / (0.5**2 + 0.7**2 + c1))


def test_ssim_refuses_tiny_images_and_bad_range(image):
    with pytest.raises(ConfigError, match="window"):
        ssim(image[:5, :5], image[:5, :5], 1.0)
    with pytest.raises(ConfigError, match="data_range"):
        ssim(image, image, 0.0)


def test_psnr_of_a_known_mse():
    a = np.zeros((10, 10))
    assert psnr(a, a + 0.1, peak=1.0) == pytest.approx(20.0)
    assert psnr(a, a + 0.1, peak=2.0) == pytest.approx(20.0 + 20 * np.log10(2))
    assert psnr(a, a, peak=1.0) == float("inf")


def test_frc_identical_is_one_everywhere(image):
    result = frc(image, image)
    assert result.freq_cpp[0] == 0.0 and result.freq_cpp[-1] == pytest.approx(0.5)
    np.testing.assert_allclose(result.frc, 1.0, atol=1e-12)
    assert result.cutoff_cpp == pytest.approx(0.5)
    assert result.n_pixels.sum() <= image.size


def test_frc_halfbit_threshold_values():
    result = frc(np.ones((64, 64)), np.ones((64, 64)))
    n = result.n_pixels[10]
    expected = (0.2071 + 1.9102 / np.sqrt(n)) / (1.2071 + 0.9102 / np.sqrt(n))
    assert result.threshold[10] == pytest.approx(expected)


def test_frc_cutoff_lands_where_the_shared_band_ends():
    # b shares a's content below 0.2 cycles/pixel and has independent noise above it
    size, band = 128, 0.2
    rng = np.random.default_rng(3)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    low = k < band
    a = rng.standard_normal((size, size))
    noise = rng.standard_normal((size, size))
    b = np.fft.ifft2(np.fft.fft2(a) * low + np.fft.fft2(noise) * ~low).real
    result = frc(a, b, taper=0.1)
    assert result.cutoff_cpp == pytest.approx(band, abs=0.03)
    assert np.all(result.frc[(result.freq_cpp < band - 0.05) & (result.freq_cpp > 0)] > 0.8)
    assert np.abs(result.frc[result.freq_cpp > band + 0.05]).max() < 0.3
    independent = frc(a, noise)
    assert independent.cutoff_cpp < 0.1


def test_evaluate_reference_against_itself(image):
    obj = lines_object(96, np.random.default_rng(0))
    result = evaluate_reconstruction(obj, obj)
    assert result["amp_ssim"] == pytest.approx(1.0) and result["phase_ssim"] == pytest.approx(1.0)
    assert result["amp_psnr_db"] > 150 and result["amp_frc_cutoff_cpp"] == pytest.approx(0.5)
    assert result["amp_data_range"] == pytest.approx(np.ptp(np.abs(obj)[1:-1, 1:-1]), rel=1e-6)
    json.dumps(result)  # plain data


def test_evaluate_undoes_the_ambiguities_and_penalises_noise():
    obj = lines_object(128, np.random.default_rng(4)).astype(np.complex128)
    rows, cols = np.indices(obj.shape)
    ambiguous = 0.6 * apply_shift(obj, (0.7, -0.4)) * np.exp(1j * (2.0 + 0.03 * rows - 0.02 * cols))
    ambiguous[:10] = np.nan  # never scanned
    ambiguous[60, 60] = np.nan  # a hole inside the scanned area
    good = evaluate_reconstruction(ambiguous, obj, scanned_mask=rows >= 10)
    assert good["bbox"] == [10, 128, 0, 128] and good["n_uncovered"] == 1
    assert good["shift_yx_px"] == pytest.approx([0.7, -0.4], abs=0.05)
    assert good["amplitude_scale"] == pytest.approx(1 / 0.6, rel=0.01)
    assert good["amp_ssim"] > 0.95 and good["phase_ssim"] > 0.95
    weights = (rows >= 10).astype(np.float32)  # as stitch_patches' counts map
    assert evaluate_reconstruction(ambiguous, obj, weights=weights)["amp_ssim"] == good["amp_ssim"]
    noisy = obj + 0.1 * np.random.default_rng(5).standard_normal(obj.shape)
    bad = evaluate_reconstruction(noisy, obj)
    assert bad["amp_ssim"] < good["amp_ssim"] - 0.1
    assert bad["amp_psnr_db"] < good["amp_psnr_db"]
    assert bad["amp_frc_cutoff_cpp"] < good["amp_frc_cutoff_cpp"]


def test_evaluate_refuses_mismatched_shapes():
    with pytest.raises(ConfigError, match="objectGuess"):
        evaluate_reconstruction(np.ones((10, 10)), np.ones((12, 12)))
