"""A physics estimate of each object patch from its own diffraction (the generator's second input).

A diffraction pattern lives in reciprocal space and the object patch the generator must
predict lives in real space: every output pixel depends on every input pixel, which a
convolutional network (local, translation-equivariant) has to learn from scratch.  The
known probe gives a real-space starting point for free.  From a uniform object, each
iteration of the single-pattern ePIE update

    psi   = O * P                              (exit wave, P the model's illumination)
    Psi'  = A * Psi / |Psi|,  Psi = FFT(psi)/N (keep the phase, impose the measured amplitude A)
    O    += conj(P) / max|P|^2 * (IFFT(Psi')*N - psi)

moves ``O`` towards an object consistent with the pattern.  With a curved (defocused) probe
one pattern nearly determines its patch (Fresnel CDI): on the demo scan the relative error of
the estimate over the lit area (1 = no information) is 0.34 after 1 iteration, 0.22 after 5
and 0.19 after 20.  With a flat disk probe the twin image is not resolved by one pattern
(0.68 after 1 and 0.66 after 5, getting worse after that), so few iterations are used
there; for a group (gridsize > 1) every iteration also applies the overlap constraint,
which averages the neighbours' estimates where they see the same object: the true image
agrees between positions, the twin (mirrored about each probe centre) does not.

The estimate is returned relative to the uniform start (unit mean amplitude), computed
without gradients (the probe's own gradient, when trainable, flows through the forward
model, not through this), in float32, and costs two FFTs of each pattern per iteration.
"""

from __future__ import annotations

import torch

from ptycho_torch.physics.overlap import overlap_constraint
from ptycho_torch.physics.precision import float32_region

__all__ = ["ESTIMATE_FEATURES", "patch_estimate", "estimate_features"]

ESTIMATE_FEATURES = 2
"""Input channels the estimate adds per patch (its real and imaginary parts)."""


@torch.no_grad()
def patch_estimate(
    amplitude: torch.Tensor, illumination: torch.Tensor, iterations: int, offsets_xy: torch.Tensor | None = None
) -> torch.Tensor:
    """Object estimate ``[B, C, N, N]`` complex64 from the measured amplitudes (see module doc).

    ``amplitude``: ``[B, C, N, N]`` centred far-field amplitudes in the forward model's units
    (the normalised network input); ``illumination``: ``[N, N]`` complex, what multiplies the
    object in the forward model; ``offsets_xy``: ``[B, C, 2]`` group offsets, used for the
    overlap constraint when ``C > 1`` (None skips it).  ``iterations == 0`` returns ones.
    """
    with float32_region(amplitude):
        n = amplitude.shape[-1]
        measured = torch.fft.ifftshift(amplitude.float(), dim=(-2, -1))
        illumination = illumination.to(torch.complex64)
        power = illumination.abs().square()
        # uniform start whose predicted total intensity equals the measured one
        start = torch.sqrt(measured.square().sum((-2, -1), keepdim=True) / power.sum().clamp_min(1e-30))
        start = start.clamp_min(1e-12)
        obj = start.to(torch.complex64).expand_as(measured).clone()
        step = illumination.conj() / power.max().clamp_min(1e-30)
        group_offsets = offsets_xy.float() if offsets_xy is not None and amplitude.shape[1] > 1 else None
        for _ in range(int(iterations)):
            psi = obj * illumination
            far = torch.fft.fft2(psi) / n
            far = measured * torch.exp(1j * torch.angle(far))
            obj = obj + step * (torch.fft.ifft2(far) * n - psi)
            if group_offsets is not None:
                obj = overlap_constraint(obj, group_offsets)
        return obj / start


def estimate_features(
    amplitude: torch.Tensor, illumination: torch.Tensor, iterations: int, offsets_xy: torch.Tensor | None = None
) -> torch.Tensor:
    """The generator's input: ``[B, C*(1+ESTIMATE_FEATURES), N, N]`` float32.

    Channels: the ``C`` amplitudes, then the ``C`` real parts and the ``C`` imaginary parts of
    :func:`patch_estimate`.
    """
    estimate = patch_estimate(amplitude, illumination, iterations, offsets_xy)
    return torch.cat([amplitude.float(), estimate.real, estimate.imag], dim=1)
