"""SSIM, PSNR and the sub-pixel registration agree with scikit-image on the same images.

The settings under which they agree (ours -> scikit-image):

* SSIM: ``ssim(a, b, data_range)`` == ``structural_similarity(a, b, data_range=data_range,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` (scikit-image then uses
  an 11-tap window, ``K1 = 0.01``, ``K2 = 0.03``, and averages over the positions where the
  window lies inside the image, as ours does).  Agreement to 1e-10.
* PSNR: ``psnr(reference, test, peak)`` == ``peak_signal_noise_ratio(reference, test,
  data_range=peak)``.  Agreement to 1e-10 dB.
* Registration: ``find_shift(reference, moving, upsample=100, taper=0.0)`` ==
  ``-phase_cross_correlation(reference, moving, upsample_factor=100)[0]`` within 1/100 px:
  ours returns how far ``moving`` is moved from ``reference``, scikit-image the shift that
  moves it back.  The agreement holds on circularly shifted images and on crops (where
  neither is exact).  Our default ``taper=0.25`` (a Tukey window on both images) has no
  scikit-image counterpart, so it is not compared.
"""

from __future__ import annotations

import numpy as np
import pytest
import skimage.metrics as skimage_metrics  # a test dependency (pyproject.toml, the test extra)
import skimage.registration as skimage_registration

from ptycho_torch.evaluate.metrics import psnr, ssim
from ptycho_torch.evaluate.registration import find_shift


def _textured(seed: int, shape=(96, 112)) -> np.ndarray:
    """A smooth random texture in [0, 1] (low-pass filtered noise)."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.standard_normal(shape))
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    image = np.fft.ifft2(spectrum * np.exp(-((ky**2 + kx**2) / (2 * 0.08**2)))).real
    return (image - image.min()) / (image.max() - image.min())


def _fourier_shift(image: np.ndarray, shift_yx: tuple[float, float]) -> np.ndarray:
    """``out(r) = image(r - shift)``, circular."""
    ky = np.fft.fftfreq(image.shape[0])[:, None]
    kx = np.fft.fftfreq(image.shape[1])[None, :]
    return np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (ky * shift_yx[0] + kx * shift_yx[1]))).real


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_agrees_with_skimage(seed):
    reference = _textured(seed)
    rng = np.random.default_rng(100 + seed)
    for noisy in (reference + 0.05 * rng.standard_normal(reference.shape), 0.7 * reference + 0.1, _textured(seed + 50)):
        for data_range in (1.0, float(reference.max() - reference.min()), 2 * np.pi):
            ours = ssim(reference, noisy, data_range)
            theirs = skimage_metrics.structural_similarity(
                reference, noisy, data_range=data_range, gaussian_weights=True, sigma=1.5,
                use_sample_covariance=False)
            assert ours == pytest.approx(theirs, abs=1e-10)
    assert ssim(reference, reference, 1.0) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psnr_agrees_with_skimage(seed):
    reference = _textured(seed)
    noisy = reference + 0.03 * np.random.default_rng(seed).standard_normal(reference.shape)
    for peak in (1.0, float(reference.max()), np.pi):
        theirs = skimage_metrics.peak_signal_noise_ratio(reference, noisy, data_range=peak)
        assert psnr(reference, noisy, peak) == pytest.approx(theirs, abs=1e-10)


@pytest.mark.parametrize("shift_yx", [(3.37, -5.62), (-0.41, 0.18), (12.0, 7.5), (-7.91, -2.26)])
def test_registration_agrees_with_skimage_phase_cross_correlation(shift_yx):
    reference = _textured(7)
    moving = _fourier_shift(reference, shift_yx)  # circular shift: the exact answer is known
    ours = np.asarray(find_shift(reference, moving, upsample=100, taper=0.0))
    theirs = -np.asarray(skimage_registration.phase_cross_correlation(
        reference, moving, upsample_factor=100, normalization=None)[0])
    np.testing.assert_allclose(ours, theirs, atol=0.011)
    np.testing.assert_allclose(ours, shift_yx, atol=0.011)
    big = _textured(8, (192, 208))  # crops of a larger shifted image: not periodic
    crop = (slice(48, 144), slice(48, 160))
    reference, moving = big[crop], _fourier_shift(big, shift_yx)[crop]
    ours = np.asarray(find_shift(reference, moving, upsample=100, taper=0.0))
    theirs = -np.asarray(skimage_registration.phase_cross_correlation(
        reference, moving, upsample_factor=100, normalization=None)[0])
    np.testing.assert_allclose(ours, theirs, atol=0.011)
