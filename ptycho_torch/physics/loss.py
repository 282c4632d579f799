"""Losses between predicted and measured diffraction amplitudes (docs/physics.md, "Loss").

Both amplitudes are ``[B, C, N, N]`` float32.  A photon scale turns amplitudes into
counts: the measured counts are ``k = (s * X)^2``; the predicted rate is
``lambda = (s_pred * A_pred)^2``, where ``s_pred`` is the (possibly trainable)
intensity scale that multiplies only the prediction.
"""

from __future__ import annotations

import torch

from ptycho_torch.physics.precision import float32_region, to_float32

__all__ = ["RATE_FLOOR", "poisson_nll", "amplitude_mae", "combined_loss"]

RATE_FLOOR = 1e-8
"""Added to the predicted rate inside the log, so ``log(0)`` never occurs."""


def poisson_nll(
    pred_amplitude: torch.Tensor,
    measured_amplitude: torch.Tensor,
    pred_scale: torch.Tensor | float,
    measured_scale: torch.Tensor | float,
) -> torch.Tensor:
    """Poisson negative log-likelihood of the measured counts under the predicted rate.

    ``lambda = (pred_scale * pred_amplitude)^2``, ``k = (measured_scale * measured_amplitude)^2``;
    per sample ``sum_{C,H,W} (lambda - k*log(lambda) + lgamma(k + 1))``, averaged over the
    batch and divided by the detached mean of ``measured_amplitude`` (so the loss value
    does not scale with the amplitude units).  The ``lgamma`` term makes this the exact
    NLL (it has no gradient).  Returns a scalar.
    """
    rate = (pred_scale * pred_amplitude).square()
    counts = (measured_scale * measured_amplitude).square()
    per_pixel = rate - counts * torch.log(rate + RATE_FLOOR) + torch.lgamma(counts + 1.0)
    per_sample = per_pixel.flatten(1).sum(dim=1)
    return per_sample.mean() / measured_amplitude.detach().mean().clamp_min(1e-12)


def amplitude_mae(
    pred_amplitude: torch.Tensor,
    measured_amplitude: torch.Tensor,
    pred_scale: torch.Tensor | float,
    measured_scale: torch.Tensor | float,
) -> torch.Tensor:
    """Mean absolute error ``mean |pred_scale * A_pred - measured_scale * X|`` (scalar)."""
    return (pred_scale * pred_amplitude - measured_scale * measured_amplitude).abs().mean()


def combined_loss(
    pred_amplitude: torch.Tensor,
    measured_amplitude: torch.Tensor,
    pred_scale: torch.Tensor | float,
    measured_scale: torch.Tensor | float,
    nll_weight: float = 1.0,
    mae_weight: float = 0.0,
) -> torch.Tensor:
    """``nll_weight * poisson_nll + mae_weight * amplitude_mae``; a zero weight skips its term.

    Evaluated in float32 even inside a mixed-precision autocast region (the NLL of counts
    up to ~1e9 is meaningless at bf16's 8-bit mantissa; :mod:`ptycho_torch.physics.precision`).
    """
    if nll_weight == 0 and mae_weight == 0:
        raise ValueError("combined_loss: nll_weight and mae_weight are both 0; nothing to minimise")
    with float32_region(pred_amplitude):
        pred_amplitude, measured_amplitude = to_float32(pred_amplitude), to_float32(measured_amplitude)
        if torch.is_tensor(pred_scale):
            pred_scale = to_float32(pred_scale)
        if torch.is_tensor(measured_scale):
            measured_scale = to_float32(measured_scale)
        total = pred_amplitude.new_zeros(())
        if nll_weight:
            total = total + nll_weight * poisson_nll(pred_amplitude, measured_amplitude, pred_scale, measured_scale)
        if mae_weight:
            total = total + mae_weight * amplitude_mae(pred_amplitude, measured_amplitude, pred_scale, measured_scale)
        return total
