"""Differentiable ptychography physics, as small named stages (pure torch).

shifts   -- sub-pixel translation (bilinear or Lanczos-3) of ``[B, C, H, W]`` tensors
overlap  -- the overlap constraint for gridsize > 1 (neighbouring patches averaged)
forward  -- illumination, far-field amplitude, probe mask, :class:`ForwardModel`
loss     -- Poisson NLL and MAE on diffraction amplitudes
precision -- keep these stages in float32 under mixed-precision autocast
"""

from ptycho_torch.physics.forward import (
    ForwardModel,
    far_field_amplitude,
    gaussian_smooth,
    illuminate,
    probe_disk_mask,
)
from ptycho_torch.physics.loss import amplitude_mae, combined_loss, poisson_nll
from ptycho_torch.physics.overlap import central_mask, overlap_constraint
from ptycho_torch.physics.shifts import translate

__all__ = [
    "ForwardModel",
    "amplitude_mae",
    "combined_loss",
    "central_mask",
    "far_field_amplitude",
    "gaussian_smooth",
    "illuminate",
    "overlap_constraint",
    "poisson_nll",
    "probe_disk_mask",
    "translate",
]
