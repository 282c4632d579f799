"""Registration: known sub-pixel shifts, phase offset and ramp, amplitude scale."""

import numpy as np
import pytest

from ptycho_torch.evaluate import (
    align_to_reference,
    apply_shift,
    find_shift,
    match_amplitude_scale,
    remove_phase_offset_and_ramp,
)
from ptycho_torch.simulate.objects import lines_object


@pytest.fixture(scope="module")
def obj():
    return lines_object(128, np.random.default_rng(0)).astype(np.complex128)


@pytest.mark.parametrize("shift", [(0.37, -0.62), (2.25, 1.8), (-4.6, 3.05)])
def test_known_subpixel_shift_is_found(obj, shift):
    reference = np.abs(obj)
    moving = apply_shift(reference, shift)  # non-periodic: reflect-padded Fourier shift
    found = find_shift(reference, moving)
    assert found == pytest.approx(shift, abs=0.05)


def test_periodic_shift_is_found_to_a_hundredth(obj):
    reference = np.abs(obj)
    ky, kx = np.fft.fftfreq(128)[:, None], np.fft.fftfreq(128)[None, :]
    moving = np.fft.ifft2(np.fft.fft2(reference) * np.exp(-2j * np.pi * (ky * 1.43 + kx * -0.71))).real
    assert find_shift(reference, moving, taper=0.0) == pytest.approx((1.43, -0.71), abs=0.011)


def test_sign_convention_with_an_integer_roll(obj):
    reference = np.abs(obj)
    moving = np.roll(reference, (3, -5), axis=(0, 1))  # moving(r) = reference(r - (3, -5))
    assert find_shift(reference, moving, upsample=1, taper=0.0) == (3.0, -5.0)
    assert find_shift(reference, moving) == pytest.approx((3.0, -5.0), abs=0.05)  # taper bias is small


def test_apply_shift_matches_roll_and_inverts(obj):
    np.testing.assert_allclose(apply_shift(obj, (2, -3))[10:-10, 10:-10],
                               np.roll(obj, (2, -3), axis=(0, 1))[10:-10, 10:-10], atol=1e-9)
    back = apply_shift(apply_shift(obj, (0.4, -1.3)), (-0.4, 1.3))
    np.testing.assert_allclose(back[8:-8, 8:-8], obj[8:-8, 8:-8], atol=0.02)


@pytest.mark.parametrize("offset, ramp_y, ramp_x", [(0.7, 0.05, -0.03), (3.0, -0.3, 0.45)])
def test_phase_offset_and_ramp_are_removed(obj, offset, ramp_y, ramp_x):
    rows, cols = np.indices(obj.shape)
    recon = obj * np.exp(1j * (offset + ramp_y * rows + ramp_x * cols))  # wraps many times
    corrected, info = remove_phase_offset_and_ramp(recon, obj)
    np.testing.assert_allclose(corrected, obj, atol=1e-5)
    assert info["phase_ramp_y_rad_per_px"] == pytest.approx(ramp_y, abs=1e-6)
    assert info["phase_ramp_x_rad_per_px"] == pytest.approx(ramp_x, abs=1e-6)
    assert np.angle(np.exp(1j * (info["phase_offset_rad"] - offset))) == pytest.approx(0.0, abs=1e-6)


def test_amplitude_scale_is_matched(obj):
    scaled, scale = match_amplitude_scale(2.5 * obj, obj)
    assert scale == pytest.approx(0.4)
    np.testing.assert_allclose(scaled, obj, atol=1e-12)


def test_align_to_reference_undoes_shift_phase_and_scale(obj):
    rows, cols = np.indices(obj.shape)
    recon = 1.8 * apply_shift(obj, (0.6, -1.2)) * np.exp(1j * (1.1 + 0.02 * rows - 0.01 * cols))
    aligned, reference, info = align_to_reference(recon, obj)
    assert info["shift_yx_px"] == pytest.approx([0.6, -1.2], abs=0.05)
    assert info["amplitude_scale"] == pytest.approx(1 / 1.8, rel=0.01)
    assert aligned.shape == reference.shape == (128 - 2 * info["margin_px"],) * 2
    inner = (slice(6, -6), slice(6, -6))
    assert np.abs(aligned[inner] - reference[inner]).mean() < 0.01
