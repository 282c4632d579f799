"""Synthetic complex objects for simulated ptychography scans (numpy only).

Every generator takes the object side length ``size`` (pixels) and a
``numpy.random.Generator`` and returns a ``complex64`` array of shape ``(size, size)``:
``amplitude * exp(1j * phase)``.  The same generator state gives the same object.

* :func:`lines_object`: random line segments, blurred at several scales; the phase is
  derived from the amplitude (a thicker or denser region is also a stronger phase shifter).
* :func:`grf_object`: Gaussian random fields with a power-law power spectrum
  ``P(k) ~ k**exponent`` (default ``k**-0.4``), independent fields for amplitude and phase.
* :func:`dead_leaves_object`: occluding random disks and rotated rectangles with radii drawn
  from ``p(r) ~ r**-3``; each shape has one amplitude in ``[0.6, 1.1]`` and one phase in
  ``[-pi, pi]``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from ptycho_torch.simulate._filters import gaussian_blur, rescale

__all__ = ["lines_object", "grf_object", "dead_leaves_object", "OBJECT_GENERATORS"]

# Blur scales (pixels) whose sum gives the lines their soft multi-scale profile.
_LINE_BLUR_SIGMAS_PX = (0.5, 1.0, 2.0, 4.0)


def _check_size(size: int) -> None:
    if int(size) != size or size < 8:
        raise ValueError(f"object size must be an integer >= 8 pixels, got {size!r}")


def _to_complex(amplitude: np.ndarray, phase: np.ndarray) -> np.ndarray:
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def lines_object(
    size: int,
    rng: np.random.Generator,
    n_lines: int = 400,
    amplitude_min: float = 0.3,
    phase_max_rad: float = np.pi / 2,
) -> np.ndarray:
    """Random line segments blurred at several scales, ``(size, size)`` complex64.

    Each of the ``n_lines`` segments starts at a uniform random point, has a uniform
    random direction, a length uniform in ``[size/16, size/2]`` and a weight in
    ``[0.5, 1]``.  The rasterised segments are blurred with Gaussians of several widths
    (0.5 to 4 px) and summed; the result ``t`` is scaled to ``[0, 1]``.  Then
    ``amplitude = amplitude_min + (1 - amplitude_min) * t`` (so in ``[amplitude_min, 1]``)
    and ``phase = phase_max_rad * t`` (radians, derived from the amplitude).
    """
    _check_size(size)
    start = rng.uniform(0.0, size, size=(n_lines, 2))
    angle = rng.uniform(0.0, np.pi, size=n_lines)
    length = rng.uniform(size / 16.0, size / 2.0, size=n_lines)
    weight = rng.uniform(0.5, 1.0, size=n_lines)

    # Sample every segment at ~0.5 px spacing (vectorised over one flat list of points).
    n_steps = np.ceil(2.0 * length).astype(int) + 1
    line_id = np.repeat(np.arange(n_lines), n_steps)
    first = np.cumsum(n_steps) - n_steps
    t = (np.arange(line_id.size) - first[line_id]) / (n_steps[line_id] - 1)
    direction = np.stack([np.sin(angle), np.cos(angle)], axis=1)  # (dy, dx)
    points = start[line_id] + (t * length[line_id])[:, None] * direction[line_id]
    rows = np.floor(points[:, 0]).astype(int)
    cols = np.floor(points[:, 1]).astype(int)
    inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    canvas = np.bincount(
        rows[inside] * size + cols[inside], weights=0.5 * weight[line_id][inside], minlength=size * size
    ).reshape(size, size)

    texture = functools.reduce(np.add, (gaussian_blur(canvas, s) for s in _LINE_BLUR_SIGMAS_PX))
    texture = rescale(texture, 0.0, 1.0)
    amplitude = amplitude_min + (1.0 - amplitude_min) * texture
    return _to_complex(amplitude, phase_max_rad * texture)


def _power_law_field(size: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Real zero-mean field whose power spectrum is ``|k|**exponent`` (k in cycles/px)."""
    noise = rng.standard_normal((size, size))
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    k = np.hypot(fy, fx)
    k[0, 0] = 1.0
    amplitude_spectrum = k ** (exponent / 2.0)
    amplitude_spectrum[0, 0] = 0.0  # zero mean
    return np.fft.ifft2(np.fft.fft2(noise) * amplitude_spectrum).real


def grf_object(
    size: int,
    rng: np.random.Generator,
    exponent: float = -0.4,
    amplitude_range: tuple[float, float] = (0.5, 1.0),
    phase_max_rad: float = np.pi / 2,
) -> np.ndarray:
    """Gaussian-random-field object, ``(size, size)`` complex64.

    Two independent real fields with power spectrum ``P(k) ~ k**exponent`` (``exponent``
    ``-0.4`` by default, as in the published studies; more negative is smoother) are
    scaled min-to-max onto ``amplitude_range`` and ``[-phase_max_rad, phase_max_rad]``.
    """
    _check_size(size)
    amplitude = rescale(_power_law_field(size, rng, exponent), *amplitude_range)
    phase = rescale(_power_law_field(size, rng, exponent), -phase_max_rad, phase_max_rad)
    return _to_complex(amplitude, phase)


def _radii_power_law(rng: np.random.Generator, n: int, r_min: float, r_max: float) -> np.ndarray:
    """Radii with density ``p(r) ~ r**-3`` on ``[r_min, r_max]`` (inverse-CDF sampling)."""
    u = rng.uniform(0.0, 1.0, size=n)
    a, b = r_min**-2, r_max**-2
    return (a - u * (a - b)) ** -0.5


def dead_leaves_object(
    size: int,
    rng: np.random.Generator,
    n_shapes: int | None = None,
    amplitude_range: tuple[float, float] = (0.6, 1.1),
    edge_sigma_px: float = 0.5,
) -> np.ndarray:
    """Dead-leaves object: occluding random shapes, ``(size, size)`` complex64.

    ``n_shapes`` disks or rotated rectangles (default: enough to cover the canvas about
    four times) are painted one over the other.  Radii follow ``p(r) ~ r**-3`` between
    2 px and ``size/6``.  Each shape has a uniform amplitude in ``amplitude_range`` and a
    uniform phase in ``[-pi, pi]``.  Amplitude and phase maps are then softened separately
    by a Gaussian of ``edge_sigma_px`` (anti-aliasing), which keeps both in their ranges.
    """
    _check_size(size)
    r_min, r_max = 2.0, max(size / 6.0, 3.0)
    if n_shapes is None:
        mean_area = np.pi * 2.0 * np.log(r_max / r_min) / (r_min**-2 - r_max**-2)
        n_shapes = int(np.ceil(4.0 * size * size / mean_area))
    amplitude = np.full((size, size), rng.uniform(*amplitude_range))
    phase = np.full((size, size), rng.uniform(-np.pi, np.pi))

    radii = _radii_power_law(rng, n_shapes, r_min, r_max)
    centres = rng.uniform(0.0, size, size=(n_shapes, 2))
    is_disk = rng.uniform(size=n_shapes) < 0.5
    angles = rng.uniform(0.0, np.pi, size=n_shapes)
    aspects = rng.uniform(0.5, 2.0, size=n_shapes)
    amps = rng.uniform(*amplitude_range, size=n_shapes)
    phases = rng.uniform(-np.pi, np.pi, size=n_shapes)
    for i in range(n_shapes):
        cy, cx, r = centres[i, 0], centres[i, 1], radii[i]
        reach = r * (max(aspects[i], 1.0 / aspects[i]) if not is_disk[i] else 1.0) * 1.5
        y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, size)
        x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, size)
        if y0 >= y1 or x0 >= x1:
            continue
        dy = np.arange(y0, y1)[:, None] + 0.5 - cy
        dx = np.arange(x0, x1)[None, :] + 0.5 - cx
        if is_disk[i]:
            mask = dy**2 + dx**2 <= r**2
        else:
            c, s = np.cos(angles[i]), np.sin(angles[i])
            u, v = c * dx + s * dy, -s * dx + c * dy
            half_u, half_v = r * np.sqrt(aspects[i]), r / np.sqrt(aspects[i])
            mask = (np.abs(u) <= half_u) & (np.abs(v) <= half_v)
        amplitude[y0:y1, x0:x1][mask] = amps[i]
        phase[y0:y1, x0:x1][mask] = phases[i]
    amplitude = gaussian_blur(amplitude, edge_sigma_px)
    phase = gaussian_blur(phase, edge_sigma_px)
    return _to_complex(amplitude, phase)


OBJECT_GENERATORS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "lines": lines_object,
    "grf": grf_object,
    "dead_leaves": dead_leaves_object,
}
"""Object kind name -> generator ``f(size, rng) -> (size, size) complex64``."""
