"""Generator architectures by canonical name (``ModelConfig.architecture``).

Every generator takes ``(N, gridsize, n_filters_scale, amp_activation, probe_big,
pad_object, *, input_channels)`` and maps ``[B, input_channels, N, N]`` float32 (the
normalised amplitudes, then any physics-estimate channels) to ``[B, C, N, N]`` complex64
patches.  The choices are documented in docs/architectures.md.
"""

from __future__ import annotations

from torch import nn

from ptycho_torch.model.generator import CNNGenerator
from ptycho_torch.model.resunet import ResUNetGenerator

__all__ = ["GENERATORS", "ARCHITECTURES", "build_generator"]

GENERATORS: dict[str, type[nn.Module]] = {
    "cnn": CNNGenerator,
    "resunet": ResUNetGenerator,
}
"""Name -> generator class.  'cnn': the original encoder + two decoders (docs/physics.md);
'resunet': residual U-Net with skip connections, GroupNorm + SiLU, small output heads."""

ARCHITECTURES = tuple(GENERATORS)
"""Accepted ``architecture`` names."""


def build_generator(
    architecture: str,
    N: int,
    gridsize: int,
    n_filters_scale: int,
    amp_activation: str,
    probe_big: bool,
    pad_object: bool,
    input_channels: int | None = None,
) -> nn.Module:
    """The generator named ``architecture`` (a key of :data:`GENERATORS`); ``input_channels`` None means ``gridsize**2``."""
    try:
        cls = GENERATORS[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; valid: {ARCHITECTURES}") from None
    return cls(N, gridsize, n_filters_scale, amp_activation, probe_big, pad_object, input_channels=input_channels)
