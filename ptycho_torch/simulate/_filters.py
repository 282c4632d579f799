"""Small numpy image filters shared by the object and probe generators.

All filters here are *periodic* (computed with FFTs): content leaving one edge comes back
at the opposite edge.  That is harmless for synthetic textures and keeps them fast and
exact; callers that need non-periodic behaviour pad first.
"""

from __future__ import annotations

import numpy as np


def gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Blur a real or complex ``(H, W)`` image with a periodic Gaussian of std ``sigma_px``.

    The kernel is the *sampled* Gaussian ``exp(-d**2 / (2 sigma**2))`` over the circular
    pixel distance ``d``, normalised to sum 1, applied as a circular convolution via FFTs.
    Being positive, it never overshoots: the output stays within the input's value range
    (unlike a Gaussian transfer function truncated at Nyquist), and the mean is preserved.
    ``sigma_px <= 0`` returns a copy.
    """
    if sigma_px <= 0:
        return np.array(image, copy=True)
    h, w = image.shape[-2:]
    transfer = np.outer(_circular_gaussian_spectrum(h, sigma_px), _circular_gaussian_spectrum(w, sigma_px))
    out = np.fft.ifft2(np.fft.fft2(image) * transfer)
    return out if np.iscomplexobj(image) else out.real


def _circular_gaussian_spectrum(length: int, sigma_px: float) -> np.ndarray:
    """DFT of a 1-D sampled Gaussian over circular distances, normalised to sum 1 (real)."""
    idx = np.arange(length)
    distance = np.minimum(idx, length - idx)
    kernel = np.exp(-0.5 * (distance / sigma_px) ** 2)
    return np.fft.fft(kernel / kernel.sum()).real


def rescale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``values`` linearly so that their min goes to ``low`` and their max to ``high``.

    A constant input maps to the midpoint ``(low + high) / 2``.
    """
    vmin, vmax = float(values.min()), float(values.max())
    if vmax - vmin <= 0:
        return np.full_like(values, 0.5 * (low + high), dtype=np.float64)
    return low + (high - low) * (values - vmin) / (vmax - vmin)
