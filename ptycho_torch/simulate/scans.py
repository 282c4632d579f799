"""Scan patterns: where the probe sits on the object, as ``(n, 2)`` float64 ``(x, y)`` pixels.

``x`` is the column and ``y`` the row of the object grid (docs/conventions.md).  Every
position keeps the whole ``N x N`` patch inside the object with a sub-pixel safety margin:
``N/2 + margin_px <= x, y <= object_size - N/2 - margin_px``.

Raster scans are row-major: ``y`` is the slow axis, ``x`` the fast one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["scan_limits", "random_scan", "raster_scan", "raster_grid_size", "DEFAULT_MARGIN_PX", "SCAN_KINDS"]

DEFAULT_MARGIN_PX = 1.0
"""Extra distance (pixels) kept between a patch and the object edge, for sub-pixel reads."""


def scan_limits(object_size: int, N: int, margin_px: float = DEFAULT_MARGIN_PX) -> tuple[float, float]:
    """Smallest and largest allowed coordinate (pixels, same for x and y).

    Raises ``ValueError`` when the object is too small to hold one patch.
    """
    low = N / 2.0 + margin_px
    high = object_size - N / 2.0 - margin_px
    if high < low:
        raise ValueError(
            f"object_size {object_size} cannot hold an N={N} patch with a {margin_px} px margin; "
            f"need object_size >= {int(np.ceil(N + 2 * margin_px))}"
        )
    return low, high


def random_scan(
    object_size: int, N: int, n: int, rng: np.random.Generator, margin_px: float = DEFAULT_MARGIN_PX
) -> np.ndarray:
    """``n`` positions drawn uniformly in the allowed square, ``(n, 2)`` float64 ``(x, y)``."""
    if n < 1:
        raise ValueError(f"number of scan positions must be >= 1, got {n}")
    low, high = scan_limits(object_size, N, margin_px)
    return rng.uniform(low, high, size=(n, 2))


def raster_grid_size(
    object_size: int, N: int, step_px: float, jitter_px: float, margin_px: float = DEFAULT_MARGIN_PX
) -> int:
    """Number of raster nodes per axis (the scan has its square): see :func:`raster_scan`."""
    low, high = scan_limits(object_size, N, margin_px)
    span = high - low - 2.0 * jitter_px
    if span < 0:
        raise ValueError(f"jitter {jitter_px} px is larger than the scannable half-width {(high - low) / 2:.1f} px")
    return int(np.floor(span / step_px + 1e-9)) + 1


def raster_scan(
    object_size: int,
    N: int,
    step_px: float,
    jitter_px: float,
    rng: np.random.Generator,
    margin_px: float = DEFAULT_MARGIN_PX,
) -> np.ndarray:
    """Regular grid with spacing ``step_px`` plus uniform jitter, ``(n, 2)`` float64 ``(x, y)``.

    The grid is centred in the allowed square shrunk by ``jitter_px`` on each side, so a
    jitter drawn uniformly in ``[-jitter_px, jitter_px]`` (independently for x and y) never
    leaves the allowed square and never needs clipping.  ``n`` is the number of grid nodes
    that fit: ``n_axis = floor((high - low - 2 * jitter_px) / step_px) + 1`` per axis.
    """
    if step_px <= 0:
        raise ValueError(f"raster step must be > 0 pixels, got {step_px}")
    if jitter_px < 0:
        raise ValueError(f"raster jitter must be >= 0 pixels, got {jitter_px}")
    low, high = scan_limits(object_size, N, margin_px)
    span = high - low - 2.0 * jitter_px
    n_axis = raster_grid_size(object_size, N, step_px, jitter_px, margin_px)
    start = low + jitter_px + (span - (n_axis - 1) * step_px) / 2.0
    axis = start + step_px * np.arange(n_axis)
    ys, xs = np.meshgrid(axis, axis, indexing="ij")
    positions = np.stack([xs.ravel(), ys.ravel()], axis=1)
    if jitter_px > 0:
        positions = positions + rng.uniform(-jitter_px, jitter_px, size=positions.shape)
    return positions


SCAN_KINDS = ("random", "raster")
"""Names of the scan patterns :func:`ptycho_torch.simulate.simulate.simulate_scan` knows."""
