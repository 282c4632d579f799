"""Fixtures for the data tests: small random scans written on the fly (n ~ 24, N = 64)."""

from __future__ import annotations

import numpy as np
import pytest


def make_scan_arrays(n: int = 24, size: int = 64, seed: int = 0, grid: bool = False) -> dict[str, np.ndarray]:
    """A contract-valid scan: amplitudes >= 0 (n, N, N) float32, complex64 probe, float64 coords.

    With ``grid=True`` positions lie on a jittered square raster (spacing 8 px) for grouping tests.
    """
    rng = np.random.default_rng(seed)
    diffraction = (rng.random((n, size, size)) * 3.0).astype(np.float32)
    probe = (rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size))).astype(np.complex64)
    if grid:
        side = int(np.ceil(np.sqrt(n)))
        gy, gx = np.divmod(np.arange(n), side)
        x = 40.0 + 8.0 * gx + rng.uniform(-0.5, 0.5, n)
        y = 40.0 + 8.0 * gy + rng.uniform(-0.5, 0.5, n)
    else:
        x = rng.uniform(40.0, 90.0, n)
        y = rng.uniform(40.0, 90.0, n)
    return {"diffraction": diffraction, "probeGuess": probe, "xcoords": x, "ycoords": y}


@pytest.fixture
def scan_arrays():
    """Factory: ``scan_arrays(n=24, size=64, seed=0, grid=False)`` -> dict of arrays."""
    return make_scan_arrays


@pytest.fixture(params=[".npz", ".h5"])
def suffix(request):
    """Run a test once per file format."""
    return request.param
