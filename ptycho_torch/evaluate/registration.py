"""Align a reconstruction to a reference: sub-pixel shift, phase offset and ramp, amplitude scale.

Ptychography determines the object only up to a translation, a global phase offset, a
linear phase ramp and (for a learned intensity scale) an amplitude factor.  These are
removed before any metric is computed.

* :func:`find_shift`: cross-correlation peak refined by an *upsampled DFT*: the correlation
  is evaluated directly (matrix-multiply DFT) on a grid ``1/upsample`` pixel fine within
  +-0.75 px of the integer peak.  Sign convention: it returns ``(dy, dx)`` such that
  ``moving(r) ~= reference(r - (dy, dx))``, i.e. ``moving`` is ``reference`` moved by
  ``+dy`` rows and ``+dx`` columns.
* :func:`apply_shift`: Fourier translation ``out(r) = image(r - shift)`` of an image padded by
  reflection first, so the non-periodic edges do not ring through the image.
* :func:`remove_phase_offset_and_ramp`, :func:`match_amplitude_scale`: see their docs.
"""

from __future__ import annotations

import numpy as np
from scipy.signal.windows import tukey

__all__ = [
    "tukey_window_2d",
    "find_shift",
    "apply_shift",
    "align_to_reference",
    "remove_phase_offset_and_ramp",
    "match_amplitude_scale",
]


def _upsampled_correlation(product: np.ndarray, rows_px: np.ndarray, cols_px: np.ndarray) -> np.ndarray:
    """Inverse DFT of ``product (H, W)`` evaluated at arbitrary shifts ``rows_px x cols_px``."""
    height, width = product.shape
    ky = np.fft.fftfreq(height)  # cycles/pixel
    kx = np.fft.fftfreq(width)
    kernel_y = np.exp(2j * np.pi * rows_px[:, None] * ky[None, :])  # (K, H)
    kernel_x = np.exp(2j * np.pi * kx[:, None] * cols_px[None, :])  # (W, K)
    return kernel_y @ product @ kernel_x


def tukey_window_2d(height: int, width: int, taper: float = 0.25) -> np.ndarray:
    """``(height, width)`` separable Tukey (tapered cosine) window, ``scipy.signal.windows.tukey``
    per axis with ``alpha = taper`` (flat middle, cosine tapers over ``taper/2`` at each end).

    ``taper <= 0`` and axes shorter than 3 pixels are left unweighted (ones).
    """
    def axis(length: int) -> np.ndarray:
        return np.ones(length) if taper <= 0 or length < 3 else tukey(length, taper)

    return np.outer(axis(height), axis(width))


def find_shift(
    reference: np.ndarray, moving: np.ndarray, upsample: int = 100, taper: float = 0.25
) -> tuple[float, float]:
    """Sub-pixel translation ``(dy, dx)`` (pixels) of ``moving`` relative to ``reference``.

    Both are real or complex ``(H, W)`` arrays of the same shape.  Their means are removed
    and both are multiplied by a 2-D Tukey window with taper fraction ``taper`` (0 disables
    it), which keeps the image edges from dominating the circular correlation.  Accuracy is
    about ``1/upsample`` pixel plus what image content allows (a few hundredths of a pixel
    for textured images); shifts are found modulo the image size (``-H/2 <= dy < H/2``).
    """
    reference = np.asarray(reference)
    moving = np.asarray(moving)
    if reference.shape != moving.shape or reference.ndim != 2:
        raise ValueError(f"find_shift needs two 2-D images of one shape, got {reference.shape} and {moving.shape}")
    if upsample < 1:
        raise ValueError(f"upsample must be >= 1, got {upsample}")
    height, width = reference.shape
    window = tukey_window_2d(height, width, taper)
    product = np.fft.fft2((moving - moving.mean()) * window) * np.conj(
        np.fft.fft2((reference - reference.mean()) * window)
    )
    correlation = np.abs(np.fft.ifft2(product))
    peak_row, peak_col = np.unravel_index(int(np.argmax(correlation)), correlation.shape)
    coarse = np.array([peak_row, peak_col], dtype=np.float64)
    coarse[0] -= height if peak_row >= height / 2 else 0
    coarse[1] -= width if peak_col >= width / 2 else 0
    if upsample == 1:
        return float(coarse[0]), float(coarse[1])
    n_fine = int(np.ceil(1.5 * upsample))
    fine = (np.arange(n_fine) - n_fine // 2) / upsample  # +-0.75 px around the coarse peak
    local = np.abs(_upsampled_correlation(product, coarse[0] + fine, coarse[1] + fine))
    i, j = np.unravel_index(int(np.argmax(local)), local.shape)
    return float(coarse[0] + fine[i]), float(coarse[1] + fine[j])


def apply_shift(image: np.ndarray, shift_yx: tuple[float, float], pad_px: int | None = None) -> np.ndarray:
    """Translate ``image (H, W)`` by ``shift_yx = (dy, dx)`` pixels: ``out(r) = image(r - shift)``.

    The image is reflection-padded by ``pad_px`` (default ``ceil(max |shift|) + 8``), shifted
    with a Fourier phase ramp and cropped back; pixels within ``|shift|`` of the edges hold
    reflected content and should be discarded by the caller.  Real input gives real output.
    """
    image = np.asarray(image)
    dy, dx = float(shift_yx[0]), float(shift_yx[1])
    pad = int(np.ceil(max(abs(dy), abs(dx)))) + 8 if pad_px is None else int(pad_px)
    padded = np.pad(image, pad, mode="reflect") if pad > 0 else image
    ky = np.fft.fftfreq(padded.shape[0])[:, None]
    kx = np.fft.fftfreq(padded.shape[1])[None, :]
    ramp = np.exp(-2j * np.pi * (ky * dy + kx * dx))
    shifted = np.fft.ifft2(np.fft.fft2(padded) * ramp)
    if pad > 0:
        shifted = shifted[pad:-pad, pad:-pad]
    return shifted if np.iscomplexobj(image) else shifted.real


def remove_phase_offset_and_ramp(
    recon: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, float]]:
    """Remove the global phase offset and linear phase ramp of ``recon`` relative to ``reference``.

    With ``d = recon * conj(reference)`` (restricted to ``mask``): a coarse ramp per axis is the
    angle of the sum of ``d[k+1] * conj(d[k])`` (phase step per pixel, insensitive to 2-pi
    wrapping) and a coarse offset the angle of the sum of the de-ramped ``d``; the small phase
    left over is then fitted with a plane by least squares weighted by ``|d|``.

    Returns ``recon * exp(-1j * (offset + ramp_y * y + ramp_x * x))`` (``y``, ``x`` are array
    indices) and ``{"phase_offset_rad", "phase_ramp_y_rad_per_px", "phase_ramp_x_rad_per_px"}``.
    """
    recon = np.asarray(recon)
    reference = np.asarray(reference)
    if recon.shape != reference.shape:
        raise ValueError(f"recon {recon.shape} and reference {reference.shape} differ in shape")
    weight = np.ones(recon.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    d = np.where(weight, recon.astype(np.complex128) * np.conj(reference.astype(np.complex128)), 0.0)
    # Coarse, wrap-proof: mean phase step between neighbours, then the mean phase.
    ramp_y = float(np.angle(np.sum(d[1:, :] * np.conj(d[:-1, :]))))
    ramp_x = float(np.angle(np.sum(d[:, 1:] * np.conj(d[:, :-1]))))
    rows = np.arange(recon.shape[0])[:, None].astype(np.float64)
    cols = np.arange(recon.shape[1])[None, :].astype(np.float64)
    offset = float(np.angle(np.sum(d * np.exp(-1j * (ramp_y * rows + ramp_x * cols)))))
    # Fine: the residual phase is now small (no wrapping); fit a plane to it by weighted
    # least squares, weights |d|, which is far less noisy than neighbour differences.
    residual = np.angle(d * np.exp(-1j * (offset + ramp_y * rows + ramp_x * cols)))
    w = np.abs(d).ravel()
    row_idx, col_idx = np.broadcast_to(rows, d.shape).ravel(), np.broadcast_to(cols, d.shape).ravel()
    design = np.stack([np.ones(d.size), row_idx, col_idx], axis=1)
    sqrt_w = np.sqrt(w)[:, None]
    fit, *_ = np.linalg.lstsq(design * sqrt_w, residual.ravel() * sqrt_w[:, 0], rcond=None)
    offset, ramp_y, ramp_x = offset + float(fit[0]), ramp_y + float(fit[1]), ramp_x + float(fit[2])
    ramp = np.exp(-1j * (ramp_y * rows + ramp_x * cols))
    corrected = recon * (ramp * np.exp(-1j * offset))
    info = {"phase_offset_rad": offset, "phase_ramp_y_rad_per_px": ramp_y, "phase_ramp_x_rad_per_px": ramp_x}
    return corrected.astype(np.result_type(recon.dtype, np.complex64)), info


def match_amplitude_scale(
    recon: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Scale ``recon`` so that its mean amplitude equals the reference's (over ``mask``).

    Returns ``(recon * scale, scale)`` with ``scale = mean|reference| / mean|recon|``.
    """
    weight = np.ones(np.shape(recon), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    recon_mean = float(np.abs(recon)[weight].mean())
    if recon_mean <= 0:
        raise ValueError("the reconstruction's amplitude is zero everywhere in the mask; cannot scale it")
    scale = float(np.abs(reference)[weight].mean()) / recon_mean
    return recon * scale, scale


MAX_REGISTRATION_SHIFT_PX = 4.0
"""Largest shift registration may apply.  Stitching places patches at the known scan
positions, so a good reconstruction is off by a pixel or two at most; a larger correlation
peak is a failed match (e.g. an untrained model's output), which is then scored unshifted."""


def align_to_reference(
    recon: np.ndarray, reference: np.ndarray, upsample: int = 100, max_shift_px: float = MAX_REGISTRATION_SHIFT_PX
) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """Register ``recon`` on ``reference`` (both complex ``(H, W)``) and remove the ambiguities.

    In order: :func:`find_shift` on the amplitudes, :func:`apply_shift` of ``recon`` by minus
    that shift, a crop of ``ceil(max |shift|) + 1`` pixels from every edge of both images
    (those pixels hold reflected content), :func:`remove_phase_offset_and_ramp`,
    :func:`match_amplitude_scale`.  Returns ``(aligned_recon, cropped_reference, info)`` with
    ``info`` holding ``shift_yx_px``, ``margin_px``, the phase parameters and ``amplitude_scale``.
    A shift larger than ``max_shift_px`` is not applied (``registration_rejected`` is True and
    ``found_shift_yx_px`` holds it).
    """
    found = find_shift(np.abs(reference), np.abs(recon), upsample=upsample)
    rejected = max(abs(found[0]), abs(found[1])) > max_shift_px
    shift = (0.0, 0.0) if rejected else found
    shifted = apply_shift(recon, (-shift[0], -shift[1]))
    margin = int(np.ceil(max(abs(shift[0]), abs(shift[1])))) + 1
    height, width = reference.shape
    if height - 2 * margin < 1 or width - 2 * margin < 1:
        raise ValueError(f"the registration shift {shift} leaves nothing of the {height}x{width} images")
    window = (slice(margin, height - margin), slice(margin, width - margin))
    reference_c = reference[window]
    corrected, phase_info = remove_phase_offset_and_ramp(shifted[window], reference_c)
    scaled, scale = match_amplitude_scale(corrected, reference_c)
    info: dict[str, object] = {
        "shift_yx_px": [shift[0], shift[1]],
        "found_shift_yx_px": [found[0], found[1]],
        "registration_rejected": bool(rejected),
        "margin_px": margin,
        **phase_info,
    }
    info["amplitude_scale"] = scale
    return scaled, reference_c, info
