"""The registration/FRC taper is scipy's Tukey window: same values as the formula it replaced."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_torch.evaluate.registration import tukey_window_2d


def _handwritten_tukey(length: int, alpha: float) -> np.ndarray:
    """The window the evaluation used before scipy's (kept here as the reference)."""
    if alpha <= 0 or length < 3:
        return np.ones(length)
    x = np.arange(length) / (length - 1)
    edge = alpha / 2.0
    window = np.ones(length)
    low, high = x < edge, x > 1.0 - edge
    window[low] = 0.5 * (1.0 - np.cos(np.pi * x[low] / edge))
    window[high] = 0.5 * (1.0 - np.cos(np.pi * (1.0 - x[high]) / edge))
    return window


@pytest.mark.parametrize("taper", [0.0, 0.05, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(1, 5), (2, 7), (3, 3), (64, 64), (97, 130), (256, 255)])
def test_scipy_tukey_equals_the_handwritten_window(shape, taper):
    expected = np.outer(_handwritten_tukey(shape[0], taper), _handwritten_tukey(shape[1], taper))
    np.testing.assert_allclose(tukey_window_2d(*shape, taper), expected, rtol=0, atol=1e-12)


def test_the_window_tapers():
    w = tukey_window_2d(64, 64, 0.25)
    assert w[32, 32] == 1.0 and w[0, 0] == 0.0 and 0 < w[32, 3] < 1
