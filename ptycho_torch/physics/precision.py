"""Keep the physics in float32 while the network runs under mixed precision.

Under ``precision: bf16-mixed`` (or ``16-mixed``) Lightning and the inference loop wrap
the whole forward pass in :func:`torch.autocast`.  That is right for the CNN (its
convolutions are where reduced precision pays), but wrong for the physics:

- autocast runs matrix products and convolutions in bf16, and ``torch.complex`` refuses
  bf16 parts, so the sub-pixel shifts of the overlap constraint crashed at gridsize > 1;
- bf16 keeps 8 bits of mantissa (about 2-3 significant digits).  Diffraction amplitudes
  span several decades (the zero-frequency peak against the tails), the Poisson NLL
  subtracts ``k*log(lambda)`` from ``lambda`` for counts up to ~1e9, and the overlap
  average divides by mask counts: at that resolution the loss and its gradient would be
  rounding noise.  The FFT and these few element-wise stages are a small share of the
  step, so float32 costs little.

:func:`float32_region` disables autocast for the device of the given tensor and returns
the context; :func:`to_float32` casts real tensors up to float32 and complex ones to
complex64 (leaving float64/complex128 alone, which the analytic tests use).
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["float32_region", "to_float32"]

_LOW = (torch.bfloat16, torch.float16)


def float32_region(like: torch.Tensor):
    """A context with autocast off for ``like``'s device type (a no-op context if autocast is off)."""
    device_type = like.device.type
    if not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


def to_float32(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32 if it is bf16/fp16, as complex64 if it is complex32; otherwise unchanged."""
    if x.dtype in _LOW:
        return x.float()
    if x.dtype == torch.complex32:
        return x.to(torch.complex64)
    return x
