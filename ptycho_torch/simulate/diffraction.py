"""From object, probe and scan to noisy diffraction amplitudes (numpy only).

Stages, in order:

1. :func:`extract_patches`: the object patch seen at each scan position, by separable
   **Lanczos-4 interpolation** (windowed sinc; exact at integer positions; see
   :mod:`ptycho_torch.simulate.resample` for why not bilinear).  Following
   docs/conventions.md, ``patch[i, j] = obj(y - N/2 + i, x - N/2 + j)``.
2. :func:`far_field_intensity`: ``I = fftshift(|FFT2(patch * probe)|**2)``, zero frequency at
   pixel ``(N//2, N//2)``, the same centring as the model's far field.
3. :func:`simulate_diffraction`: scale ``I`` so that the mean over patterns of ``sum_hw I``
   equals ``nphotons``, draw Poisson counts, return ``sqrt(counts)`` as float32 amplitude.
"""

from __future__ import annotations

import numpy as np

from ptycho_torch.simulate.resample import DEFAULT_KERNEL_RADIUS, lanczos_weights, resample_windows

__all__ = ["extract_patches", "far_field_intensity", "simulate_diffraction"]


def extract_patches(
    obj: np.ndarray, positions_xy: np.ndarray, N: int, kernel_radius: int = DEFAULT_KERNEL_RADIUS, chunk: int = 256
) -> np.ndarray:
    """Patches ``(n, N, N)`` complex64 of ``obj (H, W)`` centred at ``positions_xy (n, 2)``.

    ``patch[i, j] = obj(y - N/2 + i, x - N/2 + j)``, read by separable Lanczos interpolation
    (:mod:`ptycho_torch.simulate.resample`; exact at integer positions).  Every sample must lie
    inside the object (``0 <= y - N/2`` and ``y + N/2 - 1 <= H - 1``, same for x with W), else
    ``ValueError`` names the first offending position.  Kernel taps that reach past the edge
    read the edge pixel.
    """
    obj = np.asarray(obj)
    positions_xy = np.asarray(positions_xy, dtype=np.float64)
    if obj.ndim != 2:
        raise ValueError(f"object must be 2-D (H, W), got shape {obj.shape}")
    if positions_xy.ndim != 2 or positions_xy.shape[1] != 2:
        raise ValueError(f"positions must be (n, 2) (x, y), got shape {positions_xy.shape}")
    height, width = obj.shape
    row_start = positions_xy[:, 1] - N / 2.0  # object row of patch row 0
    col_start = positions_xy[:, 0] - N / 2.0
    bad = (row_start < 0) | (row_start + N - 1 > height - 1) | (col_start < 0) | (col_start + N - 1 > width - 1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"scan position {k} (x={positions_xy[k, 0]:.3f}, y={positions_xy[k, 1]:.3f}) puts an N={N} patch "
            f"outside the {height}x{width} object; positions must stay >= N/2 from the edges"
        )
    r0, c0 = np.floor(row_start).astype(np.int64), np.floor(col_start).astype(np.int64)
    weights_y = lanczos_weights(row_start - r0, kernel_radius)
    weights_x = lanczos_weights(col_start - c0, kernel_radius)
    reach = np.arange(-kernel_radius + 1, N + kernel_radius)  # window rows/cols around the patch
    out = np.empty((positions_xy.shape[0], N, N), dtype=np.complex64)
    for start in range(0, positions_xy.shape[0], chunk):
        sel = slice(start, start + chunk)
        rows = np.clip(r0[sel, None] + reach, 0, height - 1)
        cols = np.clip(c0[sel, None] + reach, 0, width - 1)
        windows = obj[rows[:, :, None], cols[:, None, :]]
        out[sel] = resample_windows(windows, weights_y[sel], weights_x[sel])
    return out


def far_field_intensity(exit_waves: np.ndarray) -> np.ndarray:
    """Centred far-field intensity ``fftshift(|FFT2(psi)|**2)`` of ``(..., N, N)`` waves, float64.

    No normalisation is applied (by Parseval, ``sum I = N*N * sum |psi|**2``); callers scale.
    """
    spectrum = np.fft.fft2(exit_waves.astype(np.complex128), axes=(-2, -1))
    return np.fft.fftshift(np.abs(spectrum) ** 2, axes=(-2, -1))


def simulate_diffraction(
    obj: np.ndarray,
    probe: np.ndarray,
    positions_xy: np.ndarray,
    nphotons: float,
    rng: np.random.Generator | None,
) -> tuple[np.ndarray, float]:
    """Noisy diffraction amplitudes ``(n, N, N)`` float32 and the intensity scale applied.

    ``counts ~ Poisson(scale * I)`` with ``scale = nphotons / mean_n(sum_hw I)``, so the
    expected total count per pattern, averaged over patterns, is ``nphotons``.  With
    ``rng=None`` no noise is drawn and the amplitude is ``sqrt(scale * I)`` (for tests).
    The returned amplitude is ``sqrt(counts)``.
    """
    N = probe.shape[-1]
    if probe.shape != (N, N):
        raise ValueError(f"probe must be square (N, N), got shape {probe.shape}")
    if not nphotons > 0:
        raise ValueError(f"nphotons must be > 0, got {nphotons}")
    patches = extract_patches(obj, positions_xy, N)
    intensity = far_field_intensity(patches * probe[None])
    mean_total = float(intensity.sum(axis=(-2, -1)).mean())
    if mean_total <= 0:
        raise ValueError("the exit waves are all zero (empty probe or object); nothing to diffract")
    scale = nphotons / mean_total
    expected = intensity * scale
    counts = expected if rng is None else rng.poisson(expected).astype(np.float64)
    return np.sqrt(counts).astype(np.float32), scale
