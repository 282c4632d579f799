"""Image-quality metrics (SSIM, PSNR, FRC) and the full reconstruction evaluation (numpy).

Declared ranges used by :func:`evaluate_reconstruction` (all from the *reference*, on the
evaluated crop, so a reconstruction can never change the scale it is judged on):

* amplitude: SSIM ``data_range = max - min`` of the reference amplitude; PSNR ``peak =`` the
  reference's maximum amplitude.
* phase: SSIM ``data_range`` and PSNR ``peak = max - min`` of the reference phase (radians);
  ``2*pi`` when the reference phase is flat (and 1 for a flat amplitude).  The reconstruction's phase is taken on the
  branch nearest the reference, ``angle(ref) + angle(recon * conj(ref))``, so 2-pi wraps are
  not counted as errors.

FRC frequencies are in cycles/pixel (0 to 0.5).  The resolution cutoff is where the FRC
first falls below the half-bit threshold (van Heel & Schatz, 2005), linearly interpolated
between rings; 0.5 when it never does.

SSIM, PSNR and the registration agree with scikit-image's under the settings listed in
tests/evaluate/test_skimage_agreement.py (which checks them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ptycho_torch.errors import ConfigError
from ptycho_torch.evaluate.registration import align_to_reference, tukey_window_2d

__all__ = ["ssim", "psnr", "frc", "FRCResult", "ComparedImages", "compared_images", "evaluate_reconstruction"]


def _gaussian_filter_valid(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable correlation with a 1-D kernel, keeping only fully covered pixels."""
    size = kernel.size
    along_rows = np.lib.stride_tricks.sliding_window_view(image, size, axis=0) @ kernel
    return np.lib.stride_tricks.sliding_window_view(along_rows, size, axis=1) @ kernel


def ssim(
    a: np.ndarray, b: np.ndarray, data_range: float, sigma_px: float = 1.5, win_size: int = 11,
    k1: float = 0.01, k2: float = 0.03,
) -> float:
    """Mean structural similarity of two real ``(H, W)`` images (Wang et al., 2004).

    Local statistics use a Gaussian window (std ``sigma_px``, ``win_size`` taps, normalised)
    over fully covered positions only (no padding).  ``data_range`` (declared, > 0) sets the
    stabilisers ``C1 = (k1 * data_range)**2`` and ``C2 = (k2 * data_range)**2``.  Identical
    images give exactly 1.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ConfigError("SSIM needs two 2-D images of one shape", where="ssim", found=f"{a.shape} and {b.shape}")
    if min(a.shape) < win_size:
        raise ConfigError("image smaller than the SSIM window", where="ssim", expected=f">= {win_size} px a side",
                          found=str(a.shape), hint="evaluate a larger scanned region")
    if not data_range > 0:
        raise ConfigError("SSIM data_range must be positive", where="ssim(data_range)", found=str(data_range))
    offsets = np.arange(win_size) - (win_size - 1) / 2.0
    kernel = np.exp(-0.5 * (offsets / sigma_px) ** 2)
    kernel /= kernel.sum()
    mu_a, mu_b = _gaussian_filter_valid(a, kernel), _gaussian_filter_valid(b, kernel)
    var_a = _gaussian_filter_valid(a * a, kernel) - mu_a**2
    var_b = _gaussian_filter_valid(b * b, kernel) - mu_b**2
    cov = _gaussian_filter_valid(a * b, kernel) - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(index.mean())


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(peak**2 / MSE)``; ``inf`` when equal.

    ``peak`` is declared by the caller (never inferred), so numbers are comparable.
    """
    if not peak > 0:
        raise ConfigError("PSNR peak must be positive", where="psnr(peak)", found=str(peak))
    mse = float(np.mean(np.abs(np.asarray(a, dtype=np.complex128) - np.asarray(b, dtype=np.complex128)) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak**2 / mse))


@dataclass(frozen=True)
class FRCResult:
    """A Fourier ring correlation curve and its half-bit resolution cutoff."""

    freq_cpp: np.ndarray
    """Ring centre frequencies, cycles/pixel, ``(R,)`` from 0 to 0.5."""
    frc: np.ndarray
    """Correlation per ring, ``(R,)``, in [-1, 1] (1 = identical content)."""
    threshold: np.ndarray
    """Half-bit threshold per ring, ``(R,)``."""
    n_pixels: np.ndarray
    """Number of Fourier pixels per ring, ``(R,)``."""
    cutoff_cpp: float
    """First frequency (cycles/pixel) where the FRC falls below the threshold; 0.5 if never."""


def frc(a: np.ndarray, b: np.ndarray, taper: float = 0.25) -> FRCResult:
    """Fourier ring correlation of two real or complex ``(H, W)`` images.

    Both are multiplied by a Tukey window (taper fraction ``taper``; 0 disables it) against
    edge artefacts.  Ring ``k`` holds the frequencies with ``round(|f| * L) == k`` (``|f|`` in
    cycles/pixel, ``L = min(H, W)``), for ``k = 0 .. L//2``.  Half-bit threshold:
    ``(0.2071 + 1.9102 / sqrt(n)) / (1.2071 + 0.9102 / sqrt(n))`` with ``n`` pixels in the ring.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.ndim != 2:
        raise ConfigError("FRC needs two 2-D images of one shape", where="frc", found=f"{a.shape} and {b.shape}")
    height, width = a.shape
    window = tukey_window_2d(height, width, taper)
    fa, fb = np.fft.fft2(a * window), np.fft.fft2(b * window)
    side = min(height, width)
    radius = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :])
    ring = np.rint(radius * side).astype(np.int64).ravel()
    n_rings = side // 2 + 1
    keep = ring < n_rings
    ring = ring[keep]
    cross = np.bincount(ring, weights=(fa * np.conj(fb)).real.ravel()[keep], minlength=n_rings)
    power_a = np.bincount(ring, weights=(np.abs(fa) ** 2).ravel()[keep], minlength=n_rings)
    power_b = np.bincount(ring, weights=(np.abs(fb) ** 2).ravel()[keep], minlength=n_rings)
    n_pixels = np.bincount(ring, minlength=n_rings)
    denominator = np.sqrt(power_a * power_b)
    curve = np.divide(cross, denominator, out=np.zeros(n_rings), where=denominator > 0)
    root_n = np.sqrt(np.maximum(n_pixels, 1))
    threshold = (0.2071 + 1.9102 / root_n) / (1.2071 + 0.9102 / root_n)
    freq = np.arange(n_rings) / side
    return FRCResult(freq, curve, threshold, n_pixels, _crossing(freq, curve, threshold))


def _crossing(freq: np.ndarray, curve: np.ndarray, threshold: np.ndarray) -> float:
    """First frequency after ring 0 where ``curve`` drops below ``threshold`` (interpolated)."""
    below = np.flatnonzero(curve[1:] < threshold[1:]) + 1
    if below.size == 0:
        return float(freq[-1])
    k = int(below[0])
    margin_before = curve[k - 1] - threshold[k - 1]
    margin_after = curve[k] - threshold[k]
    fraction = margin_before / (margin_before - margin_after) if margin_before > 0 else 0.0
    return float(freq[k - 1] + fraction * (freq[k] - freq[k - 1]))


def _bbox_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ConfigError("the scanned mask is empty", where="evaluate_reconstruction(scanned_mask)",
                          expected="some True pixels", found="none", hint="check the stitching weights")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


@dataclass(frozen=True)
class ComparedImages:
    """A reconstruction and its reference on the evaluated crop, after alignment (real ``(h, w)`` each).

    ``phase_rec`` is on the branch nearest ``phase_ref`` (no 2-pi wraps); ``alignment`` holds
    the registration parameters; ``bbox`` is ``(y0, y1, x0, x1)`` in the full image.
    """

    amp_rec: np.ndarray
    amp_ref: np.ndarray
    phase_rec: np.ndarray
    phase_ref: np.ndarray
    alignment: dict
    bbox: tuple[int, int, int, int]
    n_uncovered: int


def compared_images(
    recon: np.ndarray,
    reference: np.ndarray,
    scanned_mask: np.ndarray | None = None,
    bbox: tuple[int, int, int, int] | None = None,
    upsample: int = 100,
    weights: np.ndarray | None = None,
) -> ComparedImages:
    """Steps 1 and 2 of :func:`evaluate_reconstruction` (crop, fill, align): what the metrics compare."""
    recon = np.asarray(recon)
    reference = np.asarray(reference)
    if recon.shape != reference.shape or recon.ndim != 2:
        raise ConfigError("reconstruction and reference must be 2-D images of one shape",
                          where="evaluate_reconstruction", expected=str(reference.shape), found=str(recon.shape),
                          hint="stitch onto a canvas of the objectGuess shape")
    if bbox is None:
        if scanned_mask is not None:
            mask = np.asarray(scanned_mask, dtype=bool)
        elif weights is not None:
            mask = np.asarray(weights) > 0
        else:
            mask = np.isfinite(recon)
        bbox = _bbox_of(mask)
    y0, y1, x0, x1 = (int(v) for v in bbox)
    recon_c = recon[y0:y1, x0:x1].astype(np.complex128)
    reference_c = reference[y0:y1, x0:x1].astype(np.complex128)
    finite = np.isfinite(recon_c)
    if not finite.any():
        raise ConfigError("no finite reconstruction pixel in the scanned area", where="evaluate_reconstruction",
                          found=f"bbox {bbox}", hint="check the stitching and the bbox")
    n_uncovered = int((~finite).sum())
    recon_c[~finite] = recon_c[finite].mean()

    aligned, ref_a, info = align_to_reference(recon_c, reference_c, upsample=upsample)
    phase_ref = np.angle(ref_a)
    return ComparedImages(
        amp_rec=np.abs(aligned), amp_ref=np.abs(ref_a), phase_rec=phase_ref + np.angle(aligned * np.conj(ref_a)),
        phase_ref=phase_ref, alignment=info, bbox=(y0, y1, x0, x1), n_uncovered=n_uncovered,
    )


def evaluate_reconstruction(
    recon: np.ndarray,
    reference: np.ndarray,
    scanned_mask: np.ndarray | None = None,
    bbox: tuple[int, int, int, int] | None = None,
    upsample: int = 100,
    weights: np.ndarray | None = None,
) -> dict[str, Any]:
    """Compare a stitched reconstruction with the ground-truth object (both complex ``(H, W)``).

    1. Crop both to the scanned area: ``bbox = (y0, y1, x0, x1)`` (half-open) if given, else
       the bounding box of ``scanned_mask``, else of ``weights > 0`` (the ``counts`` map of
       :func:`~ptycho_torch.evaluate.stitch.stitch_patches`), else of the finite pixels of ``recon``.  Non-finite
       recon pixels left inside are filled with the mean of the finite ones (``n_uncovered``).
    2. :func:`~ptycho_torch.evaluate.registration.align_to_reference`: sub-pixel registration,
       phase offset and ramp removal, amplitude scaled to the reference mean.
    3. SSIM, PSNR and FRC on amplitude and on phase, with the ranges in the module doc.

    Returns JSON-friendly plain data: the metrics (``amp_ssim``, ``phase_ssim``,
    ``amp_psnr_db``, ``phase_psnr_db``, ``amp_frc_cutoff_cpp``, ``phase_frc_cutoff_cpp``), the
    declared ranges, the alignment parameters, ``bbox``, ``evaluated_shape``, ``n_uncovered``
    and ``frc_curves`` (lists).
    """
    view = compared_images(recon, reference, scanned_mask=scanned_mask, bbox=bbox, upsample=upsample, weights=weights)
    amp_rec, amp_ref, phase_rec, phase_ref = view.amp_rec, view.amp_ref, view.phase_rec, view.phase_ref
    info, (y0, y1, x0, x1), n_uncovered = view.alignment, view.bbox, view.n_uncovered
    amp_range = float(amp_ref.max() - amp_ref.min()) or 1.0
    amp_peak = float(amp_ref.max()) or 1.0
    phase_range = float(phase_ref.max() - phase_ref.min()) or 2 * np.pi
    amp_frc, phase_frc = frc(amp_rec, amp_ref), frc(phase_rec, phase_ref)
    return {
        "amp_ssim": ssim(amp_rec, amp_ref, amp_range),
        "phase_ssim": ssim(phase_rec, phase_ref, phase_range),
        "amp_psnr_db": psnr(amp_rec, amp_ref, amp_peak),
        "phase_psnr_db": psnr(phase_rec, phase_ref, phase_range),
        "amp_frc_cutoff_cpp": amp_frc.cutoff_cpp,
        "phase_frc_cutoff_cpp": phase_frc.cutoff_cpp,
        "amp_data_range": amp_range,
        "amp_psnr_peak": amp_peak,
        "phase_data_range_rad": phase_range,
        "phase_psnr_peak_rad": phase_range,
        **info,
        "bbox": [y0, y1, x0, x1],
        "evaluated_shape": list(amp_ref.shape),
        "n_uncovered": n_uncovered,
        "frc_curves": {
            "freq_cpp": amp_frc.freq_cpp.tolist(),
            "amp_frc": amp_frc.frc.tolist(),
            "phase_frc": phase_frc.frc.tolist(),
            "halfbit_threshold": amp_frc.threshold.tolist(),
        },
    }
