"""Forward model as named stages: object patches -> predicted diffraction amplitude.

Stages, in the order :class:`ForwardModel` applies them (docs/physics.md, docs/conventions.md):

1. :func:`~ptycho_torch.physics.overlap.overlap_constraint` (gridsize > 1 and
   ``object_big``): the group's patches are merged and re-extracted;
2. :func:`illuminate`: exit wave ``Psi = O * P / probe_scale`` (times an optional soft
   disk :func:`probe_disk_mask`); the probe may first be smoothed with
   :func:`gaussian_smooth` (``gaussian_smoothing_sigma``);
3. :func:`far_field_amplitude`: ``sqrt(fftshift(|FFT2(Psi)|^2) / (N*N))``, zero
   frequency at pixel ``(N//2, N//2)``.  With this normalisation Parseval reads
   ``sum_hw A^2 == sum_hw |Psi|^2``.

Pure torch: no Lightning and no config objects.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ptycho_torch.physics.overlap import overlap_constraint
from ptycho_torch.physics.precision import float32_region, to_float32

__all__ = [
    "INTENSITY_FLOOR",
    "illuminate",
    "far_field_amplitude",
    "probe_disk_mask",
    "gaussian_smooth",
    "ForwardModel",
]

INTENSITY_FLOOR = 1e-12
"""Intensities are clamped to at least this before the square root (finite gradients)."""


def illuminate(
    obj: torch.Tensor, probe: torch.Tensor, probe_scale: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Exit waves ``[B, C, N, N]`` complex64: ``obj * probe / probe_scale`` (times ``mask``).

    ``obj``: ``[B, C, N, N]`` complex object patches; ``probe``: ``[N, N]`` complex;
    ``mask``: optional real ``[N, N]`` (e.g. :func:`probe_disk_mask`).
    """
    illum = probe / probe_scale
    if mask is not None:
        illum = illum * mask.to(illum.real.dtype)
    return obj * illum


def far_field_amplitude(psi: torch.Tensor) -> torch.Tensor:
    """Far-field amplitude ``sqrt(fftshift(|FFT2(psi)|^2) / (N*N))`` over the last two dims.

    ``psi``: ``[..., N, N]`` complex exit waves.  Returns float32 ``[..., N, N]``, centred
    (zero frequency at ``(N//2, N//2)``).  The intensity is floored at
    :data:`INTENSITY_FLOOR` so the square root has a finite gradient everywhere.
    """
    h, w = psi.shape[-2:]
    intensity = torch.fft.fft2(psi).abs().square() / (h * w)
    intensity = torch.fft.fftshift(intensity, dim=(-2, -1))
    return torch.sqrt(intensity.clamp_min(INTENSITY_FLOOR))


def probe_disk_mask(n: int, diameter: float | None = None, sigma: float = 1.0) -> torch.Tensor:
    """Soft disk ``[N, N]`` float32 centred at pixel ``(N/2, N/2)``.

    ``diameter`` in pixels (None means ``N/2``); ``sigma`` (pixels) is the width of the
    edge: the profile is ``0.5 * erfc((r - diameter/2) / (sigma*sqrt(2)))`` (a disk
    blurred by a Gaussian of that sigma, across its edge); ``sigma == 0`` is a hard disk.
    """
    d = n / 2 if diameter is None else float(diameter)
    if d <= 0 or sigma < 0:
        raise ValueError(f"probe_disk_mask: need diameter > 0 and sigma >= 0, got {d}, {sigma}")
    coords = torch.arange(n, dtype=torch.float32) - n // 2
    r = torch.sqrt(coords.view(-1, 1) ** 2 + coords.view(1, -1) ** 2)
    if sigma == 0:
        return (r <= d / 2).to(torch.float32)
    return 0.5 * torch.erfc((r - d / 2) / (sigma * math.sqrt(2.0)))


def gaussian_smooth(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur the last two dims of a real or complex ``[..., H, W]`` tensor (Gaussian, pixels).

    Separable kernel of radius ``ceil(3 sigma)``, normalised to sum 1, zero padding;
    ``sigma == 0`` returns the input unchanged.
    """
    if sigma <= 0:
        return image
    if image.is_complex():
        return torch.complex(gaussian_smooth(image.real, sigma), gaussian_smooth(image.imag, sigma))
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    shape = image.shape
    flat = image.reshape(-1, 1, shape[-2], shape[-1])
    flat = F.conv2d(flat, k.view(1, 1, 1, -1), padding=(0, radius))
    flat = F.conv2d(flat, k.view(1, 1, -1, 1), padding=(radius, 0))
    return flat.reshape(shape)


class ForwardModel(nn.Module):
    """Object patches -> predicted diffraction amplitudes, stage by stage.

    Holds the probe (``[N, N]`` complex, stored as a real ``[N, N, 2]`` tensor named
    ``probe_ri`` so optimisers and DDP see a real parameter): a buffer, or a Parameter
    when ``probe_trainable``.  Either way it is part of the ``state_dict``.

    Args:
        probe: ``[N, N]`` complex probe, already normalised by the caller.
        probe_scale: the probe is divided by this in :func:`illuminate`.
        probe_mask: optional ``[N, N]`` real mask multiplied onto the illumination.
        probe_trainable: learn the probe.
        object_big: apply the overlap constraint when ``C > 1``.
        gaussian_smoothing_sigma: blur (pixels) applied to the probe before use; 0 = off.
    """

    def __init__(
        self,
        probe: torch.Tensor,
        probe_scale: float = 4.0,
        probe_mask: torch.Tensor | None = None,
        probe_trainable: bool = False,
        object_big: bool = True,
        gaussian_smoothing_sigma: float = 0.0,
    ) -> None:
        super().__init__()
        probe = torch.as_tensor(probe).to(torch.complex64)
        ri = torch.view_as_real(probe).clone()
        if probe_trainable:
            self.probe_ri = nn.Parameter(ri)
        else:
            self.register_buffer("probe_ri", ri)
        if probe_mask is not None:
            self.register_buffer("probe_mask", torch.as_tensor(probe_mask, dtype=torch.float32))
        else:
            self.probe_mask = None
        self.probe_scale = float(probe_scale)
        self.object_big = bool(object_big)
        self.gaussian_smoothing_sigma = float(gaussian_smoothing_sigma)

    @property
    def probe(self) -> torch.Tensor:
        """The probe as ``[N, N]`` complex64 (a differentiable view of ``probe_ri``)."""
        return torch.view_as_complex(self.probe_ri)

    def constrain(self, patches: torch.Tensor, offsets_xy: torch.Tensor | None) -> torch.Tensor:
        """Stage 1: the overlap constraint when ``object_big`` and ``C > 1``, else identity."""
        if self.object_big and patches.shape[1] > 1:
            if offsets_xy is None:
                raise ValueError("ForwardModel: offsets are required for the overlap constraint (C > 1)")
            return overlap_constraint(patches, offsets_xy)
        return patches

    def illumination(self) -> torch.Tensor:
        """``[N, N]`` complex64: what multiplies the object in :func:`illuminate` (smoothed probe / probe_scale x mask)."""
        illum = gaussian_smooth(self.probe, self.gaussian_smoothing_sigma) / self.probe_scale
        if self.probe_mask is not None:
            illum = illum * self.probe_mask.to(illum.real.dtype)
        return illum

    def forward(self, patches: torch.Tensor, offsets_xy: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(amplitude [B, C, N, N] float32, constrained patches [B, C, N, N] complex64)``.

        Always evaluated in float32, also inside a mixed-precision autocast region (see
        :mod:`ptycho_torch.physics.precision` for why): autocast is switched off here and
        low-precision inputs are cast up first.
        """
        with float32_region(patches):
            patches = to_float32(patches)
            if offsets_xy is not None:
                offsets_xy = to_float32(offsets_xy)
            obj = self.constrain(patches, offsets_xy)
            probe = gaussian_smooth(self.probe, self.gaussian_smoothing_sigma)
            psi = illuminate(obj, probe, self.probe_scale, self.probe_mask)
            return far_field_amplitude(psi), obj
