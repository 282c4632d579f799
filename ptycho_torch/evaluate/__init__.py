"""Evaluating reconstructions: stitching patches, registration, SSIM/PSNR/FRC (numpy only)."""

from ptycho_torch.evaluate.metrics import FRCResult, evaluate_reconstruction, frc, psnr, ssim
from ptycho_torch.evaluate.registration import (
    align_to_reference,
    apply_shift,
    find_shift,
    match_amplitude_scale,
    remove_phase_offset_and_ramp,
)
from ptycho_torch.evaluate.stitch import canvas_shape, coverage_bbox, stitch_patches

__all__ = [
    "stitch_patches",
    "canvas_shape",
    "coverage_bbox",
    "find_shift",
    "apply_shift",
    "align_to_reference",
    "remove_phase_offset_and_ramp",
    "match_amplitude_scale",
    "ssim",
    "psnr",
    "frc",
    "FRCResult",
    "evaluate_reconstruction",
]
