"""CNN generator: normalised diffraction amplitudes -> complex object patches.

Layout (docs/physics.md, "Network"):

- a shared encoder of ``(conv3x3, ReLU, conv3x3, ReLU, maxpool2)`` blocks going from
  ``N`` down to 8 pixels; widths ``[32s, 64s, 128s]`` (``s = n_filters_scale``) for
  N = 64, one more block of width ``128s`` per doubling of N (one fewer for N = 32);
- two decoders (amplitude, phase) of ``(conv3x3, ReLU, conv3x3, ReLU, nearest upsample
  x2)`` blocks mirroring the encoder back up to ``N/2`` (``pad_object``) or ``N``;
- heads: a 3x3 conv to ``C = gridsize**2`` channels; amplitude through the chosen
  activation, phase ``pi * tanh``.  With ``pad_object`` the head predicts the central
  ``N/2 x N/2`` region, which is zero-padded to ``N``; with ``probe_big`` a second head
  (one more upsample and conv from the last decoder features) fills the border.

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

__all__ = ["AMP_ACTIVATIONS", "CNNGenerator"]

AMP_ACTIVATIONS = ("sigmoid", "swish", "softplus", "relu")
"""Names accepted for the amplitude head's activation."""

_BOTTLENECK_PX = 8


def _activation(name: str):
    return {
        "sigmoid": torch.sigmoid,
        "swish": F.silu,
        "softplus": F.softplus,
        "relu": F.relu,
    }[name]


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
    ]


class _Decoder(nn.Module):
    """Upsampling path plus centre head (and border head when ``border``)."""

    def __init__(self, c_in: int, widths: list[int], c_out: int, border: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for w in widths:
            layers += _conv_block(c_in, w) + [nn.Upsample(scale_factor=2, mode="nearest")]
            c_in = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.border_head = (
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1))
            if border
            else None
        )

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats = self.body(z)
        border = self.border_head(feats) if self.border_head is not None else None
        return self.head(feats), border


class CNNGenerator(nn.Module):
    """Encoder + amplitude/phase decoders (see module docstring).

    Args:
        N: patch size in pixels; a power of two >= 16 (the canonical config allows 64,
            128, 256; 32 is accepted for small tests).
        gridsize: g; the network maps ``C = g*g`` input channels to ``C`` patches.
        n_filters_scale: width multiplier ``s`` (widths ``32s, 64s, 128s, ...``).
        amp_activation: one of :data:`AMP_ACTIVATIONS`.
        probe_big: also predict the border outside the central ``N/2`` (``pad_object``).
        pad_object: predict the central ``N/2`` and zero-pad to N; False predicts all N.
        input_channels: channels of the input (None means ``C``, the amplitudes alone; more
            when the module adds the physics estimate, :mod:`ptycho_torch.physics.estimate`).
    """

    centre: torch.Tensor  # buffer: the central N/2 x N/2 mask (registered with pad_object)

    def __init__(
        self,
        N: int = 64,
        gridsize: int = 1,
        n_filters_scale: int = 2,
        amp_activation: str = "sigmoid",
        probe_big: bool = True,
        pad_object: bool = True,
        *,
        input_channels: int | None = None,
    ) -> None:
        super().__init__()
        if N < 2 * _BOTTLENECK_PX or N & (N - 1):
            raise ValueError(f"CNNGenerator: N must be a power of two >= 16, got {N}")
        if amp_activation not in AMP_ACTIVATIONS:
            raise ValueError(f"CNNGenerator: amp_activation must be one of {AMP_ACTIVATIONS}, got {amp_activation!r}")
        self.N, self.C = N, patterns_per_group(gridsize)
        self.input_channels = self.C if input_channels is None else int(input_channels)
        self.pad_object, self.probe_big = bool(pad_object), bool(probe_big and pad_object)
        self._amp_act: Callable[[torch.Tensor], torch.Tensor] = _activation(amp_activation)
        levels = int(math.log2(N // _BOTTLENECK_PX))
        s = n_filters_scale
        widths = [32 * s, 64 * s, 128 * s][:levels] + [128 * s] * max(0, levels - 3)
        enc: list[nn.Module] = []
        c_in = self.input_channels
        for w in widths:
            enc += _conv_block(c_in, w) + [nn.MaxPool2d(2)]
            c_in = w
        self.encoder = nn.Sequential(*enc)
        dec_widths = list(reversed(widths[:-1] if pad_object else widths))
        self.amp_decoder = _Decoder(widths[-1], dec_widths, self.C, self.probe_big)
        self.phase_decoder = _Decoder(widths[-1], dec_widths, self.C, self.probe_big)
        if pad_object:
            centre = torch.zeros(N, N, dtype=torch.bool)
            centre[N // 4 : N // 4 + N // 2, N // 4 : N // 4 + N // 2] = True
            self.register_buffer("centre", centre, persistent=False)
        self._init_weights()
        # NHWC activations: oneDNN's convolutions (and their backward) run several times faster
        # on the CPU in this layout (measured 12x for training at N=64, s=1 on 2 cores), and
        # cuDNN prefers it under mixed precision.
        self.to(memory_format=torch.channels_last)

    def _init_weights(self) -> None:
        """He (Kaiming) normal init for every conv, zero biases.

        PyTorch's default conv init shrinks the signal by about sqrt(3) per ReLU layer; through
        the 12+ layers here the initial output was a constant (amplitude std ~4e-4) and training
        sat on that plateau for epochs.  He init keeps the activations' scale and roughly halves
        the epochs needed (measured at N=64 on simulated lines).
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _assemble(self, centre: torch.Tensor, border: torch.Tensor | None, act) -> torch.Tensor:
        """Activate; with pad_object zero-pad the centre to N and fill the border if given."""
        if not self.pad_object:
            return act(centre)
        q = self.N // 4
        padded = F.pad(act(centre), (q, q, q, q))
        if border is None:
            return padded
        return torch.where(self.centre, padded, act(border))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, input_channels, N, N]`` float32 (normalised amplitude first) -> ``[B, C, N, N]`` complex64 patches."""
        if x.dim() != 4 or x.shape[1:] != (self.input_channels, self.N, self.N):
            raise ValueError(
                f"CNNGenerator: input must be [B, {self.input_channels}, {self.N}, {self.N}], got {tuple(x.shape)}"
            )
        z = self.encoder(x.float().contiguous(memory_format=torch.channels_last))
        amp_centre, amp_border = self.amp_decoder(z)
        phase_centre, phase_border = self.phase_decoder(z)
        amp = self._assemble(amp_centre, amp_border, self._amp_act)
        phase = self._assemble(phase_centre, phase_border, lambda t: math.pi * torch.tanh(t))
        amp, phase = amp.float().contiguous(), phase.float().contiguous()
        # explicit form rather than torch.polar: swish amplitudes can be slightly negative
        return torch.complex(amp * torch.cos(phase), amp * torch.sin(phase))
