"""Residual U-Net generator: normalised diffraction amplitudes -> complex object patches.

Layout (N = 64, width ``w = 32 * n_filters_scale``)::

    stem conv3x3 (C -> w) at N
    encoder: ResBlock(w) @N -> down -> ResBlock(2w) @N/2 -> down -> ResBlock(4w) @N/4
             -> down -> bottleneck ResBlock(4w) @8 (+ optional spectral mixing block)
    decoder (shared by both heads): up -> concat skip -> conv1x1 -> ResBlock, back to N
    heads: conv3x3 -> C channels each; amplitude through ``amp_activation``, phase pi*tanh

One more level per doubling of N (down to an 8 x 8 bottleneck, widths capped at ``4w``).
A ResBlock is ``x + conv(act(norm(conv(act(norm(x))))))`` with GroupNorm (8 groups, or
BatchNorm) and SiLU; downsampling is a strided 3x3 conv, upsampling nearest x2.

Why this shape (measured in ``bench/quality_per_step.py``, see docs/architectures.md):
the skip connections carry the high-frequency detail that the plain CNN has to squeeze
through its 8 x 8 bottleneck, the residual/normalised blocks keep gradients healthy so
the network leaves the initial plateau within a few hundred steps, and the output heads
start small (He init scaled by ``head_init_scale`` = 0.1): the first predictions are a
near-uniform object of amplitude ~0.5 and phase ~0, from which training did not collapse
in any seed tried.  The decoder is shared by the amplitude and phase heads (the CNN has
two decoders), which keeps the cost per step close to the CNN's.

``pad_object`` keeps its meaning: with ``probe_big`` the full ``N x N`` patch is
predicted; without it, only the central ``N/2 x N/2`` region (the border is zero).
``pad_object=False`` predicts the full patch.

Input ``[B, C, N, N]`` float32 (normalised amplitude, see docs/conventions.md); output
``[B, C, N, N]`` complex64.  Imports only torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ptycho_torch.config.canonical import patterns_per_group

__all__ = ["ResUNetGenerator", "SpectralMix", "NORMS"]

NORMS = ("group", "batch", "none")
"""Normalisation layers accepted by :class:`ResUNetGenerator`."""

_AMP_ACTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"sigmoid": torch.sigmoid, "swish": F.silu, "softplus": F.softplus, "relu": F.relu}
_BOTTLENECK_PX = 8


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(min(8, c), c)
    if kind == "batch":
        return nn.BatchNorm2d(c)
    return nn.Identity()


def _act(kind: str) -> nn.Module:
    return nn.GELU() if kind == "gelu" else nn.SiLU()


class ResBlock(nn.Module):
    """Pre-activation residual block ``x + conv(act(norm(conv(act(norm(x))))))``."""

    def __init__(self, c: int, norm: str, act: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(norm, c), _act(act), nn.Conv2d(c, c, 3, padding=1),
            _norm(norm, c), _act(act), nn.Conv2d(c, c, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SpectralMix(nn.Module):
    """Fourier (FNO-style) mixing: ``x + conv1x1(x) + irfft2(W * rfft2(x))`` on the lowest modes.

    ``W`` is a learned complex ``[c, c, 2m, m+1]`` weight over the ``m`` lowest frequencies in
    each direction (both signs along the first axis); higher modes pass through the 1x1 path
    only.  Global receptive field in one layer at the bottleneck.
    """

    def __init__(self, c: int, modes: int, norm: str, act: str) -> None:
        super().__init__()
        self.modes = modes
        scale = 1.0 / c
        self.weight = nn.Parameter(scale * torch.randn(c, c, 2 * modes, modes + 1, 2))
        self.pointwise = nn.Conv2d(c, c, 1)
        self.norm, self.act = _norm(norm, c), _act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.norm(x))
        b, c, hh, ww = h.shape
        m = min(self.modes, hh // 2, ww // 2)
        spec = torch.fft.rfft2(h.float().contiguous(), norm="ortho")
        w = torch.view_as_complex(self.weight)
        out = torch.zeros(b, c, hh, ww // 2 + 1, dtype=spec.dtype, device=spec.device)
        out[:, :, :m, : m + 1] = torch.einsum("bixy,ioxy->boxy", spec[:, :, :m, : m + 1], w[:, :, :m, : m + 1])
        out[:, :, -m:, : m + 1] = torch.einsum("bixy,ioxy->boxy", spec[:, :, -m:, : m + 1], w[:, :, -m:, : m + 1])
        mixed = torch.fft.irfft2(out, s=(hh, ww), norm="ortho").to(x.dtype)
        return x + self.pointwise(h) + mixed.contiguous(memory_format=torch.channels_last)


class ResUNetGenerator(nn.Module):
    """Residual U-Net with a shared decoder and amplitude/phase heads (see module docstring).

    Args:
        N: patch size in pixels; a power of two >= 16.
        gridsize: g; ``C = g*g`` input channels and output patches.
        n_filters_scale: width multiplier ``s`` (widths ``32s, 64s, 128s``, capped at ``128s``).
        amp_activation: amplitude head activation (sigmoid, swish, softplus, relu).
        probe_big: predict the border outside the central ``N/2`` too (with ``pad_object``).
        pad_object: with ``probe_big`` False, zero the border outside the central ``N/2``.
        norm: 'group' (default), 'batch' or 'none'.
        act: 'silu' (default) or 'gelu'.
        spectral_modes: > 0 adds a :class:`SpectralMix` block with that many modes at the
            bottleneck; 0 (default) leaves it out.
        head_init_scale: the heads' He-initialised weights are multiplied by this.
        blocks_per_level: residual blocks at each encoder and decoder level.
        full_res_blocks: residual blocks at full resolution (False drops the first encoder's and
            the last decoder's).
        input_channels: channels of the input (None means ``C``: the amplitudes alone; the
            module passes more when it adds the physics estimate, see
            :mod:`ptycho_torch.physics.estimate`).
    """

    centre: torch.Tensor  # buffer: the central N/2 x N/2 mask (registered when the border is zeroed)

    def __init__(
        self,
        N: int = 64,
        gridsize: int = 1,
        n_filters_scale: int = 1,
        amp_activation: str = "sigmoid",
        probe_big: bool = True,
        pad_object: bool = True,
        *,
        norm: str = "group",
        act: str = "silu",
        spectral_modes: int = 0,
        head_init_scale: float = 0.1,
        blocks_per_level: int = 1,
        full_res_blocks: bool = True,
        input_channels: int | None = None,
    ) -> None:
        super().__init__()
        if N < 2 * _BOTTLENECK_PX or N & (N - 1):
            raise ValueError(f"ResUNetGenerator: N must be a power of two >= 16, got {N}")
        if amp_activation not in _AMP_ACTS:
            raise ValueError(f"ResUNetGenerator: amp_activation must be one of {tuple(_AMP_ACTS)}, got {amp_activation!r}")
        if norm not in NORMS:
            raise ValueError(f"ResUNetGenerator: norm must be one of {NORMS}, got {norm!r}")
        self.N, self.C = N, patterns_per_group(gridsize)
        self.input_channels = self.C if input_channels is None else int(input_channels)
        self._amp_act: Callable[[torch.Tensor], torch.Tensor] = _AMP_ACTS[amp_activation]
        self.zero_border = bool(pad_object and not probe_big)
        levels = int(math.log2(N // _BOTTLENECK_PX))
        base = 32 * n_filters_scale
        widths = [min(base * 2**i, 4 * base) for i in range(levels)]  # at N, N/2, ..., 2*8
        bottleneck = widths[-1]

        def blocks(c: int) -> nn.Sequential:
            return nn.Sequential(*[ResBlock(c, norm, act) for _ in range(blocks_per_level)])

        self.stem = nn.Conv2d(self.input_channels, widths[0], 3, padding=1)
        self.enc = nn.ModuleList(blocks(w) if (i > 0 or full_res_blocks) else nn.Identity() for i, w in enumerate(widths))
        self.down = nn.ModuleList(
            nn.Conv2d(w, w_next, 3, stride=2, padding=1) for w, w_next in zip(widths, widths[1:] + [bottleneck])
        )
        mid: list[nn.Module] = [ResBlock(bottleneck, norm, act)]
        if spectral_modes > 0:
            mid.append(SpectralMix(bottleneck, spectral_modes, norm, act))
        self.mid = nn.Sequential(*mid)
        dec_in = [bottleneck] + list(reversed(widths[1:]))
        self.fuse = nn.ModuleList(nn.Conv2d(c_up + w, w, 1) for c_up, w in zip(dec_in, reversed(widths)))
        self.dec = nn.ModuleList(
            blocks(w) if (i < levels - 1 or full_res_blocks) else nn.Identity() for i, w in enumerate(reversed(widths))
        )
        self.out_norm = nn.Sequential(_norm(norm, widths[0]), _act(act))
        self.amp_head = nn.Conv2d(widths[0], self.C, 3, padding=1)
        self.phase_head = nn.Conv2d(widths[0], self.C, 3, padding=1)
        if self.zero_border:
            centre = torch.zeros(N, N, dtype=torch.bool)
            centre[N // 4 : N // 4 + N // 2, N // 4 : N // 4 + N // 2] = True
            self.register_buffer("centre", centre, persistent=False)
        self._init_weights(head_init_scale)
        # NHWC: several times faster convolutions on the CPU (see generator.CNNGenerator); the
        # spectral weight is 5-D and stays as it is
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                module.to(memory_format=torch.channels_last)

    def _init_weights(self, head_scale: float) -> None:
        """He (Kaiming) normal for every conv, zero biases; heads scaled by ``head_scale``."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.amp_head.weight.mul_(head_scale)
            self.phase_head.weight.mul_(head_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, input_channels, N, N]`` float32 (normalised amplitude first) -> ``[B, C, N, N]`` complex64 patches."""
        if x.dim() != 4 or x.shape[1:] != (self.input_channels, self.N, self.N):
            raise ValueError(
                f"ResUNetGenerator: input must be [B, {self.input_channels}, {self.N}, {self.N}], got {tuple(x.shape)}"
            )
        h = self.stem(x.float().contiguous(memory_format=torch.channels_last))
        skips = []
        for block, down in zip(self.enc, self.down):
            h = block(h)
            skips.append(h)
            h = down(h)
        h = self.mid(h)
        for fuse, block, skip in zip(self.fuse, self.dec, reversed(skips)):
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(fuse(torch.cat([h, skip], dim=1)))
        h = self.out_norm(h)
        amp = self._amp_act(self.amp_head(h)).float().contiguous()
        phase = (math.pi * torch.tanh(self.phase_head(h))).float().contiguous()
        if self.zero_border:
            amp = amp * self.centre
        # explicit form rather than torch.polar: swish amplitudes can be slightly negative
        return torch.complex(amp * torch.cos(phase), amp * torch.sin(phase))
