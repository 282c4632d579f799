"""Differentiable ptychography physics, as small named stages (pure torch).

shifts   -- sub-pixel bilinear translation of ``[B, C, H, W]`` tensors
overlap  -- the overlap constraint for gridsize > 1 (merge on a canvas, cut back out)
forward  -- illumination, far-field amplitude, probe mask, :class:`ForwardModel`
loss     -- Poisson NLL and MAE on diffraction amplitudes
"""

from ptycho_torch.physics.forward import (
    ForwardModel,
    far_field_amplitude,
    gaussian_smooth,
    illuminate,
    probe_disk_mask,
)
from ptycho_torch.physics.loss import amplitude_mae, combined_loss, poisson_nll
from ptycho_torch.physics.overlap import canvas_size, extract_patches, merge_patches, overlap_constraint
from ptycho_torch.physics.shifts import translate

__all__ = [
    "ForwardModel",
    "amplitude_mae",
    "canvas_size",
    "combined_loss",
    "extract_patches",
    "far_field_amplitude",
    "gaussian_smooth",
    "illuminate",
    "merge_patches",
    "overlap_constraint",
    "poisson_nll",
    "probe_disk_mask",
    "translate",
]
