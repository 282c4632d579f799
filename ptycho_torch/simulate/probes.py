"""Synthetic probes (illumination functions), ``(N, N)`` complex64, numpy only.

The probe is centred on pixel ``(N//2, N//2)``, the centre of a patch in
docs/conventions.md.  Amplitudes are scaled so that the brightest pixel is 1; the absolute
scale does not matter downstream because the diffraction is scaled to ``nphotons``.

* :func:`disk_probe`: an ideal (flat-phase) disk: the product of two 1-D Gaussian windows
  (a round 2-D Gaussian) is thresholded at half maximum, which gives a disk of the
  requested diameter, and the disk's edge is softened by a Gaussian blur.
* :func:`curved_probe`: the same aperture with a quadratic (defocus-like) phase
  ``rim_phase_rad * (r / R)**2``, as produced by a defocused zone plate.  The curved phase
  spreads the far field and makes gridsize-1 reconstruction much better posed.
"""

from __future__ import annotations

import numpy as np

from ptycho_torch.simulate._filters import gaussian_blur

__all__ = ["disk_probe", "curved_probe", "default_probe_diameter"]

_THRESHOLD = 0.5  # level at which the Gaussian is cut to form the disk


def default_probe_diameter(N: int) -> float:
    """Default probe diameter in pixels: ``0.45 * N`` (a bit less than N/2)."""
    return 0.45 * N


def _check(N: int, diameter_px: float, edge_sigma_px: float) -> None:
    if int(N) != N or N < 8:
        raise ValueError(f"probe size N must be an integer >= 8, got {N!r}")
    if not 0 < diameter_px <= N:
        raise ValueError(f"probe diameter must be in (0, N={N}] pixels, got {diameter_px!r}")
    if edge_sigma_px < 0:
        raise ValueError(f"probe edge sigma must be >= 0 pixels, got {edge_sigma_px!r}")


def _disk_aperture(N: int, diameter_px: float, edge_sigma_px: float) -> np.ndarray:
    """Soft-edged disk, real float64 ``(N, N)``, peak 1, centred on ``(N//2, N//2)``."""
    radius = diameter_px / 2.0
    # Gaussian std whose half-maximum contour is a circle of the requested radius.
    sigma = radius / np.sqrt(-2.0 * np.log(_THRESHOLD))
    axis = np.arange(N) - N // 2
    window = np.exp(-0.5 * (axis / sigma) ** 2)
    gaussian_2d = np.outer(window, window)
    disk = (gaussian_2d >= _THRESHOLD).astype(np.float64)
    soft = np.maximum(gaussian_blur(disk, edge_sigma_px), 0.0)  # drop FFT round-off below 0
    return soft / soft.max()


def disk_probe(N: int, diameter_px: float | None = None, edge_sigma_px: float = 1.0) -> np.ndarray:
    """Ideal disk probe with flat phase, ``(N, N)`` complex64, peak amplitude 1.

    ``diameter_px`` defaults to :func:`default_probe_diameter`; ``edge_sigma_px`` is the
    std (pixels) of the blur that softens the disk's edge (0 keeps it hard).
    """
    diameter_px = default_probe_diameter(N) if diameter_px is None else diameter_px
    _check(N, diameter_px, edge_sigma_px)
    return _disk_aperture(N, diameter_px, edge_sigma_px).astype(np.complex64)


def curved_probe(
    N: int,
    diameter_px: float | None = None,
    edge_sigma_px: float = 1.0,
    rim_phase_rad: float = 3.0 * np.pi,
) -> np.ndarray:
    """Disk aperture with a quadratic, defocus-like phase, ``(N, N)`` complex64.

    ``phase(r) = rim_phase_rad * (r / R)**2`` with ``R = diameter_px / 2``: zero at the
    centre, ``rim_phase_rad`` radians at the aperture's rim.  Keep the local spatial
    frequency at the rim, ``rim_phase_rad / (pi * R)`` cycles/pixel, well below 0.5 so the
    probe is not aliased (the defaults give about 0.21 at N = 64, half that at N = 128).
    """
    diameter_px = default_probe_diameter(N) if diameter_px is None else diameter_px
    _check(N, diameter_px, edge_sigma_px)
    axis = np.arange(N) - N // 2
    r2 = axis[:, None] ** 2 + axis[None, :] ** 2
    phase = rim_phase_rad * r2 / (diameter_px / 2.0) ** 2
    aperture = _disk_aperture(N, diameter_px, edge_sigma_px)
    return (aperture * np.exp(1j * phase)).astype(np.complex64)

