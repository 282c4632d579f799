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

:func:`diffraction_chunks` does stage 3 in bounded memory for scans of any length: the
scale depends on every pattern, so a first pass computes only each pattern's total
intensity, and a second pass recomputes the intensities chunk by chunk, draws the noise and
yields each chunk.  The noise is drawn in the same order as a whole-array draw, and each
pattern's numbers do not depend on the chunking, so the chunks concatenate to exactly the
whole-array result (the patterns are recomputed once, the price of flat memory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ptycho_torch.simulate.resample import DEFAULT_KERNEL_RADIUS, lanczos_weights, resample_windows

__all__ = ["extract_patches", "far_field_intensity", "simulate_diffraction", "diffraction_chunks", "chunk_patterns"]

_EXTRACT_CHUNK = 256
"""Patterns cut per step inside :func:`extract_patches`; stream chunks are multiples of it."""

_CHUNK_PIXELS = 1 << 20
"""About this many detector pixels per streamed chunk (256 patterns at N=64, ~50 MB of work arrays:
as fast per pattern as larger chunks, and a small, steady peak whatever the scan length)."""


def extract_patches(
    obj: np.ndarray, positions_xy: np.ndarray, N: int, kernel_radius: int = DEFAULT_KERNEL_RADIUS, chunk: int = _EXTRACT_CHUNK
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


def chunk_patterns(N: int) -> int:
    """Patterns per streamed chunk for ``N x N`` patterns: a multiple of the patch-cutting step."""
    per_chunk = max(1, _CHUNK_PIXELS // (N * N))
    return max(_EXTRACT_CHUNK, per_chunk // _EXTRACT_CHUNK * _EXTRACT_CHUNK)


def _check_inputs(probe: np.ndarray, nphotons: float) -> int:
    N = probe.shape[-1]
    if probe.shape != (N, N):
        raise ValueError(f"probe must be square (N, N), got shape {probe.shape}")
    if not nphotons > 0:
        raise ValueError(f"nphotons must be > 0, got {nphotons}")
    return N


def _intensity(obj: np.ndarray, probe: np.ndarray, positions_xy: np.ndarray) -> np.ndarray:
    return far_field_intensity(extract_patches(obj, positions_xy, probe.shape[-1]) * probe[None])


def diffraction_chunks(
    obj: np.ndarray,
    probe: np.ndarray,
    positions_xy: np.ndarray,
    nphotons: float,
    rng: np.random.Generator | None,
    *,
    chunk: int | None = None,
    on_chunk: Callable[[str, int, int], None] | None = None,
) -> tuple[float, Iterator[np.ndarray]]:
    """The intensity scale and an iterator over noisy amplitude chunks ``(k, N, N)`` float32.

    Same numbers as :func:`simulate_diffraction` (concatenate the chunks), in memory bounded
    by ``chunk`` patterns (default :func:`chunk_patterns`; a multiple of 256 keeps the patch
    cutting identical).  The first pass (the scale) runs before this returns; the noise is
    drawn from ``rng`` as the iterator is consumed, so consume it fully before drawing from
    ``rng`` again.  ``on_chunk(stage, done, total)`` is called after each chunk of each pass
    (stage ``"scale"`` or ``"noise"``), e.g. to drive a progress bar.
    """
    N = _check_inputs(probe, nphotons)
    positions_xy = np.asarray(positions_xy, dtype=np.float64)
    n = positions_xy.shape[0]
    step = chunk_patterns(N) if chunk is None else int(chunk)
    if step < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    starts = range(0, n, step)
    totals = np.empty(n, dtype=np.float64)
    for start in starts:
        stop = min(start + step, n)
        totals[start:stop] = _intensity(obj, probe, positions_xy[start:stop]).sum(axis=(-2, -1))
        if on_chunk is not None:
            on_chunk("scale", stop, n)
    mean_total = float(totals.mean())
    if mean_total <= 0:
        raise ValueError("the exit waves are all zero (empty probe or object); nothing to diffract")
    scale = nphotons / mean_total

    def noisy() -> Iterator[np.ndarray]:
        for start in starts:
            stop = min(start + step, n)
            expected = _intensity(obj, probe, positions_xy[start:stop]) * scale
            counts = expected if rng is None else rng.poisson(expected).astype(np.float64)
            yield np.sqrt(counts).astype(np.float32)
            if on_chunk is not None:
                on_chunk("noise", stop, n)

    return scale, noisy()


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
    The returned amplitude is ``sqrt(counts)``.  Holds the whole stack; for long scans use
    :func:`diffraction_chunks`.
    """
    N = _check_inputs(probe, nphotons)
    scale, chunks = diffraction_chunks(obj, probe, positions_xy, nphotons, rng)
    out = np.empty((np.asarray(positions_xy).shape[0], N, N), dtype=np.float32)
    start = 0
    for block in chunks:
        out[start:start + block.shape[0]] = block
        start += block.shape[0]
    return out, scale
